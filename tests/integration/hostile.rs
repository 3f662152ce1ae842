//! Malformed and hostile requests: each gets a clear 4xx (or the connection is closed),
//! never a 5xx or a crash, and the sidecar keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Sends raw bytes; returns every status line the server answered before closing.
fn raw(port: u16, bytes: &[u8]) -> Vec<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text[i + 9..].get(..3)?.parse().ok())
        .collect()
}

/// A clear refusal: at least one answer, all of them 4xx.
fn assert_4xx(statuses: &[u16], what: &str) {
    assert!(!statuses.is_empty(), "{what}: closed without an answer");
    assert!(
        statuses.iter().all(|s| (400..500).contains(s)),
        "{what}: {statuses:?}"
    );
}

fn still_serving(port: u16) {
    let r = request(port, "GET", "/public/hostile/ok.bin?torrent", &[]);
    assert_eq!(r.status, 200, "the sidecar stopped serving: {}", r.text());
}

fn setup() -> u16 {
    let env = env();
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        put_object(
            "public",
            "hostile/ok.bin",
            &test_data(1000, 600),
            &env.scratch("hostile"),
        );
    });
    env.port
}

#[test]
fn absurd_headers_and_queries_get_4xx() {
    let port = setup();
    let huge_header = format!(
        "GET /public/k?torrent HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2_000_000)
    );
    // pingora takes headers up to 1 MiB (memory stays bounded by that); past it: 400.
    assert_4xx(&raw(port, huge_header.as_bytes()), "2 MB header");
    let many = format!(
        "GET /public/k?torrent HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "X-A: b\r\n".repeat(2000)
    );
    assert_4xx(&raw(port, many.as_bytes()), "2000 headers");
    let long_query = format!("/public/hostile/ok.bin?torrent&{}", "x=y&".repeat(50_000));
    let request = format!("GET {long_query} HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_4xx(&raw(port, request.as_bytes()), "200 KB query string");
    still_serving(port);
}

#[test]
fn raw_non_utf8_and_traversal_paths() {
    let port = setup();
    for target in [
        &b"/public/\xff\xfe?torrent"[..],
        b"/public/%C0%AF?torrent",
        b"/public/../../etc/passwd?torrent",
        b"/public/a%00b?torrent",
    ] {
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(target);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_4xx(&raw(port, &req), &String::from_utf8_lossy(target));
    }
    still_serving(port);
}

#[test]
fn request_smuggling_shapes_are_refused_or_neutralised() {
    let port = setup();
    // The hidden GET targets a bucket of its own, so its byte counter is this test's alone.
    put_object(
        "hostile",
        "hidden.bin",
        &test_data(999, 601),
        &env().scratch("hostile"),
    );
    let before = bucket_bytes_sent("hostile");
    // Conflicting framing; a second request hidden in the body must never run.
    let smuggle = b"POST /public/hostile/ok.bin?torrent HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hostile/hidden.bin HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_4xx(&raw(port, smuggle), "CL + TE");
    assert_eq!(
        bucket_bytes_sent("hostile"),
        before,
        "the hidden GET reached the backend"
    );
    let two_lengths = b"GET /public/hostile/ok.bin?torrent HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 7\r\n\r\n";
    assert_4xx(&raw(port, two_lengths), "two Content-Lengths");
    still_serving(port);
}

#[test]
fn slowloris_does_not_starve_other_clients() {
    let port = setup();
    // 200 connections that never finish their headers.
    let idle: Vec<TcpStream> = (0..200)
        .filter_map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.write_all(b"GET /public/hostile/ok.bin?torrent HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .ok()?;
            Some(s)
        })
        .collect();
    assert!(idle.len() >= 150);
    let t = Instant::now();
    still_serving(port);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    drop(idle);
}

