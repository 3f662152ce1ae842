//! Fault injection against the real sidecar binary: a backend that misbehaves on demand
//! (allowed here: no real server resets, stalls or changes an object mid-stream on cue).
//! Every fault must give a retryable S3 XML error (502/503), cache nothing, leave the sidecar
//! serving other requests, and the next request after recovery must succeed, no restart.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha1::Digest;

use crate::harness::*;

const LEN: usize = 3 * 1024 * 1024 + 77;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Connection reset (RST) after part of the body.
    Reset,
    /// Closes cleanly after part of the body (the backend died).
    Dies,
    /// Sends part of the body, then nothing: the sidecar's read timeout must fire.
    Stall,
    /// GET answers another ETag than HEAD did (a backend that ignores If-Match).
    EtagChanges,
    /// GET answers 412: the object changed between probe and fetch.
    PreconditionFailed,
    Status500,
    Status503,
    /// The authorization HEAD itself fails.
    HeadStatus503,
}

struct Backend {
    port: u16,
    fault: Arc<Mutex<Fault>>,
    gets: Arc<AtomicUsize>,
}

fn object() -> Vec<u8> {
    test_data(LEN, 500)
}

fn start_backend() -> Backend {
    let fault = Arc::new(Mutex::new(Fault::None));
    let gets = Arc::new(AtomicUsize::new(0));
    let data = object();
    let (f, g) = (fault.clone(), gets.clone());
    let port = fake_backend(move |line, out| serve(line, out, &f, &g, &data));
    Backend { port, fault, gets }
}

/// Answers one request as the current fault dictates; `false` closes the connection.
fn serve(
    line: &str,
    out: &mut TcpStream,
    fault: &Mutex<Fault>,
    gets: &AtomicUsize,
    data: &[u8],
) -> bool {
    let healthy_key = line.contains("/healthy/");
    let fault = if healthy_key {
        Fault::None
    } else {
        *fault.lock().unwrap()
    };
    // The READ check stands where a HEAD used to: it gets the head faults.
    if is_probe(line) {
        let answer = match fault {
            Fault::HeadStatus503 => {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec()
            }
            _ => probe_answer("\"good\"", LEN),
        };
        return out.write_all(&answer).is_ok();
    }
    let is_get = line.starts_with("GET");
    if is_get && !healthy_key {
        gets.fetch_add(1, Ordering::SeqCst);
    }
    let status = |code: &str| {
        format!("HTTP/1.1 {code}\r\nContent-Type: application/xml\r\nContent-Length: 0\r\n\r\n")
    };
    let etag = if is_get && fault == Fault::EtagChanges {
        "\"other\""
    } else {
        "\"good\""
    };
    let head = format!("HTTP/1.1 200 OK\r\nETag: {etag}\r\nContent-Length: {LEN}\r\nLast-Modified: Sat, 21 Nov 2026 10:00:00 GMT\r\n\r\n");
    let reply = match (is_get, fault) {
        (false, Fault::HeadStatus503) => status("503 Service Unavailable"),
        (true, Fault::PreconditionFailed) => status("412 Precondition Failed"),
        (true, Fault::Status500) => status("500 Internal Server Error"),
        (true, Fault::Status503) => status("503 Service Unavailable"),
        _ => head,
    };
    if out.write_all(reply.as_bytes()).is_err() {
        return false;
    }
    if !is_get || !reply.starts_with("HTTP/1.1 200") {
        return true;
    }
    let part = &data[..LEN / 3];
    match fault {
        Fault::Reset => {
            let _ = out.write_all(part);
            let _ = socket2_linger_zero(out);
            false
        }
        Fault::Dies => {
            let _ = out.write_all(part);
            false
        }
        Fault::Stall => {
            let _ = out.write_all(part);
            std::thread::sleep(Duration::from_secs(5));
            false
        }
        _ => out.write_all(data).is_ok(),
    }
}

/// Closing with SO_LINGER 0 sends RST instead of FIN.
fn socket2_linger_zero(stream: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}

