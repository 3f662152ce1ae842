//! The shared store: replicas find each other's torrents in a bucket of the backend, so an
//! object is read once however many replicas serve it. Reads are counted by SeaweedFS's own
//! per-bucket byte counters.

use crate::harness::*;
use crate::seeder::metric;

/// A replica keeping torrents in `store_bucket` (under a prefix of the test's own, so tests
/// sharing the bucket never see each other's entries).
pub fn replica(name: &str, store_bucket: &str, prefix: &str) -> SidecarBuilder<'static> {
    replica_on(env(), name, store_bucket, prefix)
}

/// As [`replica`], in front of `env`'s backend.
fn replica_on<'a>(
    env: &'a Env,
    name: &str,
    store_bucket: &str,
    prefix: &str,
) -> SidecarBuilder<'a> {
    SidecarBuilder::on(env, name)
        .set("store.bucket", store_bucket)
        .set("store.prefix", prefix)
}

pub fn metrics(s: &Sidecar) -> String {
    request(s.admin_port, "GET", "/metrics", &[]).text()
}

/// A torrent through the sidecar on `port`, asked as the tests' public reader of `env`.
fn torrent(env: &Env, port: u16, target: &str) -> Vec<u8> {
    let r = env.public_request(port, "GET", target);
    assert_eq!(r.status, 200, "{target}: {}", r.text());
    r.body
}

/// What `f` made SeaweedFS send from `bucket`.
pub fn read_by(bucket: &str, f: impl FnOnce()) -> u64 {
    let before = bucket_bytes_sent(bucket);
    f();
    bucket_bytes_sent(bucket) - before
}

#[test]
fn a_second_replica_serves_the_first_ones_torrent_reading_nothing() {
    let env = env();
    let dir = env.scratch("store-replicas");
    let (a, b) = (
        replica("store-a", "store", "replicas/").start(),
        replica("store-b", "store", "replicas/").start(),
    );
    let data = test_data(3 * 1024 * 1024 + 5, 1301);
    put_object("shared", "big.bin", &data, &dir);
    let target = "/shared/big.bin?torrent";
    let mut first = Vec::new();
    let read = read_by("shared", || first = torrent(env, a.port, target));
    assert_eq!(read, data.len() as u64 + PROBE_BYTES, "A generates");
    let mut second = Vec::new();
    let read = read_by("shared", || second = torrent(env, b.port, target));
    assert_eq!(read, PROBE_BYTES, "B reads only its READ check");
    assert_eq!(second, first, "identical torrents");
    assert_eq!(metric(&metrics(&b), "s3torrent_store_hits_total"), 1);
    assert_eq!(metric(&metrics(&a), "s3torrent_store_writes_total"), 1);

    // An overwrite: both follow the new ETag, and again only one of them reads it.
    let data2 = test_data(3 * 1024 * 1024 + 5, 1302);
    put_object("shared", "big.bin", &data2, &dir);
    let mut b2 = Vec::new();
    let read = read_by("shared", || b2 = torrent(env, b.port, target));
    assert_eq!(
        read,
        data2.len() as u64 + PROBE_BYTES,
        "B generates this time"
    );
    let mut a2 = Vec::new();
    let read = read_by("shared", || a2 = torrent(env, a.port, target));
    assert_eq!(read, PROBE_BYTES, "A finds B's torrent");
    assert_eq!(a2, b2);
    assert_ne!(a2, first, "the new ETag's torrent");
    // Byte-identical to what a replica without a store generates: the store changes nothing.
    assert_eq!(torrent(env, env.port, target), a2);
    let file = dir.join("big.bin");
    std::fs::write(&file, &data2).unwrap();
    let t = dir.join("big.torrent");
    std::fs::write(&t, &a2).unwrap();
    let check = check_torrent(&t, &file);
    assert_eq!(check["bad_pieces"], serde_json::json!([]), "{check}");
    assert_eq!(
        check["length"].as_u64(),
        Some(data2.len() as u64),
        "{check}"
    );
}

