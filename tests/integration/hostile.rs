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
        "a".repeat(200_000)
    );
    let statuses = raw(port, huge_header.as_bytes());
    assert!(
        statuses.iter().all(|s| (400..500).contains(s)),
        "{statuses:?}"
    );
    let many = format!(
        "GET /public/k?torrent HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "X-A: b\r\n".repeat(2000)
    );
    let statuses = raw(port, many.as_bytes());
    assert!(
        statuses.iter().all(|s| (400..500).contains(s)),
        "{statuses:?}"
    );
    let long_query = format!("/public/hostile/ok.bin?torrent&{}", "x=y&".repeat(50_000));
    let statuses = raw(
        port,
        format!("GET {long_query} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    assert!(
        statuses.iter().all(|s| (400..500).contains(s) || *s == 200),
        "{statuses:?}"
    );
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
        let statuses = raw(port, &req);
        assert!(
            statuses.iter().all(|s| (400..500).contains(s)),
            "{}: {statuses:?}",
            String::from_utf8_lossy(target)
        );
    }
    still_serving(port);
}

#[test]
fn request_smuggling_shapes_are_refused_or_neutralised() {
    let port = setup();
    let before = bucket_bytes_sent("public");
    // Conflicting framing; a second request hidden in the body must never run.
    let smuggle = b"POST /public/hostile/ok.bin?torrent HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /public/hostile/ok.bin HTTP/1.1\r\nHost: x\r\n\r\n";
    let statuses = raw(port, smuggle);
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| (400..500).contains(s)),
        "{statuses:?}"
    );
    assert_eq!(
        bucket_bytes_sent("public"),
        before,
        "the hidden GET reached the backend"
    );
    let two_lengths = b"GET /public/hostile/ok.bin?torrent HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 7\r\n\r\n";
    let statuses = raw(port, two_lengths);
    assert!(
        statuses.iter().all(|s| (400..500).contains(s)),
        "{statuses:?}"
    );
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
