//! Cache, single-flight and parallel fetch, counted with SeaweedFS's own per-bucket byte
//! counters (an independent witness of what the sidecar read). Every `?torrent` request
//! reads `PROBE_BYTES` as its READ check (a one-byte GET as the caller); the object itself
//! is read only by generations.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::*;

#[test]
fn a_cache_hit_never_touches_the_object_bytes() {
    let env = env();
    let dir = env.scratch("cache-hit");
    let data = test_data(2 * 1024 * 1024, 70);
    put_object("cache", "hit.bin", &data, &dir);
    let before = bucket_bytes_sent("cache");
    let first = request(env.port, "GET", "/cache/hit.bin?torrent", &[]);
    assert_eq!(first.status, 200);
    let after_miss = bucket_bytes_sent("cache");
    assert_eq!(
        after_miss - before,
        data.len() as u64 + PROBE_BYTES,
        "a miss reads the object once"
    );
    for _ in 0..3 {
        let again = request(env.port, "GET", "/cache/hit.bin?torrent", &[]);
        assert_eq!(again.body, first.body);
    }
    assert_eq!(
        bucket_bytes_sent("cache") - after_miss,
        3 * PROBE_BYTES,
        "hits read nothing but their READ checks"
    );
}

#[test]
fn eviction_is_by_bytes() {
    let env = env();
    let dir = env.scratch("cache-evict");
    // Each entry weighs ~3.2 KB: the encoded torrent (~1.5 KB, 64 pieces × 20 bytes and the
    // rest), the piece list kept beside it for re-rendering (1280 bytes), the key and
    // per-entry overhead; an 8000-byte budget holds two, not three.
    let objects: Vec<Vec<u8>> = (0..3).map(|i| test_data(1024 * 1024, 80 + i)).collect();
    for (i, d) in objects.iter().enumerate() {
        put_object("evict", &format!("{i}.bin"), d, &dir);
    }
    let port = sidecar("evict").set("cache.max_bytes", 8000).start().port;
    let get = |i: usize| {
        assert_eq!(
            request(port, "GET", &format!("/evict/{i}.bin?torrent"), &[]).status,
            200
        )
    };
    let read = |f: &dyn Fn()| {
        let before = bucket_bytes_sent("evict");
        f();
        bucket_bytes_sent("evict") - before
    };
    let (miss, hit) = (1024 * 1024 + PROBE_BYTES, PROBE_BYTES);
    assert_eq!(read(&|| get(0)), miss);
    assert_eq!(read(&|| get(1)), miss);
    assert_eq!(read(&|| get(0)), hit, "0 is cached (and now most recent)");
    assert_eq!(read(&|| get(2)), miss, "2 evicts the least recent, 1");
    assert_eq!(read(&|| get(0)), hit, "0 survived");
    assert_eq!(read(&|| get(1)), miss, "1 was evicted");
}

#[test]
fn concurrent_cold_requests_read_the_object_once() {
    let env = env();
    let dir = env.scratch("flight");
    let data = test_data(32 * 1024 * 1024, 90);
    put_object("flight", "one.bin", &data, &dir);
    let before = bucket_bytes_sent("flight");
    let port = env.port;
    let handles: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || request(port, "GET", "/flight/one.bin?torrent", &[])))
        .collect();
    let bodies: Vec<Vec<u8>> = handles
        .into_iter()
        .map(|h| {
            let r = h.join().unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            r.body
        })
        .collect();
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "all callers get identical bytes"
    );
    assert_eq!(
        bucket_bytes_sent("flight") - before,
        data.len() as u64 + 20 * PROBE_BYTES,
        "exactly one upstream read of the object"
    );
}