/// Under `store.min_bytes` (1 MiB) the store is not asked: its lookup, lease and write
/// would cost more than reading the object.
#[test]
fn small_objects_bypass_the_store() {
    let env = env();
    let dir = env.scratch("store-small");
    let s = replica("store-small", "store", "small/").start();
    put_object("unstored", "small.bin", &test_data(100_000, 1308), &dir);
    for _ in 0..2 {
        torrent(env, s.port, "/unstored/small.bin?torrent");
    }
    let m = metrics(&s);
    for name in ["hits", "misses", "writes"] {
        assert_eq!(
            metric(&m, &format!("s3torrent_store_{name}_total")),
            0,
            "{m}"
        );
    }
    assert_eq!(
        metric(&m, "s3torrent_generation_hashed_bytes_total"),
        100_000
    );
}

#[test]
fn concurrent_cold_requests_on_two_replicas_read_the_object_once() {
    let env = env();
    let dir = env.scratch("store-lease");
    let (a, b) = (
        replica("lease-a", "store", "lease/").start(),
        replica("lease-b", "store", "lease/").start(),
    );
    let data = test_data(24 * 1024 * 1024, 1303);
    put_object("leased", "lease.bin", &data, &dir);
    let mut bodies = Vec::new();
    let read = read_by("leased", || {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let port = if i % 2 == 0 { a.port } else { b.port };
                std::thread::spawn(move || torrent(env, port, "/leased/lease.bin?torrent"))
            })
            .collect();
        bodies = handles.into_iter().map(|h| h.join().unwrap()).collect();
    });
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "identical bytes");
    assert_eq!(
        read,
        data.len() as u64 + 8 * PROBE_BYTES,
        "one replica read the object, the other waited for its torrent"
    );
    let count = |name: &str| metric(&metrics(&a), name) + metric(&metrics(&b), name);
    assert_eq!(count("s3torrent_store_writes_total"), 1);
    // Normally the second replica waits on the lease; if it came late, it finds the entry.
    assert_eq!(
        count("s3torrent_store_lease_waits_total") + count("s3torrent_store_hits_total"),
        1,
        "the other replica's single flight took the first one's torrent"
    );
}

/// A store bucket that does not exist never fails a request. Here the backends genuinely
/// differ: SeaweedFS creates a bucket on the first PUT by an Admin identity (so the store
/// makes itself), Ceph RGW and Garage refuse it (404 NoSuchBucket), as S3 does.
fn a_missing_store_bucket_still_serves_torrents(env: &Env) {
    let dir = env.scratch("store-missing");
    let data = test_data(1024 * 1024 + 7, 1304);
    env.put_object("unstored", "missing.bin", &data, &dir);
    let target = "/unstored/missing.bin?torrent";
    let expected = torrent(env, env.port, target);
    let missing = replica_on(env, "store-missing", "no-such-store", "").start();
    assert_eq!(torrent(env, missing.port, target), expected);
    let m = metrics(&missing);
    assert!(
        m.contains("s3torrent_store_errors_total{op=\"get\"} 1"),
        "a missing bucket is an error, not a miss: {m}"
    );
    assert_eq!(metric(&m, "s3torrent_store_misses_total"), 0);
    match env.backend {
        Backend::SeaweedFs => assert_eq!(metric(&m, "s3torrent_store_writes_total"), 1, "{m}"),
        Backend::CephRgw | Backend::Garage => {
            assert_eq!(metric(&m, "s3torrent_store_writes_total"), 0, "{m}");
            assert!(
                m.contains("s3torrent_store_errors_total{op=\"put\"} 1"),
                "{m}"
            );
        }
    }
}

crate::on_every_backend!(a_missing_store_bucket_still_serves_torrents);

