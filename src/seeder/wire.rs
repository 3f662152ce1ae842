//! The peer wire format: the BEP 3 handshake and length-prefixed messages, with BEP 6 (fast),
//! BEP 10 (extension) and BEP 52 (hash exchange) message ids. Decoding is strict and bounded: a message longer than
//! [`MAX_MESSAGE`] or malformed for its id is an error, and the connection closes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::torrent::piece_tree::HashRange;

pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
pub const HANDSHAKE_LEN: usize = 68;
/// Blocks are 16 KiB; clients never ask for more than 128 KiB.
pub const MAX_BLOCK: u32 = 128 * 1024;
/// The longest message accepted: a bitfield of a 5 GiB object in 16 KiB pieces is 40 KiB, a
/// metadata piece 16 KiB plus its dictionary.
pub const MAX_MESSAGE: usize = 256 * 1024;

/// `reserved` bits: byte 5 `0x10` is BEP 10 (extension protocol), byte 7 `0x04` BEP 6 (fast).
pub const EXTENSION_BIT: (usize, u8) = (5, 0x10);
pub const FAST_BIT: (usize, u8) = (7, 0x04);
/// Byte 7 `0x10`: BEP 52. On a hybrid torrent's v1 connection, the peer can upgrade to v2
/// (answered with the v2 infohash).
pub const V2_BIT: (usize, u8) = (7, 0x10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: [u8; 8],
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
}

impl Handshake {
    pub fn parse(b: &[u8; HANDSHAKE_LEN]) -> Option<Handshake> {
        if b[0] != 19 || &b[1..20] != PROTOCOL {
            return None;
        }
        Some(Handshake {
            reserved: b[20..28].try_into().ok()?,
            info_hash: b[28..48].try_into().ok()?,
            peer_id: b[48..68].try_into().ok()?,
        })
    }

