//! Fuzz target bodies, shared by the cargo-fuzz targets in `fuzz/` (libFuzzer, run long) and
//! by `cargo test` (a short smoke run over the regression inputs in `fuzz/regressions/` and
//! pseudo-random inputs). Each takes raw bytes, must never panic on them, and asserts the
//! invariants that make the parser trustworthy.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::config::{Credential, Domain, TrackerConfig};
use crate::s3::route::{route as route_request, Route, MAX_KEY_BYTES};
use crate::s3::sigv4::{sign_headers, Caller, SignedRequest, SigningKey, Verifier, EMPTY_SHA256};
use crate::s3::uri::{encode, encode_path};
use crate::torrent::bencode;
use crate::tracker::Tracker;

/// Splits fuzz input into fields at 0xFF bytes (never valid UTF-8), as lossy strings.
fn fields(data: &[u8], n: usize) -> Vec<String> {
    let mut out: Vec<String> = data
        .splitn(n, |&b| b == 0xFF)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    out.resize(n, String::new());
    out
}

const METHODS: [&str; 8] = [
    "GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "PROPFIND",
];

/// Routing: any method, host, path and query. A torrent route names a non-empty bucket and
/// key of at most 1024 bytes, and the key survives S3's encoding round trip.
pub fn route(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let f = fields(rest, 3);
    let method = Method::from_bytes(METHODS[selector as usize % METHODS.len()].as_bytes()).unwrap();
    let domains = [Domain("s3.example.com".into())];
    let query = (!f[2].is_empty()).then_some(f[2].as_str());
    if let Route::Torrent(t) = route_request(&method, &f[1], query, Some(&f[0]), &domains) {
        let o = &t.object;
        assert!(!o.bucket.is_empty() && !o.key.is_empty());
        assert!(o.key.len() <= MAX_KEY_BYTES);
        let path = format!("/{}/{}", encode(&o.bucket), encode_path(&o.key));
        match route_request(&Method::GET, &path, Some("torrent"), None, &domains) {
            Route::Torrent(again) => {
                assert_eq!(
                    (&again.object.bucket, &again.object.key),
                    (&o.bucket, &o.key)
                )
            }
            other => panic!("{path}: {other:?}"),
        }
    }
}

const AK: &str = "AKIDFUZZ";
const SK: &str = "fuzz/secret+key";

fn verifier(credentials: &[Credential], now: SystemTime) -> Verifier<'_> {
    Verifier {
        bucket_in_host: None,
        credentials,
        region: "us-east-1",
        service: "s3",
        now,
    }
}

/// SigV4: garbage never authenticates (and never panics); a request signed by `aws-sigv4`
/// for a fuzzed path and query authenticates; the same with one signature digit changed
/// does not.
pub fn sigv4(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let credentials = [Credential::new(AK, SK)];
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let v = verifier(&credentials, now);
    let f = fields(rest, 6);
    if mode % 2 == 0 {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", &f[0]),
            ("x-amz-date", &f[1]),
            ("x-amz-content-sha256", &f[2]),
            ("host", &f[3]),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        let query = (!f[5].is_empty()).then_some(f[5].as_str());
        let req = SignedRequest {
            method: "GET",
            path: &f[4],
            query,
            headers: &headers,
        };
        assert!(!matches!(v.authenticate(&req), Ok(Caller::Signed { .. })));
        return;
    }
    let path = format!("/b/{}", encode_path(&f[0]));
    let mut query: Vec<String> = vec!["torrent".into()];
    for pair in [(&f[1], &f[2]), (&f[3], &f[4])] {
        if !pair.0.is_empty() {
            query.push(format!("{}={}", encode(pair.0), encode(pair.1)));
        }
    }
    let query = query.join("&");
    let host = "127.0.0.1:8080";
    let mut headers = vec![
        ("host".to_string(), host.to_string()),
        ("x-amz-content-sha256".to_string(), EMPTY_SHA256.to_string()),
    ];
    if let Ok(value) = HeaderValue::from_str(f[5].trim()) {
        if !value.is_empty() {
            headers.push((
                "x-fuzz".to_string(),
                value.to_str().unwrap_or_default().to_string(),
            ));
        }
    }
    let key = SigningKey {
        access_key_id: AK,
        secret_access_key: SK,
        region: "us-east-1",
    };
    let Ok(added) = sign_headers(
        &key,
        "GET",
        &format!("http://{host}{path}?{query}"),
        &headers,
        now,
    ) else {
        return;
    };
    let mut map = HeaderMap::new();
    for (k, val) in headers.iter().chain(added.iter()) {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(val).unwrap(),
        );
    }
    let req = SignedRequest {
        method: "GET",
        path: &path,
        query: Some(&query),
        headers: &map,
    };
    let result = v.authenticate(&req);
    assert!(
        matches!(result, Ok(Caller::Signed { .. })),
        "{path}?{query}: {result:?}"
    );

    let auth = map["authorization"].to_str().unwrap().to_string();
    let last = auth.chars().last().unwrap();
    let flipped = if last == '0' { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &auth[..auth.len() - 1]);
    let mut tampered_map = map.clone();
    tampered_map.insert("authorization", HeaderValue::from_str(&tampered).unwrap());
    let req = SignedRequest {
        headers: &tampered_map,
        ..req
    };
    assert!(v.authenticate(&req).is_err());
}

