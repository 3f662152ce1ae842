//! `cargo bench --bench scale`: what sharing work through the backend buys, against a real
//! SeaweedFS on loopback, as ratios measured side by side in one run.
//!
//! Sections (`BENCH_ONLY=replicas,upload,warm` to pick; default all):
//! - `replicas`: 3 replicas with one store, a 1 GiB object, each asked once (one after the
//!   other, then all three at once) → backend bytes read ÷ size (goal ≤ 1.05);
//! - `upload`: PUT of 1 GiB through the sidecar with hash on upload ÷ without, throughput
//!   (goal ≥ 0.9), alternating rounds;
//! - `warm`: 32 objects of 32 MiB: one cold `?torrent` each, one after the other, ÷
//!   `s3torrent warm` of the prefix, total time (goal ≥ 1.5).
//!
//! Environment: `BENCH_SIZE_MIB` (replicas/upload object, default 1024), `BENCH_ROUNDS` (3),
//! `BENCH_WARM_OBJECTS` (32), `BENCH_WARM_MIB` (32), `BENCH_WARM_CONCURRENCY` (comma-separated
//! `--concurrency` values to compare, default `4`).

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "../tests/integration/harness/mod.rs"]
mod harness;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::*;
use harness::*;

/// A sidecar with S3's own size limit, keeping torrents in the store under `prefix` (none:
/// no store).
fn big_sidecar(name: &str, store_prefix: Option<&str>) -> SidecarBuilder<'static> {
    let s = sidecar(name).set("torrent.max_object_size", 5_368_709_120i64);
    match store_prefix {
        Some(p) => s.set("store.bucket", "store").set("store.prefix", p),
        None => s,
    }
}

fn main() {
    let only = std::env::var("BENCH_ONLY").unwrap_or_else(|_| "replicas,upload,warm".into());
    let run = |s: &str| only.split(',').any(|o| o.trim() == s);
    let env = env();
    println!("s3torrent scale-out benchmarks (SeaweedFS on loopback; ratios, same run)");
    let size_mib = env_or("BENCH_SIZE_MIB", 1024);
    let big = env.scratch("bench").join("object.bin");
    if run("replicas") || run("upload") {
        write_data(&big, size_mib, 11);
    }
    if run("replicas") {
        bench_replicas(&big, size_mib);
    }
    if run("upload") {
        bench_upload(&big, size_mib);
    }
    if run("warm") {
        bench_warm();
    }
}

fn bench_replicas(big: &Path, size_mib: usize) {
    let size = (size_mib as u64) << 20;
    println!("\n[replicas] 3 replicas, one store, a {size_mib} MiB object");
    for (round, together) in [(1, false), (2, true)] {
        let key = format!("bench/replicas-{round}.bin");
        upload("shared", &key, big);
        let prefix = format!("bench-replicas-{round}/");
        let replicas: Vec<Sidecar> = (0..3)
            .map(|i| big_sidecar(&format!("bench-replica-{round}-{i}"), Some(&prefix)).start())
            .collect();
        let target = format!("/shared/{key}?torrent");
        let before = bucket_bytes_sent("shared");
        let t = Instant::now();
        let ask = |port: u16| {
            let r = request(port, "GET", &target, &[]);
            assert_eq!(r.status, 200, "{}", r.text());
            r.body
        };
        let bodies: Vec<Vec<u8>> = match together {
            false => replicas.iter().map(|s| ask(s.port)).collect(),
            true => std::thread::scope(|scope| {
                let handles: Vec<_> = replicas
                    .iter()
                    .map(|s| scope.spawn(|| ask(s.port)))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            }),
        };
        let secs = t.elapsed().as_secs_f64();
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "identical torrents"
        );
        let read = bucket_bytes_sent("shared") - before;
        let how = if together {
            "all at once     "
        } else {
            "one after another"
        };
        println!(
            "  {how}  backend bytes read / size  {:.4}   (goal <= 1.05; {:.1} s)",
            read as f64 / size as f64,
            secs
        );
    }
}

