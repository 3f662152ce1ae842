//! Every error row of the contract: status, S3 `Code`, `x-amz-request-id`, XML body.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::harness::*;

fn assert_s3_error(r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.s3_code().as_deref(), Some(code), "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/xml"));
    let id = r.header("x-amz-request-id").expect("x-amz-request-id");
    assert!(
        r.text().contains(&format!("<RequestId>{id}</RequestId>")),
        "{}",
        r.text()
    );
}

fn no_such_key_and_no_such_bucket(env: &Env) {
    // A genuine difference: Ceph RGW, like S3, does not tell a caller who may not list the
    // bucket that a key is missing (403); SeaweedFS does (404); Garage serves no anonymous
    // caller anything (403). The sidecar passes on whichever the backend says.
    let anonymous = (404, "NoSuchKey");
    let anonymous = match env.backend {
        Backend::SeaweedFs => anonymous,
        Backend::CephRgw | Backend::Garage => (403, "AccessDenied"),
    };
    let missing = request(env.port, "GET", "/public/nope/missing.bin?torrent", &[]);
    assert_s3_error(&missing, anonymous.0, anonymous.1);
    let out = env.scratch("nosuch").join("t.torrent");
    let as_reader = |bucket: &str| {
        s3client(
            &env.sidecar_url(),
            READER,
            &["torrent", bucket, "nope/missing.bin", out.to_str().unwrap()],
        )
    };
    // Garage words its errors its own way; the sidecar passes on the backend's words.
    let (no_key, no_bucket) = match env.backend {
        Backend::Garage => ("Key not found", "Bucket not found: no-such-bucket-x"),
        _ => (
            "The specified key does not exist.",
            "The specified bucket does not exist",
        ),
    };
    let r = as_reader("public");
    assert_eq!(r["error"]["status"], 404, "a reader may list it: {r}");
    assert_eq!(r["error"]["code"], "NoSuchKey", "{r}");
    assert_eq!(r["error"]["message"], no_key, "{r}");
    // A missing bucket is told from a missing key, with its own message.
    let r = s3client(
        &env.sidecar_url(),
        READER,
        &["torrent", "no-such-bucket-x", "k", out.to_str().unwrap()],
    );
    assert_eq!(r["error"]["status"], 404, "{r}");
    assert_eq!(r["error"]["code"], "NoSuchBucket", "{r}");
    assert_eq!(
        r["error"]["message"], no_bucket,
        "the bucket's message, never the key's: {r}"
    );
    assert_eq!(
        r["error"]["request_id"].as_str().map(str::len),
        Some(16),
        "{r}"
    );
    // HEAD: same status and headers, no body.
    let head = request(env.port, "HEAD", "/public/nope/missing.bin?torrent", &[]);
    assert_eq!(head.status, anonymous.0);
    assert!(head.body.is_empty());
    assert!(head.header("x-amz-request-id").is_some());
}

#[test]
fn write_methods_are_not_allowed() {
    let env = env();
    for method in ["PUT", "POST", "DELETE"] {
        let r = request(
            env.port,
            method,
            "/public/x.bin?torrent",
            &[("Content-Length", "0")],
        );
        assert_s3_error(&r, 405, "MethodNotAllowed");
    }
}

fn empty_object_and_object_over_the_limit(env: &Env) {
    let dir = env.scratch("limits");
    env.put_object("public", "lim/empty.bin", b"", &dir);
    let r = env.public_request(env.port, "GET", "/public/lim/empty.bin?torrent");
    assert_s3_error(&r, 400, "InvalidRequest");
    assert!(r.text().contains("empty"), "{}", r.text());

    env.put_object("public", "lim/big.bin", &test_data(1001, 50), &dir);
    let small_limit = SidecarBuilder::on(env, "limit-1000")
        .set("torrent.max_object_size", 1000)
        .start();
    let r = env.public_request(small_limit.port, "GET", "/public/lim/big.bin?torrent");
    assert_s3_error(&r, 400, "InvalidRequest");
    assert!(
        r.text()
            .contains("Torrent creation is not supported for objects larger than 1000"),
        "{}",
        r.text()
    );
}

fn sse_c_objects_are_refused_with_a_reason(env: &Env) {
    let dir = env.scratch("ssec");
    let file = dir.join("s.bin");
    std::fs::write(&file, test_data(3000, 51)).unwrap();
    let out = s3client(
        &env.backend_url(),
        ADMIN,
        &["put-ssec", "private", "ssec/s.bin", file.to_str().unwrap()],
    );
    assert!(out.get("error").is_none(), "{out}");
    let t = dir.join("s.torrent");
    let r = s3client(
        &env.sidecar_url(),
        READER,
        &["torrent", "private", "ssec/s.bin", t.to_str().unwrap()],
    );
    assert_eq!(r["error"]["status"], 400, "{r}");
    assert_eq!(r["error"]["code"], "InvalidRequest", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("SSE-C"),
        "{r}"
    );
}