/// Request targets that are not origin-form are refused and never reach the backend.
#[test]
fn only_origin_form_targets_are_served() {
    let (fake, heads) = recording_backend();
    let port = sidecar("origin-form").backend_port(fake).start().port;
    let targets = [
        "b/k?torrent".to_string(),
        format!("http://127.0.0.1:{fake}/b/k?torrent"),
        format!("http://127.0.0.1:{fake}/b/k"),
        "*".to_string(),
    ];
    for target in &targets {
        let statuses = raw(
            port,
            format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
        assert_4xx(&statuses, target);
        assert_eq!(statuses[0], 400, "{target}");
    }
    assert!(
        heads.lock().unwrap().is_empty(),
        "forwarded: {:?}",
        heads.lock().unwrap()
    );
    still_serving(port);
}

/// A sidecar whose backend is down, logging at the default level to a file.
fn down_backend_sidecar(name: &str) -> (u16, std::path::PathBuf) {
    down_backend_sidecar_logging(name, "info")
}

fn down_backend_sidecar_logging(name: &str, level: &'static str) -> (u16, std::path::PathBuf) {
    let dead = free_ports(1)[0];
    let s = sidecar(name).backend_port(dead).logging(level).start();
    (s.port, s.log)
}

#[test]
fn error_bodies_name_no_backend_address_or_internal_chain() {
    let (port, _) = down_backend_sidecar("no-internals");
    for target in ["/b/k?torrent", "/b/k"] {
        let r = request(port, "GET", target, &[]);
        assert_eq!(r.status, 503, "{target}: {}", r.text());
        let body = r.text();
        for leak in ["127.0.0.1", "ConnectRefused", "context", "Fail to", "addr"] {
            assert!(!body.contains(leak), "{target}: {leak} in {body}");
        }
        assert!(body.contains("<RequestId>"), "{body}");
    }
}

#[test]
fn no_log_line_carries_a_presigned_credential() {
    no_log_line_carries_a_credential_at("info");
}

/// At `debug` too: pingora's own debug lines (request heads as sent upstream, raw buffers)
/// carried presigned signatures and `Authorization` before; its crates stay at `info` unless
/// named.
#[test]
fn no_debug_log_line_carries_a_credential() {
    no_log_line_carries_a_credential_at("debug");
}

fn no_log_line_carries_a_credential_at(level: &'static str) {
    let env = env();
    let name = format!("log-secrets-{level}");
    let (down, log) = down_backend_sidecar_logging(&name, level);
    let live = sidecar(&format!("{name}-live")).logging(level).start();
    let dir = env.scratch(&name);
    put_object(
        "private",
        "logs/big.bin",
        &test_data(8 * 1024 * 1024, 77),
        &dir,
    );
    let presigned = |port: u16, signature: &str, cmd: &str| {
        let base = format!("http://127.0.0.1:{port}");
        let out = s3client_signing(
            &base,
            READER,
            signature,
            &[cmd, "private", "logs/big.bin", "300"],
        );
        out["url"]
            .as_str()
            .unwrap()
            .trim_start_matches(&base)
            .to_string()
    };
    for (signature, form) in [("s3v4", "X-Amz-Signature="), ("default", "Signature=")] {
        for cmd in ["presign-torrent", "presign-get"] {
            // Backend down: pingora's and our own failure paths.
            let target = presigned(down, signature, cmd);
            assert!(target.contains(form), "{target}");
            assert_eq!(request(down, "GET", &target, &[]).status, 503, "{target}");
            // A bad signature.
            let tampered = target.replace("logs/big.bin", "logs/other.bin");
            assert!(request(live.port, "GET", &tampered, &[]).status >= 400);
        }
        // A client that hangs up mid-body on a live backend.
        let target = presigned(live.port, signature, "presign-get");
        let mut s = std::net::TcpStream::connect(("127.0.0.1", live.port)).unwrap();
        s.write_all(
            format!(
                "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
                live.port
            )
            .as_bytes(),
        )
        .unwrap();
        let mut first = [0u8; 4096];
        let _ = s.read(&mut first);
        drop(s);
    }
    // A header-signed request passed through, and a header-signed `?torrent`.
    let host = format!("127.0.0.1:{}", live.port);
    for target in ["/private/logs/big.bin", "/private/logs/big.bin?torrent="] {
        let headers = signed_headers(
            READER,
            "HEAD",
            &host,
            target,
            None,
            std::time::SystemTime::now(),
        );
        let r = request(live.port, "HEAD", target, &header_refs(&headers));
        assert_eq!(r.status, 200, "{target}");
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut lines = 0;
    for file in [log, live.log.clone()] {
        let text = std::fs::read_to_string(&file).unwrap();
        lines += text.lines().count();
        for needle in [
            "X-Amz-Signature",
            "X-Amz-Credential",
            "Signature=",
            "AWSAccessKeyId=",
            "Credential=",
        ] {
            let hit = text.lines().find(|l| l.contains(needle));
            assert!(hit.is_none(), "{}: {needle} in {hit:?}", file.display());
        }
    }
    let down_log = std::fs::read_to_string(env.scratch(&name).join("sidecar.err")).unwrap();
    assert!(
        down_log.contains("Fail to proxy"),
        "pingora's failure path was exercised"
    );
    assert!(lines > 10, "the logs were written ({lines} lines)");
}

/// pingora's error lines name the request's `Host`: a client's quotes and bytes in it are
/// escaped, so they cannot forge fields of a text log line.
#[test]
fn a_hostile_host_cannot_forge_log_fields() {
    let (port, log) = down_backend_sidecar("log-host");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /b/k HTTP/1.1\r\nHost: evil\" status=200 route=\"x\xff\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 503"));
    std::thread::sleep(Duration::from_millis(300));
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("Fail to proxy"))
        .unwrap_or_else(|| panic!("pingora's failure line: {text}"));
    assert!(!line.contains("evil\" status=200"), "unescaped: {line}");
    assert!(
        line.contains(r#"evil\" status=200 route=\"x"#),
        "escaped: {line}"
    );
}