#[test]
fn a_read_only_store_still_serves_torrents() {
    let env = env();
    let dir = env.scratch("store-read-only");
    let data = test_data(1024 * 1024 + 9, 1307);
    put_object("unstored", "read-only.bin", &data, &dir);
    let target = "/unstored/read-only.bin?torrent";
    let expected = torrent(env, env.port, target);

    // The sidecar's own key may read everything but write nothing.
    let read_only = replica("store-read-only", "store", "read-only/")
        .upstream_credentials(READER)
        .start();
    assert_eq!(torrent(env, read_only.port, target), expected);
    assert_eq!(
        torrent(env, read_only.port, target),
        expected,
        "and from its cache"
    );
    let m = metrics(&read_only);
    assert_eq!(metric(&m, "s3torrent_store_misses_total"), 1, "{m}");
    assert!(
        m.contains("s3torrent_store_errors_total{op=\"put\"} 1"),
        "{m}"
    );
    assert_eq!(metric(&m, "s3torrent_store_writes_total"), 0);
}

/// The same on either backend, counted by the sidecars themselves (Ceph RGW has no byte
/// counters): concurrent cold requests on two replicas hash the object once, and both serve
/// identical bytes — the lease's conditional write is the backend's.
fn replicas_share_one_generation(env: &'static Env) {
    let dir = env.scratch("store-both");
    let (a, b) = (
        replica_on(env, "both-a", "store", "both/").start(),
        replica_on(env, "both-b", "store", "both/").start(),
    );
    let data = test_data(8 * 1024 * 1024 + 1, 1305);
    env.put_object("replicas", "both.bin", &data, &dir);
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let port = if i % 2 == 0 { a.port } else { b.port };
            std::thread::spawn(move || torrent(env, port, "/replicas/both.bin?torrent"))
        })
        .collect();
    let bodies: Vec<Vec<u8>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "identical bytes");
    let count = |name: &str| sum(&metrics(&a), name) + sum(&metrics(&b), name);
    // Without conditional writes (Garage) there is no lease: each replica generates once on
    // its own (never once per request), and both write the same entry.
    let generations = match env.backend.honors_conditional_writes() {
        true => 1,
        false => 2,
    };
    assert_eq!(
        count("s3torrent_generation_hashed_bytes_total"),
        generations * data.len() as u64
    );
    assert_eq!(count("s3torrent_store_writes_total"), generations);
    assert_eq!(count("s3torrent_store_errors_total"), 0);
    // After an overwrite, the other replica generates and the first one reads nothing.
    let data2 = test_data(8 * 1024 * 1024 + 1, 1306);
    env.put_object("replicas", "both.bin", &data2, &dir);
    let fresh = torrent(env, b.port, "/replicas/both.bin?torrent");
    assert_eq!(torrent(env, a.port, "/replicas/both.bin?torrent"), fresh);
    assert_ne!(fresh, bodies[0]);
    let hashed = count("s3torrent_generation_hashed_bytes_total");
    assert_eq!(hashed, generations * data.len() as u64 + data2.len() as u64);
}

crate::on_every_backend!(replicas_share_one_generation);