/// Bencode: the strict decoder accepts only canonical input, so whatever it accepts
/// re-encodes to the same bytes.
pub fn bencode(data: &[u8]) {
    if let Ok(v) = bencode::decode(data) {
        let encoded = v.encode();
        assert_eq!(encoded, data);
        assert_eq!(bencode::decode(&encoded).unwrap(), v);
    }
}

/// Tracker: any announce or scrape query gets a bencoded dictionary — a `failure reason`,
/// or an answer with `interval` (announce) or `files` (scrape).
pub fn announce(data: &[u8]) {
    let tracker = tracker();
    let query = String::from_utf8_lossy(data);
    let a = bencode::decode(&tracker.announce(&query, [127, 0, 0, 1].into())).expect("bencoded");
    assert!(a.get("failure reason").is_some() || a.get("interval").is_some());
    let s = bencode::decode(&tracker.scrape(&query)).expect("bencoded");
    assert!(s.get("failure reason").is_some() || s.get("files").is_some());
}

/// Peer wire: any byte stream, fed in arbitrary splits, decodes into messages or a clean
/// error, never a panic; every decoded message re-encodes to bytes that decode to itself.
pub fn peer_wire(data: &[u8]) {
    use crate::seeder::wire::{Handshake, Message, HANDSHAKE_LEN};
    use bytes::BytesMut;
    if let Ok(h) = <&[u8; HANDSHAKE_LEN]>::try_from(data.get(..HANDSHAKE_LEN).unwrap_or(&[])) {
        if let Some(parsed) = Handshake::parse(h) {
            assert_eq!(&parsed.encode(), h);
        }
    }
    let split = data.first().map_or(1, |b| usize::from(*b).max(1));
    let mut buf = BytesMut::new();
    for chunk in data.chunks(split) {
        buf.extend_from_slice(chunk);
        loop {
            match Message::decode(&mut buf) {
                Ok(Some(message)) => {
                    let mut again = BytesMut::new();
                    message.encode(&mut again);
                    let back = Message::decode(&mut again).expect("re-encoded bytes decode");
                    assert_eq!(back.as_ref(), Some(&message));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

fn tracker() -> &'static Tracker {
    static TRACKER: std::sync::OnceLock<Tracker> = std::sync::OnceLock::new();
    TRACKER.get_or_init(|| {
        let t = Tracker::new(TrackerConfig {
            max_torrents: 4,
            max_peers_per_torrent: 16,
            ..TrackerConfig::default()
        });
        t.register([1; 20]);
        t
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Pseudo-random inputs biased towards the bytes these parsers split on.
    fn inputs(seed: u64, count: usize) -> impl Iterator<Item = Vec<u8>> {
        const ALPHABET: &[u8] = b"%/=&?.:+ abcz09AZ_-~\xff\x00ed4il";
        let mut state = seed | 1;
        (0..count).map(move |_| {
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let len = (next() % 200) as usize;
            (0..len)
                .map(|_| {
                    let r = next();
                    if r % 3 == 0 {
                        (r >> 8) as u8
                    } else {
                        ALPHABET[(r >> 8) as usize % ALPHABET.len()]
                    }
                })
                .collect()
        })
    }

    fn smoke(name: &str, target: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions")
            .join(name);
        let mut regressions = 0;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries {
                let data = std::fs::read(entry.unwrap().path()).unwrap();
                target(&data);
                regressions += 1;
            }
        }
        assert!(regressions > 0, "no regression inputs in {}", dir.display());
        for data in inputs(name.len() as u64 * 7_777, 5_000) {
            target(&data);
        }
    }

    #[test]
    fn smoke_route() {
        smoke("route", route);
    }

    #[test]
    fn smoke_sigv4() {
        smoke("sigv4", sigv4);
    }

    #[test]
    fn smoke_bencode() {
        smoke("bencode", bencode);
    }

    #[test]
    fn smoke_announce() {
        smoke("announce", announce);
    }

    #[test]
    fn smoke_peer_wire() {
        smoke("peer_wire", peer_wire);
    }
}
