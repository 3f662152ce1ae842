//! Sibling messages. On the wire a frame is a fixed head, its tag, then its body:
//!
//! `MAGIC ‖ body length ‖ ts ‖ nonce ‖ SHA-256(body) ‖ HMAC-SHA256(key, head ‖ recipient) ‖ body`
//!
//! The head is authenticated before a byte of the body is read or buffered, so a connection
//! without the key can make a replica hold no more than the head (100 bytes); the body is
//! then bound to the head by its digest. The tag covers the recipient's name, which is not
//! sent: a frame (or a web-seed token) taken at one replica opens at no other. A frame is
//! taken only if it is recent and its nonce was not seen before: a forged or replayed frame
//! does nothing. Bodies are a bencoded dictionary carrying the kind (`k`) and the sender
//! (`from`). `MAGIC` can never begin a BitTorrent handshake (`0x13`), nor an HTTP request.
//!
//! Bodies being read hold bytes of one budget shared by every sibling connection
//! (`cluster.max_buffered_bytes`): past it a reader waits for room, within its deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Semaphore;

use crate::torrent::bencode::{self, Value};

pub const MAGIC: &[u8; 8] = b"S3TSIB2\n";
/// Magic, body length, timestamp, nonce, the body's digest.
const HEAD_LEN: usize = 8 + 4 + 8 + 16 + 32;
const TAG_LEN: usize = 32;
/// What a reader holds before it knows a frame is a sibling's.
pub const SEALED_HEAD: usize = HEAD_LEN + TAG_LEN;
/// How far a frame's clock may be from ours (replicas keep time with NTP).
const MAX_SKEW: Duration = Duration::from_secs(60);
/// Nonces remembered; a nonce is kept only while its frame is fresh enough to be taken.
/// Past it (only siblings can fill it: nonces are recorded after the tag is checked) new
/// frames are refused as stale rather than any nonce forgotten early.
const MAX_NONCES: usize = 100_000;

/// A message between replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: String,
    fields: BTreeMap<Vec<u8>, Value>,
    /// Its size on the wire, once read.
    wire_len: usize,
}

