//! Sibling messages: `MAGIC ‖ length ‖ body ‖ HMAC-SHA256(key, MAGIC ‖ length ‖ body)`, the
//! body a bencoded dictionary carrying its kind (`k`), when it was made (`ts`, Unix seconds),
//! a random nonce (`n`) and the sender (`from`). A frame is taken only if its tag is right,
//! it is recent, and its nonce was not seen before: a forged or replayed frame does nothing.
//! `MAGIC` can never begin a BitTorrent handshake (`0x13`), nor an HTTP request.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::torrent::bencode::{self, Value};

pub const MAGIC: &[u8; 8] = b"S3TSIB1\n";
const TAG_LEN: usize = 32;
/// How far a frame's clock may be from ours (replicas keep time with NTP).
const MAX_SKEW: Duration = Duration::from_secs(60);
/// Nonces remembered; past it the oldest go (they are older than the skew by then, or the
/// flood of frames is one the tag already refused).
const MAX_NONCES: usize = 100_000;

/// A message between replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: String,
    fields: BTreeMap<Vec<u8>, Value>,
}

impl Frame {
    pub fn new(kind: &str) -> Frame {
        Frame {
            kind: kind.to_string(),
            fields: BTreeMap::new(),
        }
    }

    pub fn with(mut self, name: &str, value: Value) -> Frame {
        self.fields.insert(name.as_bytes().to_vec(), value);
        self
    }

    pub fn with_bytes(self, name: &str, value: impl Into<Vec<u8>>) -> Frame {
        self.with(name, Value::Bytes(value.into()))
    }

    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.fields.get(name.as_bytes())?.as_bytes()
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.bytes(name)?).ok()
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.fields.get(name.as_bytes())?.as_int()
    }

    pub fn list(&self, name: &str) -> Option<&[Value]> {
        match self.fields.get(name.as_bytes())? {
            Value::List(items) => Some(items),
            _ => None,
        }
    }
}

/// Why a frame was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a frame, too large, or cut short.
    Malformed,
    /// The tag is wrong: not from a replica with this key.
    Forged,
    /// Made too long ago (or in the future).
    Stale,
    /// Seen before.
    Replayed,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Malformed => "malformed",
            Refused::Forged => "forged",
            Refused::Stale => "stale",
            Refused::Replayed => "replayed",
        }
    }
}

/// Seals and opens frames with the key every replica shares, remembering nonces seen.
pub struct FrameKey {
    key: [u8; 32],
    seen: Mutex<HashMap<[u8; 16], u64>>,
}

