//! Message Stream Encryption (MSE/PE), the receiving side, as libtorrent, Transmission and
//! aria2 speak it: a Diffie-Hellman exchange ([`dh`]), then both sides RC4-encrypt (the
//! first 1024 bytes of each keystream dropped) with keys from the shared secret and the
//! infohash, which the initiator names only as `HASH('req2', SKEY)`. The payload after it is
//! RC4 or, if both sides allow it, plaintext ([`stream`]).
//!
//! What one unauthenticated connection can cost: two 768-bit modular exponentiations, at most
//! `96 + 512 + 20` bytes read before the sync point, a pad of at most 512 bytes and an
//! initial payload of at most [`MAX_INITIAL_PAYLOAD`] bytes; all of it within the seeder's
//! handshake timeout and peer slots.

pub mod dh;
pub mod stream;

use bytes::{Buf, BytesMut};
use rand::Rng;
use rc4::{KeyInit, Rc4, StreamCipher};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use dh::{KeyPair, KEY_LEN};
pub use stream::Encrypted;

/// Longest PadA, PadB, PadC and PadD.
const MAX_PAD: usize = 512;
/// The initiator's first payload (usually its BitTorrent handshake, 68 bytes); more is not
/// what any client sends.
pub const MAX_INITIAL_PAYLOAD: usize = 16 * 1024;
/// `crypto_provide` / `crypto_select` bits.
const PLAINTEXT: u32 = 0x01;
const RC4: u32 = 0x02;

/// Which payloads this side accepts after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// RC4 only.
    Rc4,
    /// RC4 when offered, else plaintext.
    Either,
}

#[derive(Debug, PartialEq, Eq)]
pub struct MseError(pub &'static str);

impl From<std::io::Error> for MseError {
    fn from(_: std::io::Error) -> Self {
        MseError("MSE: the connection failed mid-handshake")
    }
}

fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `HASH('req2', SKEY)`: how an initiator names the torrent (`SKEY` is the infohash).
pub fn obfuscated(info_hash: &[u8; 20]) -> [u8; 20] {
    hash(&[b"req2", info_hash])
}

/// An RC4 keystream past its first 1024 bytes, as MSE uses it.
fn keystream(key: &[u8; 20]) -> Rc4 {
    let mut rc4 = Rc4::new_from_slice(key).expect("a 20-byte key");
    rc4.apply_keystream(&mut [0u8; 1024]);
    rc4
}

/// Reads until `buf` holds at least `n` bytes.
async fn fill<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    n: usize,
) -> Result<(), MseError> {
    while buf.len() < n {
        if io.read_buf(buf).await? == 0 {
            return Err(MseError("MSE: the peer hung up mid-handshake"));
        }
    }
    Ok(())
}

/// The receiving side of the handshake, after `first` (the 48 bytes that were not a
/// plaintext handshake: the start of the initiator's public key). `find` names the infohash
/// whose `HASH('req2', …)` the initiator sent, if it is seeded here. The stream that comes
/// back reads and writes the payload; the initiator's first bytes are waiting in it.
pub async fn accept<R, W>(
    mut reader: R,
    mut writer: W,
    first: &[u8],
    find: impl FnOnce(&[u8; 20]) -> Option<[u8; 20]>,
    payload: Payload,
) -> Result<Encrypted<R, W>, MseError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(KEY_LEN + MAX_PAD + 64);
    buf.extend_from_slice(first);
    fill(&mut reader, &mut buf, KEY_LEN).await?;
    let theirs: [u8; KEY_LEN] = buf[..KEY_LEN].try_into().expect("96 bytes");
    buf.advance(KEY_LEN);
    let ours = KeyPair::generate();
    let secret = ours
        .shared(&theirs)
        .ok_or(MseError("MSE: a public key no honest peer sends"))?;
    let mut hello = ours.public.to_vec();
    let pad = rand::thread_rng().gen_range(0..=MAX_PAD / 4);
    hello.extend((0..pad).map(|_| rand::random::<u8>()));
    writer.write_all(&hello).await?;

    // Synchronize on HASH('req1', S), somewhere after PadA.
    let sync = hash(&[b"req1", &secret]);
    loop {
        if let Some(at) = buf.windows(20).position(|w| w == sync) {
            buf.advance(at + 20);
            break;
        }
        if buf.len() >= MAX_PAD + 20 {
            return Err(MseError("MSE: no synchronization hash"));
        }
        let want = buf.len() + 1;
        fill(&mut reader, &mut buf, want).await?;
    }
    fill(&mut reader, &mut buf, 20).await?;
    let req3 = hash(&[b"req3", &secret]);
    let mut named = [0u8; 20];
    for (i, b) in named.iter_mut().enumerate() {
        *b = buf[i] ^ req3[i];
    }
    buf.advance(20);
    let info_hash = find(&named).ok_or(MseError("MSE: a torrent this seeder does not have"))?;
    let mut decrypt = keystream(&hash(&[b"keyA", &secret, &info_hash]));
    let mut encrypt = keystream(&hash(&[b"keyB", &secret, &info_hash]));

    // ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
    let mut next = |buf: &mut BytesMut, n: usize| {
        let mut part = buf.split_to(n);
        decrypt.apply_keystream(&mut part);
        part
    };
    fill(&mut reader, &mut buf, 14).await?;
    let head = next(&mut buf, 14);
    if head[..8] != [0u8; 8] {
        return Err(MseError("MSE: wrong verification constant"));
    }
    let provide = u32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
    let pad_c = u16::from_be_bytes([head[12], head[13]]) as usize;
    if pad_c > MAX_PAD {
        return Err(MseError("MSE: PadC too long"));
    }
    fill(&mut reader, &mut buf, pad_c + 2).await?;
    let tail = next(&mut buf, pad_c + 2);
    let ia = u16::from_be_bytes([tail[pad_c], tail[pad_c + 1]]) as usize;
    if ia > MAX_INITIAL_PAYLOAD {
        return Err(MseError("MSE: initial payload too long"));
    }
    fill(&mut reader, &mut buf, ia).await?;
    let mut pending = next(&mut buf, ia);

    let select = match (provide & RC4 != 0, provide & PLAINTEXT != 0, payload) {
        (true, _, _) => RC4,
        (false, true, Payload::Either) => PLAINTEXT,
        _ => return Err(MseError("MSE: no payload encryption in common")),
    };
    // ENCRYPT(VC, crypto_select, len(PadD) = 0)
    let mut answer = [0u8; 14];
    answer[8..12].copy_from_slice(&select.to_be_bytes());
    encrypt.apply_keystream(&mut answer);
    writer.write_all(&answer).await?;

    // What already arrived after the initial payload is payload too.
    let rc4 = select == RC4;
    if rc4 {
        decrypt.apply_keystream(&mut buf);
    }
    pending.extend_from_slice(&buf);
    let ciphers = match rc4 {
        true => (Some(decrypt), Some(encrypt)),
        false => (None, None),
    };
    Ok(Encrypted::new((reader, writer), ciphers, pending))
}

#[cfg(test)]
mod tests;