fn torrent_is_right(body: &[u8]) -> bool {
    let v = s3torrent::torrent::bencode::decode(body).unwrap();
    let info = v.get("info").unwrap();
    let pl = info.get("piece length").unwrap().as_int().unwrap() as usize;
    let want: Vec<u8> = object()
        .chunks(pl)
        .flat_map(|c| sha1::Sha1::digest(c).to_vec())
        .collect();
    info.get("pieces").unwrap().as_bytes().unwrap() == want.as_slice()
}

#[test]
fn every_backend_fault_is_a_retryable_error_then_recovers() {
    let backend = start_backend();
    let port = sidecar("faults")
        .backend_port(backend.port)
        .set("upstream.timeout_secs", 1)
        .start()
        .port;
    let faults = [
        (Fault::Reset, 502),
        (Fault::Dies, 502),
        (Fault::Stall, 502),
        (Fault::EtagChanges, 503),
        (Fault::PreconditionFailed, 503),
        (Fault::Status500, 503),
        (Fault::Status503, 503),
        (Fault::HeadStatus503, 503),
    ];
    for (i, (fault, status)) in faults.into_iter().enumerate() {
        let target = format!("/b/obj-{i}?torrent");
        *backend.fault.lock().unwrap() = fault;
        for attempt in 0..2 {
            let before = backend.gets.load(Ordering::SeqCst);
            let r = request(port, "GET", &target, &[]);
            assert_eq!(
                r.status,
                status,
                "{fault:?} attempt {attempt}: {}",
                r.text()
            );
            let code = r.s3_code().unwrap_or_default();
            let expected = if status == 502 {
                "InternalError"
            } else {
                "ServiceUnavailable"
            };
            assert_eq!(code, expected, "{fault:?}");
            assert_eq!(r.header("content-type"), Some("application/xml"));
            assert!(r.header("x-amz-request-id").is_some());
            if fault != Fault::HeadStatus503 {
                assert!(
                    backend.gets.load(Ordering::SeqCst) > before,
                    "{fault:?}: retried, not cached"
                );
            }
            // Other requests are still served during the fault.
            let other = request(port, "GET", "/b/healthy/x?torrent", &[]);
            assert_eq!(other.status, 200, "{fault:?}: {}", other.text());
        }
        *backend.fault.lock().unwrap() = Fault::None;
        let r = request(port, "GET", &target, &[]);
        assert_eq!(r.status, 200, "after {fault:?}: {}", r.text());
        assert!(torrent_is_right(&r.body), "after {fault:?}");
    }
}

/// A directory costs the backend a listing and a READ check per object: while
/// `limits.max_concurrent_directories` are being checked, another caller gets 503 SlowDown
/// before anything is asked of the backend. The backend here lists slowly (a real one does
/// under load) so the first request holds its slot.
#[test]
fn directory_requests_past_the_limit_slow_down_before_touching_the_backend() {
    let lists = Arc::new(AtomicUsize::new(0));
    let seen = lists.clone();
    let port = fake_backend(move |line, out| {
        if line.contains("list-type=2") {
            seen.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1500));
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>b</Name><Prefix>d/</Prefix><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>";
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            return out.write_all(head.as_bytes()).is_ok()
                && out.write_all(body.as_bytes()).is_ok();
        }
        out.write_all(&probe_answer("\"good\"", LEN)).is_ok()
    });
    let port = sidecar("dir-slots")
        .backend_port(port)
        .set("limits.max_concurrent_directories", 1)
        .start()
        .port;
    let target = "/b/?torrent&prefix=d/";
    let first = std::thread::spawn(move || request(port, "GET", target, &[]));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lists.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the listing never came"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = request(port, "GET", target, &[]);
    assert_eq!(
        (refused.status, refused.s3_code().as_deref()),
        (503, Some("SlowDown")),
        "{}",
        refused.text()
    );
    assert!(refused.header("retry-after").is_some());
    assert!(refused.text().contains("limits.max_concurrent_directories"));
    assert_eq!(
        lists.load(Ordering::SeqCst),
        1,
        "the refused one listed nothing"
    );
    // The first is answered (an empty prefix: 404), and its slot is free again.
    assert_eq!(first.join().unwrap().status, 404);
    assert_eq!(request(port, "GET", target, &[]).status, 404);
    assert_eq!(lists.load(Ordering::SeqCst), 2);
}
