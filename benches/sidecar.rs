//! `cargo bench`: ratios measured side by side in one run against a real SeaweedFS on
//! loopback (absolute times on shared machines mean little; ratios do).
//!
//! 1. cold `?torrent` of a 1 GiB object ÷ plain GET of it through the sidecar;
//! 2. cold `?torrent` ÷ `mktorrent -t 2` on a page-cached local copy (if mktorrent exists).
//!
//! Environment: `BENCH_SIZE_MIB` (default 1024), `BENCH_ROUNDS` (default 5).

#[allow(dead_code)]
#[path = "../tests/integration/harness.rs"]
mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn curl_seconds(url: &str) -> f64 {
    let t = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "-o", "/dev/null", url])
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; ignore libtest-style arguments.
    let size_mib = env_or("BENCH_SIZE_MIB", 1024);
    let rounds = env_or("BENCH_ROUNDS", 5);
    let env = env();
    let dir = env.scratch("bench");
    let data = test_data(size_mib << 20, 1);
    let local = dir.join("object.bin");
    std::fs::write(&local, &data).unwrap();
    drop(data);
    let put = s3client(
        &env.backend_url(),
        ADMIN,
        &[
            "put-multipart",
            "public",
            "bench/object.bin",
            local.to_str().unwrap(),
        ],
    );
    assert!(put.get("error").is_none(), "{put}");

    // Cache off, so every `?torrent` is a cold generation; S3's own size limit.
    let port = extra_sidecar("bench-sidecar", |c| {
        let c = c.replace("max_object_size = 67108864", "max_object_size = 5368709120");
        format!("{c}\n[cache]\nmax_bytes = 0\n")
    });
    let base = format!("http://127.0.0.1:{port}/public/bench/object.bin");
    let torrent_url = format!("{base}?torrent");
    curl_seconds(&base); // warm the backend's own caches once, for both sides alike

    let mktorrent = Command::new("mktorrent").arg("-h").output().is_ok();
    let (mut get, mut cold, mut mk) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        get.push(curl_seconds(&base));
        cold.push(curl_seconds(&torrent_url));
        if mktorrent {
            let out = dir.join("mk.torrent");
            let _ = std::fs::remove_file(&out);
            let t = Instant::now();
            let status = Command::new("mktorrent")
                .args([
                    "-t",
                    "2",
                    "-l",
                    "19",
                    "-a",
                    "http://localhost/announce",
                    "-o",
                ])
                .arg(&out)
                .arg(&local)
                .output()
                .unwrap()
                .status;
            assert!(status.success());
            mk.push(t.elapsed().as_secs_f64());
        }
        eprintln!(
            "round {round}: GET {:.3}s  cold ?torrent {:.3}s{}",
            get[round - 1],
            cold[round - 1],
            mk.last()
                .map_or(String::new(), |m| format!("  mktorrent -t 2 {m:.3}s"))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mib = size_mib as f64;
    let (g, c) = (median(get.clone()), median(cold.clone()));
    let ratios: Vec<f64> = cold.iter().zip(&get).map(|(c, g)| c / g).collect();
    println!("object: {size_mib} MiB, {rounds} rounds, medians");
    println!(
        "  plain GET through sidecar : {g:.3} s ({:.0} MiB/s)",
        mib / g
    );
    println!(
        "  cold ?torrent             : {c:.3} s ({:.0} MiB/s)",
        mib / c
    );
    println!(
        "  ratio cold ?torrent / GET : {:.3} (median of per-round ratios; goal <= 1.10)",
        median(ratios)
    );
    if mktorrent {
        let m = median(mk.clone());
        let r: Vec<f64> = cold.iter().zip(&mk).map(|(c, m)| c / m).collect();
        println!("  mktorrent -t 2 (page cache): {m:.3} s");
        println!(
            "  ratio cold ?torrent / mktorrent : {:.3} (goal <= 1.5)",
            median(r)
        );
    } else {
        println!("  mktorrent not installed: ratio 2 skipped");
    }
}