    /// The first 48 bytes (up to the infohash; the peer id is zero).
    pub fn parse_head(head: &[u8; 48]) -> Option<Handshake> {
        let mut full = [0u8; HANDSHAKE_LEN];
        full[..48].copy_from_slice(head);
        Self::parse(&full)
    }

    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = 19;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(&self.info_hash);
        out[48..68].copy_from_slice(&self.peer_id);
        out
    }

    pub fn has(&self, (byte, bit): (usize, u8)) -> bool {
        self.reserved[byte] & bit != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(Bytes),
    Request(Block),
    Piece {
        index: u32,
        begin: u32,
        data: Bytes,
    },
    Cancel(Block),
    Port(u16),
    // BEP 6
    Suggest(u32),
    HaveAll,
    HaveNone,
    Reject(Block),
    AllowedFast(u32),
    // BEP 10: extended message id (0 is the handshake) and its payload
    Extended(u8, Bytes),
    // BEP 52
    HashRequest(HashRequest),
    /// The request answered, and its hashes (32 bytes each) then uncles.
    Hashes(HashRequest, Bytes),
    HashReject(HashRequest),
    /// An id this seeder does not know: ignored, for forward compatibility.
    Unknown(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Block {
    pub index: u32,
    pub begin: u32,
    pub length: u32,
}

/// A BEP 52 hash request: hashes of the tree whose root is `root` (a file's `pieces root`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashRequest {
    pub root: [u8; 32],
    pub range: HashRange,
}

/// A hash request's fields after the id: root, base, index, count, proof layers.
const HASH_REQUEST_LEN: usize = 32 + 4 * 4;

impl HashRequest {
    fn decode(body: &mut Bytes) -> HashRequest {
        let mut root = [0; 32];
        body.copy_to_slice(&mut root);
        let range = HashRange {
            base: body.get_u32(),
            index: body.get_u32(),
            count: body.get_u32(),
            proof_layers: body.get_u32(),
        };
        HashRequest { root, range }
    }

    fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&self.root);
        let r = &self.range;
        for v in [r.base, r.index, r.count, r.proof_layers] {
            out.put_u32(v);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    TooLong(usize),
    Malformed(u8),
}

impl Message {
    /// Takes one whole message off the front of `buf`; `Ok(None)` until one is complete.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Message>, WireError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        if len > MAX_MESSAGE {
            return Err(WireError::TooLong(len));
        }
        if buf.len() < 4 + len {
            return Ok(None);
        }
        buf.advance(4);
        let mut body = buf.split_to(len).freeze();
        if len == 0 {
            return Ok(Some(Message::KeepAlive));
        }
        let id = body.get_u8();
        let fixed = |n: usize| match body.len() == n {
            true => Ok(()),
            false => Err(WireError::Malformed(id)),
        };
        let block = |body: &mut Bytes| Block {
            index: body.get_u32(),
            begin: body.get_u32(),
            length: body.get_u32(),
        };
        let message = match id {
            0 => fixed(0).map(|_| Message::Choke)?,
            1 => fixed(0).map(|_| Message::Unchoke)?,
            2 => fixed(0).map(|_| Message::Interested)?,
            3 => fixed(0).map(|_| Message::NotInterested)?,
            4 => fixed(4).map(|_| Message::Have(body.get_u32()))?,
            5 => Message::Bitfield(body),
            6 => fixed(12).map(|_| Message::Request(block(&mut body)))?,
            7 => {
                if body.len() < 8 {
                    return Err(WireError::Malformed(id));
                }
                let (index, begin) = (body.get_u32(), body.get_u32());
                Message::Piece {
                    index,
                    begin,
                    data: body,
                }
            }
            8 => fixed(12).map(|_| Message::Cancel(block(&mut body)))?,
            9 => fixed(2).map(|_| Message::Port(body.get_u16()))?,
            13 => fixed(4).map(|_| Message::Suggest(body.get_u32()))?,
            14 => fixed(0).map(|_| Message::HaveAll)?,
            15 => fixed(0).map(|_| Message::HaveNone)?,
            16 => fixed(12).map(|_| Message::Reject(block(&mut body)))?,
            17 => fixed(4).map(|_| Message::AllowedFast(body.get_u32()))?,
            21 => fixed(HASH_REQUEST_LEN)
                .map(|_| Message::HashRequest(HashRequest::decode(&mut body)))?,
            22 => {
                let hashes = body.len().checked_sub(HASH_REQUEST_LEN);
                if hashes.is_none_or(|h| h % 32 != 0) {
                    return Err(WireError::Malformed(id));
                }
                let request = HashRequest::decode(&mut body);
                Message::Hashes(request, body)
            }
            23 => fixed(HASH_REQUEST_LEN)
                .map(|_| Message::HashReject(HashRequest::decode(&mut body)))?,
            20 => {
                if body.is_empty() {
                    return Err(WireError::Malformed(id));
                }
                let ext = body.get_u8();
                Message::Extended(ext, body)
            }
            other => Message::Unknown(other),
        };
        Ok(Some(message))
    }

    /// Encodes all of it into `out` but a `piece`'s block, which is handed back to be
    /// written as it is: a slice of the cached piece, never copied on its way out.
    pub fn encode_head(&self, out: &mut BytesMut) -> Option<Bytes> {
        let Message::Piece { index, begin, data } = self else {
            self.encode(out);
            return None;
        };
        out.put_u32(9 + data.len() as u32);
        out.put_u8(7);
        out.put_u32(*index);
        out.put_u32(*begin);
        Some(data.clone())
    }

    pub fn encode(&self, out: &mut BytesMut) {
        let simple = |out: &mut BytesMut, id: u8| {
            out.put_u32(1);
            out.put_u8(id);
        };
        let with_u32 = |out: &mut BytesMut, id: u8, v: u32| {
            out.put_u32(5);
            out.put_u8(id);
            out.put_u32(v);
        };
        let with_block = |out: &mut BytesMut, id: u8, b: &Block| {
            out.put_u32(13);
            out.put_u8(id);
            out.put_u32(b.index);
            out.put_u32(b.begin);
            out.put_u32(b.length);
        };
        match self {
            Message::KeepAlive => out.put_u32(0),
            Message::Choke => simple(out, 0),
            Message::Unchoke => simple(out, 1),
            Message::Interested => simple(out, 2),
            Message::NotInterested => simple(out, 3),
            Message::Have(i) => with_u32(out, 4, *i),
            Message::Bitfield(b) => {
                out.put_u32(1 + b.len() as u32);
                out.put_u8(5);
                out.put_slice(b);
            }
            Message::Request(b) => with_block(out, 6, b),
            Message::Piece { data, .. } => {
                self.encode_head(out);
                out.put_slice(data);
            }
            Message::Cancel(b) => with_block(out, 8, b),
            Message::Port(p) => {
                out.put_u32(3);
                out.put_u8(9);
                out.put_u16(*p);
            }
            Message::Suggest(i) => with_u32(out, 13, *i),
            Message::HaveAll => simple(out, 14),
            Message::HaveNone => simple(out, 15),
            Message::Reject(b) => with_block(out, 16, b),
            Message::AllowedFast(i) => with_u32(out, 17, *i),
            Message::Extended(ext, payload) => {
                out.put_u32(2 + payload.len() as u32);
                out.put_u8(20);
                out.put_u8(*ext);
                out.put_slice(payload);
            }
            Message::HashRequest(r) | Message::HashReject(r) => {
                out.put_u32(1 + HASH_REQUEST_LEN as u32);
                out.put_u8(if matches!(self, Message::HashRequest(_)) {
                    21
                } else {
                    23
                });
                r.encode(out);
            }
            Message::Hashes(r, hashes) => {
                out.put_u32((1 + HASH_REQUEST_LEN + hashes.len()) as u32);
                out.put_u8(22);
                r.encode(out);
                out.put_slice(hashes);
            }
            Message::Unknown(id) => simple(out, *id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: Message) {
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        let whole = buf.clone();
        // Byte by byte: nothing until the last byte arrives.
        let mut partial = BytesMut::new();
        for (i, b) in whole.iter().enumerate() {
            partial.put_u8(*b);
            let got = Message::decode(&mut partial).unwrap();
            assert_eq!(got.is_some(), i + 1 == whole.len(), "{m:?} at {i}");
            if let Some(got) = got {
                assert_eq!(got, m);
            }
        }
        assert!(partial.is_empty());
    }

    #[test]
    fn every_message_round_trips() {
        let b = Block {
            index: 7,
            begin: 16384,
            length: 16384,
        };
        let hr = HashRequest {
            root: [5; 32],
            range: HashRange {
                base: 2,
                index: 512,
                count: 512,
                proof_layers: 9,
            },
        };
        for m in [
            Message::KeepAlive,
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::Have(3),
            Message::Bitfield(Bytes::from_static(&[0xff, 0x80])),
            Message::Request(b),
            Message::Piece {
                index: 1,
                begin: 0,
                data: Bytes::from_static(b"abc"),
            },
            Message::Cancel(b),
            Message::Port(6881),
            Message::Suggest(2),
            Message::HaveAll,
            Message::HaveNone,
            Message::Reject(b),
            Message::AllowedFast(9),
            Message::Extended(0, Bytes::from_static(b"de")),
            Message::HashRequest(hr),
            Message::Hashes(hr, Bytes::from(vec![9; 64])),
            Message::HashReject(hr),
        ] {
            round_trip(m);
        }
    }

    #[test]
    fn hostile_frames_are_errors_not_panics() {
        let mut huge = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            Message::decode(&mut huge),
            Err(WireError::TooLong(0x7fff_ffff))
        );
        // A Have with two bytes, a Request with five, an empty extended message.
        for frame in [
            &[0, 0, 0, 3, 4, 0, 1][..],
            &[0, 0, 0, 6, 6, 0, 0, 0, 0, 1][..],
            &[0, 0, 0, 1, 20][..],
            &[0, 0, 0, 5, 7, 0, 0, 0, 1][..],
            // A hash request one byte short; hashes with half a hash.
            &[&[0, 0, 0, 48, 21][..], &[0; 47]].concat()[..],
            &[&[0, 0, 0, 65, 22][..], &[0; 64]].concat()[..],
        ] {
            let mut buf = BytesMut::from(frame);
            assert!(Message::decode(&mut buf).is_err(), "{frame:?}");
        }
        let mut unknown = BytesMut::from(&[0, 0, 0, 2, 99, 1][..]);
        assert_eq!(
            Message::decode(&mut unknown),
            Ok(Some(Message::Unknown(99)))
        );
    }

    #[test]
    fn handshakes_round_trip_and_reject_other_protocols() {
        let h = Handshake {
            reserved: [0, 0, 0, 0, 0, 0x10, 0, 0x04],
            info_hash: [1; 20],
            peer_id: [2; 20],
        };
        let bytes = h.encode();
        assert_eq!(Handshake::parse(&bytes), Some(h.clone()));
        assert!(h.has(EXTENSION_BIT) && h.has(FAST_BIT));
        let mut other = bytes;
        other[5] = b'x';
        assert_eq!(Handshake::parse(&other), None);
    }
}
