//! The receiving side against an initiator written from the specification, over an
//! in-memory pipe.

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

const INFO_HASH: [u8; 20] = [7; 20];

fn seeded(named: &[u8; 20]) -> Option<[u8; 20]> {
    (*named == obfuscated(&INFO_HASH)).then_some(INFO_HASH)
}

/// The initiating side, as a client does it: returns its ciphers and what it read past the
/// handshake.
struct Initiator {
    io: DuplexStream,
    encrypt: Rc4,
    decrypt: Rc4,
    select: u32,
}

async fn initiate(
    mut io: DuplexStream,
    info_hash: [u8; 20],
    provide: u32,
    initial: &[u8],
) -> Result<Initiator, &'static str> {
    let ours = KeyPair::generate();
    let mut hello = ours.public.to_vec();
    hello.extend_from_slice(&[0xAB; 37]); // PadA
    io.write_all(&hello).await.unwrap();
    let mut theirs = [0u8; KEY_LEN];
    io.read_exact(&mut theirs).await.map_err(|_| "closed")?;
    let secret = ours.shared(&theirs).unwrap();
    let mut encrypt = keystream(&hash(&[b"keyA", &secret, &info_hash]));
    let mut decrypt = keystream(&hash(&[b"keyB", &secret, &info_hash]));
    let mut out = hash(&[b"req1", &secret]).to_vec();
    let req3 = hash(&[b"req3", &secret]);
    out.extend(obfuscated(&info_hash).iter().zip(req3).map(|(a, b)| a ^ b));
    let mut rest = vec![0u8; 8];
    rest.extend_from_slice(&provide.to_be_bytes());
    rest.extend_from_slice(&3u16.to_be_bytes());
    rest.extend_from_slice(&[1, 2, 3]); // PadC
    rest.extend_from_slice(&(initial.len() as u16).to_be_bytes());
    rest.extend_from_slice(initial);
    encrypt.apply_keystream(&mut rest);
    out.extend(rest);
    io.write_all(&out).await.unwrap();
    // Find B's encrypted verification constant after PadB.
    let mut vc = [0u8; 8];
    let mut probe = keystream(&hash(&[b"keyB", &secret, &info_hash]));
    probe.apply_keystream(&mut vc);
    let mut seen = Vec::new();
    loop {
        let mut b = [0u8; 1];
        io.read_exact(&mut b).await.map_err(|_| "closed")?;
        seen.push(b[0]);
        if seen.ends_with(&vc) {
            break;
        }
        if seen.len() > MAX_PAD + 8 {
            return Err("no VC");
        }
    }
    decrypt.apply_keystream(&mut [0u8; 8]);
    let mut tail = [0u8; 6];
    io.read_exact(&mut tail).await.unwrap();
    decrypt.apply_keystream(&mut tail);
    let select = u32::from_be_bytes(tail[..4].try_into().unwrap());
    assert_eq!(&tail[4..], &[0, 0], "no PadD");
    Ok(Initiator {
        io,
        encrypt,
        decrypt,
        select,
    })
}

async fn pair(
    provide: u32,
    payload: Payload,
    initial: &'static [u8],
) -> (
    Result<Initiator, &'static str>,
    Result<
        Encrypted<tokio::io::ReadHalf<DuplexStream>, tokio::io::WriteHalf<DuplexStream>>,
        MseError,
    >,
) {
    let (a, b) = duplex(64 * 1024);
    let (mut r, w) = tokio::io::split(b);
    let receiver = async move {
        let mut first = [0u8; 48];
        r.read_exact(&mut first).await.unwrap();
        accept(r, w, &first, seeded, payload).await
    };
    tokio::join!(initiate(a, INFO_HASH, provide, initial), receiver)
}

