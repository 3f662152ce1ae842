//! Decoding `aws-chunked` bodies (streaming SigV4 uploads) as they pass, so what is hashed is
//! the object's bytes, not the framing:
//!
//! ```text
//! <hex size>[;chunk-signature=<sig>]\r\n<data>\r\n ... 0[;chunk-signature=<sig>]\r\n
//! [<trailer>: <value>\r\n ...]\r\n
//! ```
//!
//! The bytes on the wire are never changed; malformed framing stops the decoding (and the
//! upload is left to lazy generation).

use bytes::Bytes;

/// A size line longer than this is not one (16 hex digits plus a 64-hex signature).
const MAX_LINE: usize = 256;

#[derive(Debug, Default)]
pub struct Decoder {
    state: State,
    line: Vec<u8>,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum State {
    /// Reading a chunk's size line.
    #[default]
    Size,
    Data(u64),
    /// The `\r\n` after a chunk's data; bytes of it still expected.
    DataEnd(u8),
    /// After the last (empty) chunk: trailers, ignored.
    Trailers,
    Failed,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

impl Decoder {
    /// The object bytes in `chunk`, in order (slices of it: nothing is copied).
    pub fn decode(&mut self, chunk: &Bytes) -> Result<Vec<Bytes>, Malformed> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < chunk.len() {
            match self.state {
                State::Size => {
                    let rest = &chunk[at..];
                    let end = rest.iter().position(|&b| b == b'\n');
                    let take = end.map_or(rest.len(), |i| i + 1);
                    self.line.extend_from_slice(&rest[..take]);
                    at += take;
                    if self.line.len() > MAX_LINE {
                        return self.fail();
                    }
                    if end.is_some() {
                        let size = size_of(&self.line).ok_or(Malformed);
                        self.line.clear();
                        self.state = match size {
                            Ok(0) => State::Trailers,
                            Ok(n) => State::Data(n),
                            Err(e) => {
                                self.state = State::Failed;
                                return Err(e);
                            }
                        };
                    }
                }
                State::Data(left) => {
                    let take = left.min((chunk.len() - at) as u64) as usize;
                    out.push(chunk.slice(at..at + take));
                    at += take;
                    self.state = match left - take as u64 {
                        0 => State::DataEnd(2),
                        n => State::Data(n),
                    };
                }
                State::DataEnd(left) => {
                    let expected = if left == 2 { b'\r' } else { b'\n' };
                    if chunk[at] != expected {
                        return self.fail();
                    }
                    at += 1;
                    self.state = match left {
                        2 => State::DataEnd(1),
                        _ => State::Size,
                    };
                }
                State::Trailers => return Ok(out),
                State::Failed => return Err(Malformed),
            }
        }
        Ok(out)
    }

    /// Whether the last chunk was seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Trailers
    }

    fn fail<T>(&mut self) -> Result<T, Malformed> {
        self.state = State::Failed;
        Err(Malformed)
    }
}

/// `1a2b;chunk-signature=…\r\n` → 0x1a2b.
fn size_of(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r\n")?;
    let hex = line.split(|&b| b == b';').next()?;
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(data: &[u8], chunk: usize, signed: bool) -> Vec<u8> {
        let sig = |out: &mut Vec<u8>| {
            if signed {
                out.extend_from_slice(format!(";chunk-signature={}", "a".repeat(64)).as_bytes());
            }
        };
        let mut out = Vec::new();
        for c in data.chunks(chunk) {
            out.extend_from_slice(format!("{:x}", c.len()).as_bytes());
            sig(&mut out);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0");
        sig(&mut out);
        out.extend_from_slice(b"\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n");
        out
    }

    fn decode_in_pieces(wire: &[u8], piece: usize) -> Result<Vec<u8>, Malformed> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for p in wire.chunks(piece) {
            for b in d.decode(&Bytes::copy_from_slice(p))? {
                out.extend_from_slice(&b);
            }
        }
        assert!(d.is_done());
        Ok(out)
    }

    #[test]
    fn decodes_however_the_wire_is_cut() {
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for signed in [true, false] {
            let wire = framed(&data, 8192, signed);
            for piece in [1, 2, 3, 100, 8192, 8193, wire.len()] {
                assert_eq!(
                    decode_in_pieces(&wire, piece).unwrap(),
                    data,
                    "{signed} {piece}"
                );
            }
        }
    }

    #[test]
    fn malformed_framing_stops_decoding() {
        let mut d = Decoder::default();
        assert_eq!(d.decode(&Bytes::from_static(b"zz\r\n")), Err(Malformed));
        assert_eq!(
            d.decode(&Bytes::from_static(b"1\r\na\r\n")),
            Err(Malformed),
            "stays failed"
        );
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(&Bytes::from_static(b"1\r\naXY")),
            Err(Malformed),
            "no CRLF after data"
        );
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(&Bytes::from(vec![b'1'; 300])),
            Err(Malformed),
            "endless size line"
        );
        let mut d = Decoder::default();
        let too_big = Bytes::from_static(b"11111111111111111\r\n");
        assert_eq!(d.decode(&too_big), Err(Malformed));
    }
}