fn bench_upload(big: &Path, size_mib: usize) {
    let rounds = env_or("BENCH_ROUNDS", 3);
    let hashing = big_sidecar("bench-upload-hash", Some("bench-upload/")).start();
    let plain = big_sidecar("bench-upload-plain", Some("bench-upload/"))
        .set("uploads.hash", false)
        .start();
    // The file is read once ahead, so both sides send from the page cache.
    put_seconds(plain.port, "/upload/bench/warmup.bin", big);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        without.push(put_seconds(
            plain.port,
            &format!("/upload/bench/plain-{i}.bin"),
            big,
        ));
        with.push(put_seconds(
            hashing.port,
            &format!("/upload/bench/hashed-{i}.bin"),
            big,
        ));
    }
    // Adoption ends just after each response (it checks the object first): wait for it.
    let adopted = || {
        let metrics = request(hashing.admin_port, "GET", "/metrics", &[]).text();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("s3torrent_uploads_hashed_total{kind=\"put\"} "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while adopted() < rounds && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let hashed = format!("{} of {rounds}", adopted());
    let rate = |times: &[f64]| size_mib as f64 / median(times.to_vec());
    println!("\n[upload] PUT of {size_mib} MiB through the sidecar, {rounds} rounds");
    println!("  without hashing  {:.0} MiB/s", rate(&without));
    println!(
        "  hash on upload   {:.0} MiB/s  ({hashed} uploads adopted)",
        rate(&with)
    );
    let ratio = ratios(&without, &with);
    println!("  throughput with / without  {ratio:.3}   (goal >= 0.9)");
}

fn bench_warm() {
    let rounds = env_or("BENCH_ROUNDS", 3);
    let (count, mib) = (
        env_or("BENCH_WARM_OBJECTS", 32),
        env_or("BENCH_WARM_MIB", 32),
    );
    let dir = env().scratch("bench-warm");
    let file = dir.join("object.bin");
    for i in 0..count {
        write_data(&file, mib, 100 + i as u64);
        let put = s3client(
            &env().backend_url(),
            ADMIN,
            &[
                "put",
                "warm",
                &format!("bench/{i:03}"),
                file.to_str().unwrap(),
            ],
        );
        assert!(put.get("error").is_none(), "{put}");
    }
    // One cold `?torrent` each: no store, no cache.
    let cold = big_sidecar("bench-warm-cold", None)
        .set("cache.max_bytes", 0)
        .start();
    let config = dir.join("warm.toml");
    let concurrencies: Vec<String> = std::env::var("BENCH_WARM_CONCURRENCY")
        .unwrap_or_else(|_| "4".into())
        .split(',')
        .map(|c| c.trim().to_string())
        .collect();
    let mut each = Vec::new();
    let mut warm: Vec<Vec<f64>> = vec![Vec::new(); concurrencies.len()];
    let mut prefix = 0;
    for round in 0..rounds {
        let t = Instant::now();
        for i in 0..count {
            let r = request(
                cold.port,
                "GET",
                &format!("/warm/bench/{i:03}?torrent"),
                &[],
            );
            assert_eq!(r.status, 200, "{}", r.text());
        }
        each.push(t.elapsed().as_secs_f64());

        for (c, times) in concurrencies.iter().zip(warm.iter_mut()) {
            // A fresh store prefix each time, so every object is hashed.
            prefix += 1;
            let [p, a] = free_ports(2)[..] else {
                unreachable!()
            };
            let text = sidecar_config(env().s3_port, "us-east-1", p, a)
                .replace("max_object_size = 67108864", "max_object_size = 5368709120");
            let store = format!("[store]\nbucket = \"store\"\nprefix = \"bench-warm-{prefix}/\"\n");
            std::fs::write(&config, format!("{text}\n{store}")).unwrap();
            let t = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_s3torrent"))
                .args(["warm", "--concurrency", c, "--config"])
                .arg(&config)
                .arg("s3://warm/bench/")
                .env("RUST_LOG", "warn")
                .output()
                .unwrap();
            times.push(t.elapsed().as_secs_f64());
            let summary = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{summary}");
            assert!(summary.contains(&format!("{count} stored")), "{summary}");
            if round == 0 {
                print!("\n[warm -j {c}] {count} objects of {mib} MiB\n  {summary}");
            }
        }
    }
    println!("\n[warm] {rounds} rounds");
    println!("  one cold ?torrent each   {:.2} s", median(each.clone()));
    for (c, times) in concurrencies.iter().zip(&warm) {
        println!(
            "  s3torrent warm -j {c:<3}    {:.2} s   speed-up {:.2}x   (goal >= 1.5)",
            median(times.clone()),
            ratios(&each, times)
        );
    }
}