#[test]
fn malformed_requests_get_4xx() {
    let env = env();
    assert_s3_error(
        &request(env.port, "GET", "/public/%zz?torrent", &[]),
        400,
        "InvalidURI",
    );
    assert_s3_error(
        &request(env.port, "GET", "/public/k?torrent&torrent", &[]),
        400,
        "InvalidArgument",
    );
    assert_s3_error(
        &request(env.port, "GET", "/public?torrent", &[]),
        400,
        "InvalidRequest",
    );
    let long = format!("/public/{}?torrent", "k".repeat(1025));
    assert_s3_error(
        &request(env.port, "GET", &long, &[]),
        400,
        "KeyTooLongError",
    );
    let v2 = request(
        env.port,
        "GET",
        "/public/k?torrent",
        &[("Authorization", "AWS AKID:c2lnbmF0dXJl")],
    );
    // SigV2 is verified now; without a Date it is refused as S3 refuses it.
    assert_s3_error(&v2, 403, "AccessDenied");
    let malformed = request(
        env.port,
        "GET",
        "/public/k?torrent",
        &[("Authorization", "AWS no-colon")],
    );
    assert_s3_error(&malformed, 400, "InvalidArgument");
}

#[test]
fn too_many_generations_is_slow_down_with_retry_after() {
    let env = env();
    let dir = env.scratch("slowdown");
    for i in 0..4 {
        put_object(
            "public",
            &format!("slow/{i}.bin"),
            &test_data(24 * 1024 * 1024, 60 + i),
            &dir,
        );
    }
    let port = sidecar("slowdown")
        .set("limits.max_concurrent_generations", 1)
        .set("limits.max_queued_generations", 0)
        .start()
        .port;
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                request(port, "GET", &format!("/public/slow/{i}.bin?torrent"), &[])
            })
        })
        .collect();
    let responses: Vec<Response> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = responses.iter().filter(|r| r.status == 200).count();
    let slow: Vec<&Response> = responses.iter().filter(|r| r.status == 503).collect();
    assert!(ok >= 1, "at least the first generation completes");
    assert!(
        !slow.is_empty(),
        "with one slot and no queue, concurrent cold requests are refused"
    );
    for r in slow {
        assert_s3_error(r, 503, "SlowDown");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    // Once the burst is over the same sidecar serves them all.
    for i in 0..4 {
        assert_eq!(
            request(port, "GET", &format!("/public/slow/{i}.bin?torrent"), &[]).status,
            200
        );
    }
}

#[test]
fn unreachable_backend_is_503_for_torrents_and_pass_through() {
    let dead = free_ports(1)[0];
    let port = sidecar("dead-backend").backend_port(dead).start().port;
    assert_s3_error(
        &request(port, "GET", "/public/x.bin?torrent", &[]),
        503,
        "ServiceUnavailable",
    );
    assert_s3_error(
        &request(port, "GET", "/public/x.bin", &[]),
        503,
        "ServiceUnavailable",
    );
}

/// A backend that answers READ checks correctly but breaks every object GET off after 5000
/// of 100000 bytes: no real server can be made to do that on demand.
fn short_body_backend() -> (u16, Arc<AtomicUsize>) {
    let gets = Arc::new(AtomicUsize::new(0));
    let counter = gets.clone();
    let port = fake_backend(move |line, out| {
        if is_probe(line) {
            return out.write_all(&probe_answer("\"fake\"", 100_000)).is_ok();
        }
        let head = "HTTP/1.1 200 OK\r\nETag: \"fake\"\r\nContent-Length: 100000\r\nLast-Modified: Sat, 21 Nov 2026 10:00:00 GMT\r\n\r\n";
        let _ = out.write_all(head.as_bytes());
        if !line.starts_with("GET") {
            return true;
        }
        counter.fetch_add(1, Ordering::SeqCst);
        let _ = out.write_all(&[7u8; 5000]);
        false // the connection closes mid-body
    });
    (port, gets)
}

#[test]
fn backend_breaking_off_mid_body_is_502_and_nothing_is_cached() {
    let (fake, gets) = short_body_backend();
    let port = sidecar("short-body").backend_port(fake).start().port;
    for attempt in 1..=2 {
        let r = request(port, "GET", "/b/k.bin?torrent", &[]);
        assert_s3_error(&r, 502, "InternalError");
        assert_eq!(
            gets.load(Ordering::SeqCst),
            attempt,
            "each attempt re-reads: nothing was cached"
        );
    }
    // The sidecar keeps serving.
    let health = request(port, "GET", "/b/k.bin?torrent", &[]);
    assert_eq!(health.status, 502);
}

crate::on_every_backend!(
    no_such_key_and_no_such_bucket,
    empty_object_and_object_over_the_limit,
    sse_c_objects_are_refused_with_a_reason,
);