#[tokio::test]
async fn an_rc4_stream_carries_the_initial_payload_and_both_directions() {
    let (a, b) = pair(RC4 | PLAINTEXT, Payload::Either, b"\x13BitTorrent protocol").await;
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.select, RC4);
    assert!(b.is_rc4());
    // The initial payload, then more from the initiator.
    let mut more = b"and more".to_vec();
    a.encrypt.apply_keystream(&mut more);
    a.io.write_all(&more).await.unwrap();
    let mut got = [0u8; 28];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"\x13BitTorrent protocoland more");
    // And back: what the receiver writes, the initiator decrypts.
    b.write_all(b"reply").await.unwrap();
    b.flush().await.unwrap();
    let mut reply = [0u8; 5];
    a.io.read_exact(&mut reply).await.unwrap();
    assert_ne!(&reply, b"reply", "encrypted on the wire");
    a.decrypt.apply_keystream(&mut reply);
    assert_eq!(&reply, b"reply");
    // Slices written at once (a block's header and bytes) continue the same keystream.
    let slices = [std::io::IoSlice::new(b"head"), std::io::IoSlice::new(b"er")];
    assert_eq!(b.write_vectored(&slices).await.unwrap(), 6);
    b.flush().await.unwrap();
    let mut header = [0u8; 6];
    a.io.read_exact(&mut header).await.unwrap();
    a.decrypt.apply_keystream(&mut header);
    assert_eq!(&header, b"header");
}

#[tokio::test]
async fn a_plaintext_payload_only_where_allowed() {
    let (a, b) = pair(PLAINTEXT, Payload::Either, b"hi").await;
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.select, PLAINTEXT);
    assert!(!b.is_rc4());
    a.io.write_all(b" there").await.unwrap();
    let mut got = [0u8; 8];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hi there");

    let (_, b) = pair(PLAINTEXT, Payload::Rc4, b"hi").await;
    assert_eq!(
        b.err(),
        Some(MseError("MSE: no payload encryption in common"))
    );
}

#[tokio::test]
async fn an_unknown_torrent_is_refused() {
    let (a, b) = duplex(64 * 1024);
    let (mut r, w) = tokio::io::split(b);
    let receiver = async move {
        let mut first = [0u8; 48];
        r.read_exact(&mut first).await.unwrap();
        accept(r, w, &first, seeded, Payload::Either).await
    };
    let (_, b) = tokio::join!(initiate(a, [9; 20], RC4, b""), receiver);
    assert_eq!(
        b.err(),
        Some(MseError("MSE: a torrent this seeder does not have"))
    );
}

/// Noise after a valid public key: refused once PadA's bound has passed, never read on.
#[tokio::test]
async fn noise_is_refused_within_the_pad_bound() {
    let (mut a, b) = duplex(64 * 1024);
    let (r, w) = tokio::io::split(b);
    let mut noise = KeyPair::generate().public.to_vec();
    noise.extend((0..4096).map(|i| (i * 7 % 251) as u8));
    a.write_all(&noise).await.unwrap();
    let mut counted = CountingReader { io: r, read: 0 };
    let result = accept(&mut counted, w, &[], seeded, Payload::Either).await;
    assert_eq!(result.err(), Some(MseError("MSE: no synchronization hash")));
    assert!(
        counted.read <= KEY_LEN + MAX_PAD + 20 + 128,
        "{}",
        counted.read
    );
    assert!(
        counted.read < noise.len(),
        "stopped early: {}",
        counted.read
    );
}

#[tokio::test]
async fn degenerate_public_keys_are_refused() {
    let (mut a, b) = duplex(64 * 1024);
    let (r, w) = tokio::io::split(b);
    a.write_all(&[0u8; KEY_LEN]).await.unwrap();
    let result = accept(r, w, &[], seeded, Payload::Either).await;
    assert_eq!(
        result.err(),
        Some(MseError("MSE: a public key no honest peer sends"))
    );
}

struct CountingReader<R> {
    io: R,
    read: usize,
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        self.read += buf.filled().len() - before;
        r
    }
}