/// Silent connections on the S3 port: 9,000 that never send a byte cost the sidecar a
/// bounded amount (before: 42 KiB each, 9,000 → 385 MiB, and it stayed), a request made in
/// the middle of them is served, and once they are gone the memory is given back.
#[test]
fn silent_connections_are_bounded_and_a_request_still_gets_through() {
    setup();
    let s = sidecar("silent-conns").start();
    let pid = s.pid;
    let before = rss_kib(pid);
    let mut held = Vec::with_capacity(9000);
    let started = Instant::now();
    for _ in 0..9000 {
        held.push(TcpStream::connect(("127.0.0.1", s.port)).expect("connect"));
    }
    let flood = started.elapsed().as_secs_f64();
    still_serving(s.port);
    let during = rss_kib(pid);
    let m = request(s.admin_port, "GET", "/metrics", &[]).text();
    let value = |name: &str| crate::seeder::metric(&m, name);
    println!(
        "9000 silent connections in {flood:.1} s: RSS {} → {} MiB; refused {} at the limit, {} silent",
        before >> 10,
        during >> 10,
        value("s3torrent_connections_refused_total{reason=\"limit\"}"),
        value("s3torrent_connections_refused_total{reason=\"silent\"}"),
    );
    assert!(during < 256 << 10, "RSS {} MiB", during >> 10);
    // Past the first 512 (`server.max_silent_connections`), each had a quarter second.
    std::thread::sleep(Duration::from_secs(1));
    let m = request(s.admin_port, "GET", "/metrics", &[]).text();
    let value = |name: &str| crate::seeder::metric(&m, name);
    assert!(value("s3torrent_connections_silent") <= 512, "{m}");
    assert!(value("s3torrent_connections_refused_total{reason=\"silent\"}") >= 8000);
    drop(held);
    // The ones still waiting close as their clients go; memory goes back to the system.
    std::thread::sleep(Duration::from_secs(3));
    still_serving(s.port);
    let after = rss_kib(pid);
    println!("after they closed: RSS {} MiB", after >> 10);
    assert!(
        after < before + (64 << 10),
        "RSS {} MiB after the burst (was {} MiB)",
        after >> 10,
        before >> 10
    );
}

/// `server.max_connections` bounds connections being served: past it a new one is closed
/// at once (counted), and served again once one ends.
#[test]
fn connections_past_the_limit_are_closed_at_once() {
    setup();
    let s = sidecar("conn-limit")
        .set("server.max_connections", 2)
        .start();
    let stall = || {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.write_all(b"GET /public/hostile/ok.bin HTTP/1.1\r\n")
            .unwrap();
        c
    };
    let held = [stall(), stall()];
    std::thread::sleep(Duration::from_millis(300));
    let refused = raw(
        s.port,
        b"GET /public/hostile/ok.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        refused.is_empty(),
        "a third connection was served: {refused:?}"
    );
    let m = request(s.admin_port, "GET", "/metrics", &[]).text();
    assert_eq!(
        crate::seeder::metric(&m, "s3torrent_connections_refused_total{reason=\"limit\"}"),
        1
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    still_serving(s.port);
}