impl Frame {
    pub fn new(kind: &str) -> Frame {
        Frame {
            kind: kind.to_string(),
            fields: BTreeMap::new(),
            wire_len: 0,
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

    /// Bytes it took on the wire (0 for a frame made here).
    pub fn wire_len(&self) -> usize {
        self.wire_len
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
    /// `(ts, nonce)` of frames taken and still fresh.
    seen: Mutex<BTreeSet<(u64, [u8; 16])>>,
    /// Body bytes that may be buffered at once, over every reader.
    budget: Arc<Semaphore>,
    budget_bytes: usize,
}

impl FrameKey {
    pub fn new(key: [u8; 32], budget_bytes: usize) -> FrameKey {
        let budget_bytes = budget_bytes
            .min(Semaphore::MAX_PERMITS)
            .min(u32::MAX as usize);
        FrameKey {
            key,
            seen: Mutex::new(BTreeSet::new()),
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
        }
    }

    fn tag(&self, head: &[u8], to: &str) -> [u8; TAG_LEN] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(head);
        mac.update(&(to.len() as u64).to_be_bytes());
        mac.update(to.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// `frame` from `from` to `to`, now, ready to write.
    pub fn seal(&self, frame: &Frame, from: &str, to: &str) -> Vec<u8> {
        let mut d = frame.fields.clone();
        d.insert(b"k".to_vec(), Value::bytes(frame.kind.as_bytes()));
        d.insert(b"from".to_vec(), Value::bytes(from.as_bytes()));
        let body = Value::Dict(d).encode();
        let nonce: [u8; 16] = rand::random();
        let mut out = Vec::with_capacity(SEALED_HEAD + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&unix_now().to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&Sha256::digest(&body));
        let tag = self.tag(&out, to);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&body);
        out
    }

    /// Reads one frame addressed to `me` of at most `max_body` bytes and checks it: the
    /// head first, and the body only once the head is known to be a sibling's.
    pub async fn read<R: AsyncRead + Unpin>(
        &self,
        r: &mut R,
        me: &str,
        max_body: usize,
    ) -> Result<Frame, Refused> {
        let mut sealed = [0u8; SEALED_HEAD];
        r.read_exact(&mut sealed)
            .await
            .map_err(|_| Refused::Malformed)?;
        let (head, tag) = sealed.split_at(HEAD_LEN);
        if &head[..8] != MAGIC {
            return Err(Refused::Malformed);
        }
        if !bool::from(self.tag(head, me).ct_eq(tag)) {
            return Err(Refused::Forged);
        }
        let field = |at: usize, n: usize| &head[at..at + n];
        let len = u32::from_be_bytes(field(8, 4).try_into().expect("4 bytes")) as usize;
        let ts = u64::from_be_bytes(field(12, 8).try_into().expect("8 bytes"));
        let nonce: [u8; 16] = field(20, 16).try_into().expect("16 bytes");
        let now = unix_now();
        if now.abs_diff(ts) > MAX_SKEW.as_secs() {
            return Err(Refused::Stale);
        }
        if len > max_body.min(self.budget_bytes) {
            return Err(Refused::Malformed);
        }
        self.first_sight(ts, nonce, now)?;
        let _room = self
            .budget
            .acquire_many(len as u32)
            .await
            .map_err(|_| Refused::Malformed)?;
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)
            .await
            .map_err(|_| Refused::Malformed)?;
        if Sha256::digest(&body).as_slice() != field(36, 32) {
            return Err(Refused::Forged);
        }
        let Ok(Value::Dict(mut d)) = bencode::decode(&body) else {
            return Err(Refused::Malformed);
        };
        let kind = d
            .remove(&b"k"[..])
            .and_then(|v| v.as_bytes().map(<[u8]>::to_vec))
            .and_then(|k| String::from_utf8(k).ok())
            .ok_or(Refused::Malformed)?;
        Ok(Frame {
            kind,
            fields: d,
            wire_len: SEALED_HEAD + len,
        })
    }

    /// Remembers a fresh frame's nonce; `Replayed` if it was taken before.
    fn first_sight(&self, ts: u64, nonce: [u8; 16], now: u64) -> Result<(), Refused> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // A frame older than the skew is refused as stale: its nonce need not be kept.
        let fresh_from = now.saturating_sub(MAX_SKEW.as_secs());
        let fresh = seen.split_off(&(fresh_from, [0; 16]));
        *seen = fresh;
        if seen.contains(&(ts, nonce)) {
            return Err(Refused::Replayed);
        }
        if seen.len() >= MAX_NONCES {
            return Err(Refused::Stale);
        }
        seen.insert((ts, nonce));
        Ok(())
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

    fn key(k: u8) -> FrameKey {
        FrameKey::new([k; 32], 1 << 20)
    }

    async fn read(key: &FrameKey, bytes: &[u8]) -> Result<Frame, Refused> {
        key.read(&mut &bytes[..], "pod-b", 1 << 20).await
    }

    #[tokio::test]
    async fn a_sealed_frame_opens_once_with_the_same_key() {
        let (a, b) = (key(7), key(7));
        let sealed = a.seal(&frame(), "pod-a", "pod-b");
        let got = read(&b, &sealed).await.expect("opens");
        assert_eq!(got.kind, "announce");
        assert_eq!(got.text("q"), Some("info_hash=x"));
        assert_eq!(got.int("port"), Some(6881));
        assert_eq!(got.text("from"), Some("pod-a"));
        assert_eq!(read(&b, &sealed).await, Err(Refused::Replayed));
    }

    #[tokio::test]
    async fn a_frame_opens_only_at_its_recipient() {
        let (a, c) = (key(7), key(7));
        let sealed = a.seal(&frame(), "pod-a", "pod-b");
        assert_eq!(
            c.read(&mut &sealed[..], "pod-c", 1 << 20).await,
            Err(Refused::Forged)
        );
        assert_eq!(
            c.read(&mut &sealed[..], "pod-a", 1 << 20).await,
            Err(Refused::Forged),
            "nor back at its sender"
        );
    }

    #[tokio::test]
    async fn forged_cut_or_foreign_frames_are_refused() {
        let key7 = key(7);
        let sealed = key7.seal(&frame(), "pod-a", "pod-b");
        assert_eq!(read(&key(8), &sealed).await, Err(Refused::Forged));
        // A flipped bit in the head fails the tag; in the body, the digest.
        for at in [20, SEALED_HEAD + 3] {
            let mut flipped = sealed.clone();
            flipped[at] ^= 1;
            assert_eq!(read(&key(7), &flipped).await, Err(Refused::Forged), "{at}");
        }
        assert_eq!(
            read(&key(7), &sealed[..sealed.len() - 1]).await,
            Err(Refused::Malformed)
        );
        let handshake = b"\x13BitTorrent protocol";
        assert_eq!(read(&key7, handshake).await, Err(Refused::Malformed));
    }

    /// A reader that counts what was read from it.
    struct Counting<'a>(&'a [u8], usize);

    impl AsyncRead for Counting<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = buf.remaining().min(self.0.len());
            buf.put_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            self.1 += n;
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn an_unauthenticated_claim_is_refused_before_its_body_is_read() {
        let key = key(7);
        let mut claim = MAGIC.to_vec();
        claim.extend_from_slice(&(8u32 << 20).to_be_bytes());
        claim.extend_from_slice(&unix_now().to_be_bytes());
        claim.resize(SEALED_HEAD, 0);
        claim.resize(SEALED_HEAD + (1 << 20), 0xAA);
        let mut r = Counting(&claim, 0);
        assert_eq!(
            key.read(&mut r, "pod-b", 8 << 20).await,
            Err(Refused::Forged)
        );
        assert_eq!(r.1, SEALED_HEAD, "nothing past the head was read");
    }

    #[tokio::test]
    async fn bodies_share_one_budget() {
        let key = FrameKey::new([7; 32], 1000);
        let big = Frame::new("torrent").with_bytes("info", vec![1u8; 2000]);
        let sealed = key.seal(&big, "pod-a", "pod-b");
        assert_eq!(read(&key, &sealed).await, Err(Refused::Malformed));
        let small = key.seal(&frame(), "pod-a", "pod-b");
        let _held = key.budget.acquire_many(990).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(50), read(&key, &small));
        assert!(waiting.await.is_err(), "waits for room");
        drop(_held);
        let small = key.seal(&frame(), "pod-a", "pod-b");
        assert!(read(&key, &small).await.is_ok());
        assert_eq!(key.budget.available_permits(), 1000, "room given back");
    }

    #[tokio::test]
    async fn an_old_frame_is_stale_even_with_a_good_tag() {
        let key = key(7);
        let mut sealed = key.seal(&frame(), "pod-a", "pod-b");
        let old = (unix_now() - 3600).to_be_bytes();
        sealed[12..20].copy_from_slice(&old);
        let tag = key.tag(&sealed[..HEAD_LEN], "pod-b");
        sealed[HEAD_LEN..SEALED_HEAD].copy_from_slice(&tag);
        assert_eq!(read(&key, &sealed).await, Err(Refused::Stale));
    }

    #[test]
    fn nonces_are_forgotten_only_once_their_frames_are_stale() {
        let key = key(7);
        let now = unix_now();
        assert_eq!(key.first_sight(now - 30, [1; 16], now), Ok(()));
        assert_eq!(
            key.first_sight(now - 30, [1; 16], now + 29),
            Err(Refused::Replayed)
        );
        assert_eq!(key.first_sight(now - 30, [1; 16], now + 31), Ok(()));
        let mut seen = key.seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "the stale one went");
        seen.clear();
    }
}