impl FrameKey {
    pub fn new(key: [u8; 32]) -> FrameKey {
        FrameKey {
            key,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn tag(&self, head: &[u8], body: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(head);
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// `frame` from `from`, now, ready to write.
    pub fn seal(&self, frame: &Frame, from: &str) -> Vec<u8> {
        let mut d = frame.fields.clone();
        let nonce: [u8; 16] = rand::random();
        d.insert(b"k".to_vec(), Value::bytes(frame.kind.as_bytes()));
        d.insert(b"ts".to_vec(), Value::Int(unix_now() as i64));
        d.insert(b"n".to_vec(), Value::Bytes(nonce.to_vec()));
        d.insert(b"from".to_vec(), Value::bytes(from.as_bytes()));
        let body = Value::Dict(d).encode();
        let mut out = Vec::with_capacity(12 + body.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        let tag = self.tag(&out, &body);
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        out
    }

    /// Reads one frame of at most `max_body` bytes and checks it.
    pub async fn read<R: AsyncRead + Unpin>(
        &self,
        r: &mut R,
        max_body: usize,
    ) -> Result<Frame, Refused> {
        let mut head = [0u8; 12];
        r.read_exact(&mut head)
            .await
            .map_err(|_| Refused::Malformed)?;
        if &head[..8] != MAGIC {
            return Err(Refused::Malformed);
        }
        let len = u32::from_be_bytes(head[8..].try_into().expect("4 bytes")) as usize;
        if len > max_body {
            return Err(Refused::Malformed);
        }
        // Grown as bytes arrive, never to the length claimed: a sender that claims megabytes
        // and sends nothing holds nothing.
        let want = (len + TAG_LEN) as u64;
        let mut rest = Vec::with_capacity(len.min(64 * 1024) + TAG_LEN);
        let read = r.take(want).read_to_end(&mut rest).await;
        if read.is_err() || rest.len() as u64 != want {
            return Err(Refused::Malformed);
        }
        let (body, tag) = rest.split_at(len);
        self.open(&head, body, tag)
    }

    fn open(&self, head: &[u8], body: &[u8], tag: &[u8]) -> Result<Frame, Refused> {
        if !bool::from(self.tag(head, body).ct_eq(tag)) {
            return Err(Refused::Forged);
        }
        let Ok(Value::Dict(mut d)) = bencode::decode(body) else {
            return Err(Refused::Malformed);
        };
        let kind = d
            .remove(&b"k"[..])
            .and_then(|v| v.as_bytes().map(<[u8]>::to_vec));
        let ts = d.get(&b"ts"[..]).and_then(Value::as_int);
        let nonce = d.get(&b"n"[..]).and_then(Value::as_bytes);
        let (Some(kind), Some(ts), Some(nonce)) = (kind, ts, nonce) else {
            return Err(Refused::Malformed);
        };
        let nonce: [u8; 16] = nonce.try_into().map_err(|_| Refused::Malformed)?;
        let now = unix_now();
        let ts = u64::try_from(ts).map_err(|_| Refused::Stale)?;
        if now.abs_diff(ts) > MAX_SKEW.as_secs() {
            return Err(Refused::Stale);
        }
        self.first_sight(nonce, now)?;
        let kind = String::from_utf8(kind).map_err(|_| Refused::Malformed)?;
        Ok(Frame { kind, fields: d })
    }

    /// Remembers `nonce`; `Replayed` if it was seen within the skew window.
    fn first_sight(&self, nonce: [u8; 16], now: u64) -> Result<(), Refused> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_NONCES {
            seen.retain(|_, at| now.abs_diff(*at) <= 2 * MAX_SKEW.as_secs());
            if seen.len() >= MAX_NONCES {
                seen.clear();
            }
        }
        match seen.insert(nonce, now) {
            Some(_) => Err(Refused::Replayed),
            None => Ok(()),
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame::new("announce")
            .with_bytes("q", "info_hash=x")
            .with("port", Value::Int(6881))
    }

    async fn read(key: &FrameKey, bytes: &[u8]) -> Result<Frame, Refused> {
        key.read(&mut &bytes[..], 1 << 20).await
    }

    #[tokio::test]
    async fn a_sealed_frame_opens_once_with_the_same_key() {
        let (a, b) = (FrameKey::new([7; 32]), FrameKey::new([7; 32]));
        let sealed = a.seal(&frame(), "pod-a");
        let got = read(&b, &sealed).await.expect("opens");
        assert_eq!(got.kind, "announce");
        assert_eq!(got.text("q"), Some("info_hash=x"));
        assert_eq!(got.int("port"), Some(6881));
        assert_eq!(got.text("from"), Some("pod-a"));
        assert_eq!(read(&b, &sealed).await, Err(Refused::Replayed));
    }

    #[tokio::test]
    async fn forged_cut_or_foreign_frames_are_refused() {
        let key = FrameKey::new([7; 32]);
        let sealed = key.seal(&frame(), "pod-a");
        let other = FrameKey::new([8; 32]);
        assert_eq!(read(&other, &sealed).await, Err(Refused::Forged));
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert_eq!(read(&key, &flipped).await, Err(Refused::Forged));
        assert_eq!(
            read(&key, &sealed[..sealed.len() - 1]).await,
            Err(Refused::Malformed)
        );
        let handshake = b"\x13BitTorrent protocol";
        assert_eq!(read(&key, handshake).await, Err(Refused::Malformed));
        let mut huge = sealed.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(read(&key, &huge).await, Err(Refused::Malformed));
    }

    #[tokio::test]
    async fn a_claimed_length_is_not_allocated_before_the_bytes_come() {
        let key = FrameKey::new([7; 32]);
        let mut claim = MAGIC.to_vec();
        claim.extend_from_slice(&(8u32 << 20).to_be_bytes());
        claim.extend_from_slice(&[0u8; 100]);
        // 8 MiB claimed, 100 bytes sent, then the end: refused, having held ~100 bytes.
        assert_eq!(
            key.read(&mut &claim[..], 8 << 20).await,
            Err(Refused::Malformed)
        );
    }

    #[tokio::test]
    async fn an_old_frame_is_stale_even_with_a_good_tag() {
        let key = FrameKey::new([7; 32]);
        let mut d = BTreeMap::new();
        d.insert(b"k".to_vec(), Value::bytes("announce"));
        d.insert(b"ts".to_vec(), Value::Int(unix_now() as i64 - 3600));
        d.insert(b"n".to_vec(), Value::Bytes(vec![1; 16]));
        let body = Value::Dict(d).encode();
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&(body.len() as u32).to_be_bytes());
        let tag = key.tag(&head, &body);
        let bytes = [head, body, tag.to_vec()].concat();
        assert_eq!(read(&key, &bytes).await, Err(Refused::Stale));
    }
}