#[test]
fn a_waiter_that_disconnects_cancels_nothing() {
    let env = env();
    let dir = env.scratch("flight-disconnect");
    let data = test_data(48 * 1024 * 1024, 91);
    put_object("gone", "gone.bin", &data, &dir);
    let before = bucket_bytes_sent("gone");
    {
        let mut s = TcpStream::connect(("127.0.0.1", env.port)).unwrap();
        s.write_all(b"GET /gone/gone.bin?torrent HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
    } // the first caller hangs up mid-generation
    std::thread::sleep(Duration::from_millis(50));
    let r = request(env.port, "GET", "/gone/gone.bin?torrent", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        bucket_bytes_sent("gone") - before,
        data.len() as u64 + 2 * PROBE_BYTES,
        "the second caller joined the first generation (or hit its cached result)"
    );
}

#[test]
fn parallel_ranged_fetch_gives_the_same_torrent() {
    let env = env();
    let dir = env.scratch("parallel");
    let data = test_data(9 * 1024 * 1024 + 12_345, 92);
    put_object("par", "par.bin", &data, &dir);
    let single = sidecar("single-stream")
        .set("limits.fetch_streams", 1)
        .start()
        .port;
    let multi = sidecar("multi-stream")
        .set("limits.fetch_streams", 3)
        .set("limits.parallel_fetch_min_bytes", 1048576)
        .start()
        .port;
    let before = bucket_bytes_sent("par");
    let a = request(single, "GET", "/par/par.bin?torrent", &[]);
    let b = request(multi, "GET", "/par/par.bin?torrent", &[]);
    assert_eq!(a.status, 200);
    assert_eq!(b.status, 200, "{}", b.text());
    assert_eq!(a.body, b.body);
    assert_eq!(
        bucket_bytes_sent("par") - before,
        2 * (data.len() as u64 + PROBE_BYTES),
        "ranges do not overlap"
    );
    let t = dir.join("par.torrent");
    std::fs::write(&t, &b.body).unwrap();
    let file = dir.join("par.bin");
    std::fs::write(&file, &data).unwrap();
    let check = check_torrent(&t, &file);
    assert_eq!(check["bad_pieces"], serde_json::json!([]), "{check}");
}

/// A backend that answers READ checks, then stalls each object GET briefly and breaks it
/// off: a failure that lands while several callers wait on one generation.
fn failing_backend() -> (u16, Arc<AtomicUsize>) {
    let gets = Arc::new(AtomicUsize::new(0));
    let counter = gets.clone();
    let port = fake_backend(move |line, out| {
        if is_probe(line) {
            return out.write_all(&probe_answer("\"f\"", 1_000_000)).is_ok();
        }
        let head = "HTTP/1.1 200 OK\r\nETag: \"f\"\r\nContent-Length: 1000000\r\n\r\n";
        let _ = out.write_all(head.as_bytes());
        if !line.starts_with("GET") {
            return true;
        }
        counter.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(500));
        let _ = out.write_all(&[1u8; 1000]);
        false
    });
    (port, gets)
}

#[test]
fn a_failed_flight_is_reported_to_every_waiter_and_not_cached() {
    let (fake, gets) = failing_backend();
    let port = sidecar("failing-flight").backend_port(fake).start().port;
    let handles: Vec<_> = (0..5)
        .map(|_| std::thread::spawn(move || request(port, "GET", "/b/k?torrent", &[])))
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.status, 502, "{}", r.text());
        assert_eq!(r.s3_code().as_deref(), Some("InternalError"));
    }
    assert_eq!(
        gets.load(Ordering::SeqCst),
        1,
        "one flight for five callers"
    );
    assert_eq!(request(port, "GET", "/b/k?torrent", &[]).status, 502);
    assert_eq!(gets.load(Ordering::SeqCst), 2, "the failure was not cached");
}

#[test]
fn revalidate_after_reuses_a_callers_probe_and_only_theirs() {
    let env = env();
    let dir = env.scratch("revalidate");
    let first = test_data(40_000, 93);
    put_object("revalidate", "reval.bin", &first, &dir);
    let s = sidecar("revalidate")
        .set("cache.revalidate_after", 60)
        .start();
    let probes = || {
        let text = request(s.admin_port, "GET", "/metrics", &[]).text();
        text.lines()
            .find_map(|l| l.strip_prefix("s3torrent_upstream_requests_total{kind=\"probe\"} "))
            .map_or(0, |v| v.trim().parse::<u64>().unwrap())
    };
    let anon = |port: u16| request(port, "GET", "/revalidate/reval.bin?torrent", &[]);
    let t1 = anon(s.port);
    assert_eq!(t1.status, 200);
    assert_eq!(anon(s.port).body, t1.body);
    assert_eq!(probes(), 1, "the second anonymous request reused the probe");

    // Within the window an overwrite is not seen by that caller: the documented trade.
    put_object("revalidate", "reval.bin", &test_data(40_000, 94), &dir);
    assert_eq!(anon(s.port).body, t1.body);
    assert_eq!(probes(), 1);

    // Another caller is asked about on their own, and sees the new bytes.
    let out = dir.join("reader.torrent");
    let r = s3client(
        &format!("http://127.0.0.1:{}", s.port),
        READER,
        &["torrent", "revalidate", "reval.bin", out.to_str().unwrap()],
    );
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(probes(), 2);
    assert_ne!(std::fs::read(&out).unwrap(), t1.body);
}
