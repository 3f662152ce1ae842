//! `cargo bench --bench soak`: a bounded mixed workload against a real SeaweedFS and a release
//! sidecar, on loopback, for `SOAK_MINUTES` (default 30): signed pass-through PUTs
//! (overwrites), GETs, cold and cached `?torrent` (every torrent verified piece by piece
//! against the bytes last written), and error paths. Reports requests, wrong answers, 5xx and
//! the sidecar's RSS (start, end, peak); exits non-zero on any wrong answer or 5xx.

#[allow(dead_code)]
#[path = "../tests/integration/harness/mod.rs"]
mod harness;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use harness::*;
use sha1::Digest;

const WORKERS: usize = 4;
const KEYS_PER_WORKER: usize = 6;

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    puts: AtomicU64,
    gets: AtomicU64,
    torrents: AtomicU64,
    errors_expected: AtomicU64,
    wrong: AtomicU64,
    server_errors: AtomicU64,
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn signed_put(port: u16, target: &str, body: &[u8]) -> Response {
    let hash = hex::encode(sha2::Sha256::digest(body));
    let host = format!("127.0.0.1:{port}");
    let all = signed_headers(ADMIN, "PUT", &host, target, Some(&hash), SystemTime::now());
    let h = header_refs(&all);
    request_with_body(port, "PUT", target, &h, body)
}

/// Checks a torrent against the bytes it must describe, with SHA-1 over every piece.
fn torrent_matches(torrent: &[u8], data: &[u8]) -> bool {
    let Ok(v) = s3torrent::torrent::bencode::decode(torrent) else {
        return false;
    };
    let Some(info) = v.get("info") else {
        return false;
    };
    let (Some(len), Some(pl), Some(pieces)) = (
        info.get("length").and_then(|x| x.as_int()),
        info.get("piece length").and_then(|x| x.as_int()),
        info.get("pieces").and_then(|x| x.as_bytes()),
    ) else {
        return false;
    };
    len as usize == data.len()
        && data
            .chunks(pl as usize)
            .map(|c| sha1::Sha1::digest(c).to_vec())
            .collect::<Vec<_>>()
            .concat()
            == pieces
}

fn worker(id: usize, port: u16, deadline: Instant, tally: Arc<Tally>) {
    let mut rng = id as u64 * 7919 + 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut content: HashMap<usize, Vec<u8>> = HashMap::new();
    let mut version = 0u64;
    let count = |r: &Response| {
        tally.requests.fetch_add(1, Ordering::Relaxed);
        if r.status >= 500 {
            tally.server_errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("worker {id}: {} {}", r.status, r.text());
        }
    };
    let wrong = |what: String| {
        tally.wrong.fetch_add(1, Ordering::Relaxed);
        eprintln!("worker {id}: WRONG {what}");
    };
    while Instant::now() < deadline {
        let k = next(KEYS_PER_WORKER as u64) as usize;
        let target = format!("/public/soak/w{id}/k{k}.bin");
        match (content.get(&k), next(100)) {
            (None, _) | (Some(_), 0..=29) => {
                version += 1;
                let size = match next(10) {
                    0 => 6 * 1024 * 1024 + next(1000) as usize,
                    _ => 1 + next(1024 * 1024) as usize,
                };
                let data = test_data(size, (id as u64) << 40 | version);
                let r = signed_put(port, &target, &data);
                count(&r);
                tally.puts.fetch_add(1, Ordering::Relaxed);
                if r.status == 200 {
                    content.insert(k, data);
                } else {
                    wrong(format!("PUT {target}: {}", r.status));
                }
            }
            (Some(data), 30..=54) => {
                let r = request(port, "GET", &target, &[]);
                count(&r);
                tally.gets.fetch_add(1, Ordering::Relaxed);
                if r.status != 200 || r.body != *data {
                    wrong(format!(
                        "GET {target}: {} ({} bytes)",
                        r.status,
                        r.body.len()
                    ));
                }
            }
            (Some(data), 55..=91) => {
                let r = request(port, "GET", &format!("{target}?torrent"), &[]);
                count(&r);
                tally.torrents.fetch_add(1, Ordering::Relaxed);
                if r.status != 200 || !torrent_matches(&r.body, data) {
                    wrong(format!(
                        "?torrent {target}: {} {}",
                        r.status,
                        r.text().chars().take(200).collect::<String>()
                    ));
                }
            }
            (Some(_), _) => {
                let (r, want) = if next(2) == 0 {
                    (
                        request(
                            port,
                            "GET",
                            &format!("/public/soak/w{id}/missing?torrent"),
                            &[],
                        ),
                        404,
                    )
                } else {
                    (
                        request(port, "DELETE", &format!("{target}?torrent"), &[]),
                        405,
                    )
                };
                count(&r);
                tally.errors_expected.fetch_add(1, Ordering::Relaxed);
                if r.status != want {
                    wrong(format!("error path: {} != {want}", r.status));
                }
            }
        }
    }
}

fn main() {
    let minutes: f64 = std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30.0);
    let _ = env();
    // A small cache, so entries are evicted and regenerated throughout.
    let s = sidecar("soak").set("cache.max_bytes", 262144).start();
    println!(
        "soak: {minutes} min, {WORKERS} workers x {KEYS_PER_WORKER} keys, sidecar pid {}",
        s.pid
    );
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(minutes * 60.0);
    let warm = Duration::from_secs_f64((minutes * 60.0 / 20.0).min(30.0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut start, mut peak, mut last) = (0, 0, 0);
            while !done.load(Ordering::Relaxed) {
                last = rss_kib(s.pid, "VmRSS:");
                if start == 0 && started.elapsed() >= warm {
                    start = last;
                }
                peak = peak.max(last);
                std::thread::sleep(Duration::from_secs(1));
            }
            (start, last, peak)
        })
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|id| {
            let tally = tally.clone();
            std::thread::spawn(move || worker(id, s.port, deadline, tally))
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let (start, end, peak) = sampler.join().unwrap();
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "requests {}  (PUT {}, GET {}, ?torrent {}, error paths {})",
        get(&tally.requests),
        get(&tally.puts),
        get(&tally.gets),
        get(&tally.torrents),
        get(&tally.errors_expected)
    );
    println!(
        "wrong answers {}  5xx {}",
        get(&tally.wrong),
        get(&tally.server_errors)
    );
    println!(
        "sidecar RSS after warm-up {:.1} MiB, end {:.1} MiB, peak {:.1} MiB (VmHWM {:.1} MiB)",
        start as f64 / 1024.0,
        end as f64 / 1024.0,
        peak as f64 / 1024.0,
        rss_kib(s.pid, "VmHWM:") as f64 / 1024.0
    );
    if get(&tally.wrong) > 0 || get(&tally.server_errors) > 0 {
        std::process::exit(1);
    }
}