/// A counter's total over all its labels.
fn sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Someone who can write the store bucket (a tenant who created it first; a pass-through
/// `PUT` before the sidecar refused those) cannot make a replica serve hashes it did not
/// compute: a forged entry fails verification, counts, and the torrent is generated anew.
/// Callers cannot reach the store bucket through the sidecar at all.
fn a_forged_store_entry_is_never_served(env: &Env) {
    let name = format!("forged-{:?}", env.backend).to_lowercase();
    let prefix = format!("{name}/");
    let a = replica_on(env, &format!("{name}-a"), "store", &prefix).start();
    let dir = env.scratch(&name);
    let data = test_data(3 * 1024 * 1024 + 11, 1320);
    env.put_object("forged", &format!("{name}.bin"), &data, &dir);
    let target = format!("/forged/{name}.bin?torrent");
    let good = torrent(env, a.port, &target);
    let listed = s3client(&env.backend_url(), ADMIN, &["list", "store", &prefix]);
    let entry = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .find(|k| !k.contains("/.leases/"))
        .unwrap_or_else(|| panic!("an entry: {listed}"));
    let file = dir.join("entry");
    let out = s3client(
        &env.backend_url(),
        ADMIN,
        &["get", "store", &entry, file.to_str().unwrap()],
    );
    assert!(out.get("error").is_none(), "{out}");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.windows(6).position(|w| w == b"pieces").unwrap() + 20;
    bytes[at] ^= 0xff; // one hash byte
    std::fs::write(&file, &bytes).unwrap();
    let out = s3client(
        &env.backend_url(),
        ADMIN,
        &["put", "store", &entry, file.to_str().unwrap()],
    );
    assert!(out.get("error").is_none(), "{out}");

    let b = replica_on(env, &format!("{name}-b"), "store", &prefix).start();
    let served = torrent(env, b.port, &target);
    assert_eq!(served, good, "generated again, not the forged entry");
    let (t, f) = (dir.join("t.torrent"), dir.join("data"));
    std::fs::write(&t, &served).unwrap();
    std::fs::write(&f, &data).unwrap();
    assert_eq!(check_torrent(&t, &f)["bad_pieces"], serde_json::json!([]));
    let m = metrics(&b);
    assert_eq!(
        metric(&m, "s3torrent_store_errors_total{op=\"verify\"}"),
        1,
        "{m}"
    );

    // Path-style and virtual-hosted, any method: 403, and the backend is not asked.
    let key = format!("/store/{entry}");
    for (method, target, host) in [
        ("GET", key.as_str(), None),
        ("PUT", key.as_str(), None),
        ("GET", "/store/", None),
        ("GET", "/store?list-type=2", None),
        ("GET", &format!("/{entry}"), Some(format!("store.{DOMAIN}"))),
        ("GET", &format!("{key}?torrent"), None),
        ("GET", &format!("/_s3torrent/webseed{key}"), None),
    ] {
        let host = host.unwrap_or(format!("127.0.0.1:{}", b.port));
        let r = request(b.port, method, target, &[("Host", &host)]);
        assert_eq!(r.status, 403, "{method} {target}: {}", r.text());
        assert_eq!(
            r.s3_code().as_deref(),
            Some("AccessDenied"),
            "{method} {target}"
        );
        // The sidecar's own refusal, not the backend's answer to a request passed on.
        assert!(
            r.text().contains("torrent store is not reachable"),
            "{method} {target}: {}",
            r.text()
        );
    }
}

crate::on_every_backend!(a_forged_store_entry_is_never_served);

/// `store.expected_bucket_owner` travels on every store request, so a backend refuses them
/// when someone else owns the bucket (seen by a backend that records what it is asked).
#[test]
fn store_requests_name_the_expected_bucket_owner() {
    let (fake, heads) = recording_backend();
    let port = sidecar("store-owner")
        .backend_port(fake)
        .set("store.bucket", "store")
        .set("store.min_bytes", 0)
        .set("store.expected_bucket_owner", "123456789012")
        .start()
        .port;
    let r = request(port, "GET", "/b/owned.bin?torrent", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let heads = heads.lock().unwrap();
    let store: Vec<&String> = heads.iter().filter(|h| h.contains(" /store/")).collect();
    assert!(!store.is_empty(), "the store was asked: {heads:?}");
    for h in &store {
        assert!(
            h.contains("x-amz-expected-bucket-owner: 123456789012"),
            "{h}"
        );
    }
    let object: Vec<&String> = heads
        .iter()
        .filter(|h| h.contains(" /b/owned.bin"))
        .collect();
    assert!(
        object
            .iter()
            .all(|h| !h.contains("x-amz-expected-bucket-owner")),
        "only store requests carry it"
    );
}
