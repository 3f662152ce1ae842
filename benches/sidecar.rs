//! `cargo bench`: the benchmark suite, against a real SeaweedFS on loopback. Every figure is a
//! ratio of two things measured side by side in the same run (median of rounds, alternating),
//! because these machines are shared and noisy: absolute times mean little.
//!
//! Sections (`BENCH_ONLY=cold,format,hit,pass,rss,coalesce,swarm,peer,cluster,dir` to pick; default
//! all):
//! - `cold`: cold `?torrent` of a 1 GiB object ÷ plain GET through the sidecar (goal ≤ 1.10),
//!   and ÷ `mktorrent -t 2` on a page-cached local copy (goal ≤ 1.5);
//! - `hit`: cache-hit `?torrent` req/s ÷ proxied `HEAD` req/s of the same object (oha; ≥ 0.9);
//! - `pass` (`pass/mod.rs`): 1 KiB GET and HEAD req/s and added latency through the sidecar
//!   ÷ nginx, HAProxy and a bare pingora proxy (≥ 1.0 against nginx and HAProxy); 256
//!   connections and no keep-alive; instructions per request (callgrind); 1 GiB GET through
//!   the sidecar ÷ direct (≥ 0.95);
//! - `rss`: peak RSS generating a 4 GiB object ÷ a 256 MiB one (≈ 1.0);
//! - `coalesce`: 100 concurrent cold requests for one object → bytes read upstream ÷ size (1);
//! - `format`: cold `?torrent` of the same object as a hybrid (v1 + v2) and as a v2 torrent ÷
//!   as a v1 torrent (goal hybrid ≤ 1.3: SHA-256 block trees on top of SHA-1 pieces);
//! - `swarm` (`swarm/mod.rs`): crowds of 8, 16 and 32 libtorrent peers on a 256 MiB object:
//!   web seed only, the sidecar's seeder + web seed, and a libtorrent seed from local disk
//!   (super-seeding off and on) → time ratios, origin copies, peak RSS.
//! - `peer` (`peer/mod.rs`): one libtorrent peer from the web seed alone ÷ from the seeder
//!   alone, plaintext and MSE/RC4 (goal seeder ≥ 0.9× the web seed);
//! - `cluster`: the same crowds through HAProxy (round robin, HTTP + TCP) in front of 1, 3
//!   and 5 replicas with `[cluster]` (web seed, tracker, seeder, one store) → origin copies
//!   (goal ≤ 1.15) and crowd time ÷ 1 replica's (goal ≤ 1.1); then 3 replicas with the
//!   torrent's owner SIGKILLed mid-crowd (goal: all finish, ≤ 1.5 copies); and 3 replicas
//!   without `[cluster]`, as before it (islands sharing the store).
//!
//! - `dir`: a directory of 1,000 × 1 MiB and one of 8 × 256 MiB: cold directory torrent ÷
//!   the sum of cold single-object torrents of the same objects, one after the other (goal
//!   ≤ 1.1); peak RSS making each directory torrent, and per file (goal: flat in the number
//!   of files, a few hundred bytes each).
//!
//! Environment: `BENCH_SIZE_MIB` (cold/pass object, default 1024), `BENCH_ROUNDS` (5),
//! `BENCH_LOAD_SECS` (5), `BENCH_RSS_BIG_MIB` (4096). Needs curl, oha, nginx, mktorrent
//! (`cargo install oha --locked`, `apt-get install nginx-light mktorrent`); a missing tool
//! skips its figure, saying so.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "../tests/integration/harness/mod.rs"]
mod harness;
mod pass;
mod peer;
mod swarm;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::*;
use harness::*;
use swarm::SwarmRun;

/// A sidecar with the cache off (every `?torrent` cold) and S3's own size limit.
fn cold_sidecar(name: &str) -> (u16, u32) {
    cold_sidecar_of(name, "v1")
}

/// As [`cold_sidecar`], making torrents of `format`.
fn cold_sidecar_of(name: &str, format: &str) -> (u16, u32) {
    let s = sidecar(name)
        .set("torrent.max_object_size", 5_368_709_120i64)
        .set("torrent.format", format)
        .set("cache.max_bytes", 0)
        .start();
    (s.port, s.pid)
}

pub struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `oha` for `secs` seconds with 32 connections (wrk cannot do HEAD: it waits for a body).
fn load(url: &str, secs: usize, method: &str) -> Load {
    load_with(url, secs, method, 32, true)
}

/// `oha` for `secs` seconds with `conns` connections, kept alive or one per request.
pub fn load_with(url: &str, secs: usize, method: &str, conns: usize, keepalive: bool) -> Load {
    let mut cmd = Command::new("oha");
    cmd.args(["-z", &format!("{secs}s"), "-c", &conns.to_string()])
        .args(["--no-tui", "--output-format", "json", "-m", method, url]);
    if !keepalive {
        cmd.arg("--disable-keepalive");
    }
    let out = cmd.output().expect("oha");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("oha {url}: {}", String::from_utf8_lossy(&out.stderr)));
    let codes = v["statusCodeDistribution"].as_object().unwrap();
    assert!(
        codes.keys().all(|c| c.starts_with('2')),
        "oha {method} {url}: {codes:?}"
    );
    Load {
        rps: v["summary"]["requestsPerSec"].as_f64().unwrap(),
        p50_ms: v["latencyPercentiles"]["p50"].as_f64().unwrap() * 1000.0,
        p99_ms: v["latencyPercentiles"]["p99"].as_f64().unwrap() * 1000.0,
    }
}

fn main() {
    let only = std::env::var("BENCH_ONLY")
        .unwrap_or_else(|_| "cold,format,hit,pass,rss,coalesce,swarm,peer,cluster,dir".into());
    let run = |s: &str| only.split(',').any(|o| o.trim() == s);
    let env = env();
    println!("s3torrent benchmark suite (SeaweedFS on loopback; ratios of medians, same run)");
    let size_mib = env_or("BENCH_SIZE_MIB", 1024);
    let big = env.scratch("bench").join("object.bin");
    if run("cold") || run("pass") || run("format") {
        write_data(&big, size_mib, 1);
        upload("public", "bench/object.bin", &big);
    }
    if run("cold") {
        bench_cold(&big, size_mib);
    }
    if run("format") {
        bench_format(size_mib);
    }
    if run("hit") {
        bench_hit();
    }
    if run("pass") {
        pass::bench_pass(size_mib);
    }
    if run("rss") {
        bench_rss();
    }
    if run("coalesce") {
        bench_coalesce();
    }
    if run("swarm") {
        swarm::bench_swarm();
    }
    if run("peer") {
        peer::bench_peer();
    }
    if run("cluster") {
        bench_cluster();
    }
    if run("dir") {
        bench_dir();
    }
}

/// Seconds for one cold `?torrent` (`target` on `port`), which must succeed.
fn torrent_seconds(port: u16, target: &str) -> f64 {
    let t = Instant::now();
    let r = request(port, "GET", target, &[]);
    assert_eq!(r.status, 200, "{target}: {}", r.text());
    t.elapsed().as_secs_f64()
}

fn bench_dir() {
    let rounds = env_or("BENCH_ROUNDS", 5).min(3);
    let mut per_file = Vec::new();
    for (files, mib) in [(1000usize, 1usize), (8, 256)] {
        let prefix = format!("bench/dir-{files}x{mib}/");
        let local = env().scratch(&format!("bench-dir-{files}"));
        for i in 0..files {
            write_data(&local.join(format!("f{i:04}.bin")), mib, 100 + i as u64);
        }
        let put = s3client(
            &env().backend_url(),
            ADMIN,
            &["put-dir", "dirs", &prefix, local.to_str().unwrap()],
        );
        assert!(put.get("error").is_none(), "{put}");
        let _ = std::fs::remove_dir_all(&local);
        let (port, pid) = cold_sidecar(&format!("bench-dir-{files}"));
        let directory = format!("/dirs/?torrent&prefix={prefix}");
        let idle = peak_rss_mib(pid);
        torrent_seconds(port, &directory); // warms the backend for both sides alike
        let peak = peak_rss_mib(pid);
        let (mut dir, mut singles) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            dir.push(torrent_seconds(port, &directory));
            singles.push(
                (0..files)
                    .map(|i| torrent_seconds(port, &format!("/dirs/{prefix}f{i:04}.bin?torrent")))
                    .sum(),
            );
        }
        let total = (files * mib) as f64;
        println!("\n[dir] {files} x {mib} MiB, {rounds} rounds, cache off");
        print_timed("cold directory torrent", &dir, total);
        print_timed(&format!("sum of {files} single torrents"), &singles, total);
        println!(
            "  ratio directory / singles     {:.3}   (goal <= 1.1)",
            ratios(&dir, &singles)
        );
        println!("  peak RSS making it            {peak:.1} MiB (idle {idle:.1} MiB)");
        per_file.push((files, peak - idle));
    }
    let [(many, a), (few, b)] = per_file[..] else {
        return;
    };
    // Signed: below zero, the difference is under the allocator's noise.
    println!(
        "  RSS above idle, per file beyond {few}: {:.0} bytes   (goal: a few hundred)",
        (a - b) * 1048576.0 / (many - few) as f64
    );
}

fn bench_cluster() {
    let mib = env_or("BENCH_SWARM_MIB", 256);
    let counts = std::env::var("BENCH_SWARM_PEERS").unwrap_or_else(|_| "8,16".into());
    println!("\n[cluster] libtorrent crowds on a {mib} MiB object through HAProxy in front of N replicas");
    for peers in counts
        .split(',')
        .filter_map(|p| p.trim().parse::<usize>().ok())
    {
        let one = cluster_run(&format!("bench-c1-{peers}"), 1, peers, mib, true, false);
        let three = cluster_run(&format!("bench-c3-{peers}"), 3, peers, mib, true, false);
        let five = cluster_run(&format!("bench-c5-{peers}"), 5, peers, mib, true, false);
        for (what, r) in [
            ("1 replica ", &one),
            ("3 replicas", &three),
            ("5 replicas", &five),
        ] {
            println!(
                "  {peers:>2} peers, {what}: finished {}/{peers} in {:>5.1} s, origin/size {:.2}",
                r.done, r.seconds, r.origin_ratio
            );
        }
        println!(
            "  {peers:>2} peers: origin 3 replicas {:.2}, 5 replicas {:.2} (goal <= 1.15); time 3 / 1 replica {:.2}, 5 / 1 {:.2} (goal <= 1.1)",
            three.origin_ratio,
            five.origin_ratio,
            three.seconds / one.seconds,
            five.seconds / one.seconds
        );
    }
    // BENCH_CLUSTER_EXTRAS=0 skips the kill and the before (which takes 10 minutes).
    if env_or("BENCH_CLUSTER_EXTRAS", 1) == 0 {
        return;
    }
    let peers = 8;
    let killed = cluster_run("bench-ckill", 3, peers, mib, true, true);
    println!(
        "  {peers} peers, 3 replicas, the owner SIGKILLed mid-crowd: finished {}/{peers} in {:.1} s, origin/size {:.2} (goal: all, <= 1.5)",
        killed.done, killed.seconds, killed.origin_ratio
    );
    let islands = cluster_run("bench-cislands", 3, peers, mib, false, false);
    println!(
        "  {peers} peers, 3 replicas without [cluster] (before): finished {}/{peers} in {:.1} s, origin/size {:.2}",
        islands.done, islands.seconds, islands.origin_ratio
    );
}

/// A crowd through the balancer in front of `n` replicas; with `kill`, the torrent's owner
/// dies once it has uploaded a little.
fn cluster_run(
    name: &str,
    n: usize,
    peers: usize,
    mib: usize,
    cluster: bool,
    kill: bool,
) -> SwarmRun {
    // A name of its own per run: a repeated crowd must not find its peers' files there.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = &format!("{name}-r{run}");
    let mut set = ReplicaSet::start(name, n, n, cluster, true);
    let dir = set.dir().to_path_buf();
    let file = dir.join("swarm.bin");
    write_data(&file, mib, 40 + peers as u64 + n as u64 + u64::from(kill));
    let key = format!("bench/{name}.bin");
    upload("swarm", &key, &file);
    let r = request(set.port, "GET", &format!("/swarm/{key}?torrent"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let torrent = dir.join("swarm.torrent");
    std::fs::write(&torrent, &r.body).unwrap();
    let hash = torrent_info_hash(&r.body);
    let before = bucket_bytes_sent("swarm");
    let work = dir.join("peers");
    let child = spawn_crowd(&torrent, &work, peers, 600);
    if kill {
        let owner = set.owner_of(&hash);
        let admin = set.replicas[owner].as_ref().unwrap().admin_port;
        let deadline = Instant::now() + std::time::Duration::from_secs(120);
        while Instant::now() < deadline {
            let m = request(admin, "GET", "/metrics", &[]).text();
            let up: f64 = m
                .lines()
                .find_map(|l| l.strip_prefix("s3torrent_seeder_uploaded_bytes_total "))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            if up >= (mib << 18) as f64 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        set.kill(owner);
    }
    // The crowd's own clock: from its sessions' start until every peer seeds.
    let (done, _, seconds) = crowd_outcome(child);
    // Every peer wrote a whole copy; only the figures outlive the run.
    let _ = std::fs::remove_dir_all(&work);
    let served = bucket_bytes_sent("swarm") - before;
    let peak = set.live().map(|s| peak_rss_mib(s.pid)).fold(0.0, f64::max);
    for s in set.live() {
        unsafe { libc::kill(s.pid as i32, libc::SIGTERM) };
    }
    SwarmRun {
        done,
        seconds,
        origin_ratio: served as f64 / (mib << 20) as f64,
        peak_rss_mib: Some(peak),
        cpu: None,
    }
}

fn bench_cold(local: &Path, size_mib: usize) {
    let rounds = env_or("BENCH_ROUNDS", 5);
    let (port, _) = cold_sidecar("bench-cold");
    let base = format!("http://127.0.0.1:{port}/public/bench/object.bin");
    let torrent_url = format!("{base}?torrent");
    curl_seconds(&base); // warm the backend once, for both sides alike
    let mktorrent = have("mktorrent");
    let (mut get, mut cold, mut mk) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        get.push(curl_seconds(&base));
        cold.push(curl_seconds(&torrent_url));
        if mktorrent {
            let out = env().scratch("bench").join("mk.torrent");
            let _ = std::fs::remove_file(&out);
            let t = Instant::now();
            let ok = Command::new("mktorrent")
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
                .arg(local)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok);
            mk.push(t.elapsed().as_secs_f64());
        }
    }
    let mib = size_mib as f64;
    println!("\n[cold] {size_mib} MiB object, {rounds} rounds");
    print_timed("plain GET through sidecar", &get, mib);
    print_timed("cold ?torrent", &cold, mib);
    println!(
        "  ratio cold ?torrent / GET   {:.3}   (goal <= 1.10)",
        ratios(&cold, &get)
    );
    if mktorrent {
        println!("  mktorrent -t 2, page cache  {:.3} s", median(mk.clone()));
        println!(
            "  ratio cold ?torrent / mktorrent  {:.3}   (goal <= 1.5)",
            ratios(&cold, &mk)
        );
    } else {
        println!("  mktorrent not installed: that ratio is skipped");
    }
}

fn bench_format(size_mib: usize) {
    let rounds = env_or("BENCH_ROUNDS", 5);
    let url = |format: &str| {
        let (port, _) = cold_sidecar_of(&format!("bench-format-{format}"), format);
        format!("http://127.0.0.1:{port}/public/bench/object.bin?torrent")
    };
    let (v1_url, hybrid_url, v2_url) = (url("v1"), url("hybrid"), url("v2"));
    curl_seconds(&v1_url); // warm the backend once, for every side alike
    let (mut v1, mut hybrid, mut v2) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        v1.push(curl_seconds(&v1_url));
        hybrid.push(curl_seconds(&hybrid_url));
        v2.push(curl_seconds(&v2_url));
    }
    println!("\n[format] cold ?torrent of a {size_mib} MiB object, {rounds} rounds");
    for (name, t) in [("v1", &v1), ("hybrid", &hybrid), ("v2", &v2)] {
        print_timed(name, t, size_mib as f64);
    }
    println!(
        "  ratio hybrid / v1   {:.3}   (goal <= 1.3)",
        ratios(&hybrid, &v1)
    );
    println!("  ratio v2 / v1       {:.3}", ratios(&v2, &v1));
}

fn bench_hit() {
    if !have("oha") {
        println!("\n[hit] oha not installed (cargo install oha --locked): skipped");
        return;
    }
    let secs = env_or("BENCH_LOAD_SECS", 5);
    let rounds = env_or("BENCH_ROUNDS", 5).min(3);
    let file = env().scratch("bench").join("hit.bin");
    write_data(&file, 16, 2);
    upload("public", "bench/hit.bin", &file);
    let port = env().port;
    let url = format!("http://127.0.0.1:{port}/public/bench/hit.bin");
    curl_seconds(&format!("{url}?torrent")); // fill the cache
    let (mut hit, mut head) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        hit.push(load(&format!("{url}?torrent"), secs, "GET"));
        head.push(load(&url, secs, "HEAD"));
    }
    let rps = |v: &[Load]| v.iter().map(|w| w.rps).collect::<Vec<_>>();
    let pct = |v: &[Load], f: fn(&Load) -> f64| median(v.iter().map(f).collect());
    println!("\n[hit] oha -c32 -z{secs}s, {rounds} rounds each");
    println!(
        "  cache-hit ?torrent   {:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms",
        median(rps(&hit)),
        pct(&hit, |w| w.p50_ms),
        pct(&hit, |w| w.p99_ms)
    );
    println!(
        "  proxied HEAD         {:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms",
        median(rps(&head)),
        pct(&head, |w| w.p50_ms),
        pct(&head, |w| w.p99_ms)
    );
    println!(
        "  ratio hit / HEAD     {:.3}   (goal >= 0.9)",
        ratios(&rps(&hit), &rps(&head))
    );
}

fn bench_rss() {
    let big_mib = env_or("BENCH_RSS_BIG_MIB", 4096);
    let mut peaks = Vec::new();
    for (mib, name) in [(256, "rss-small.bin"), (big_mib, "rss-big.bin")] {
        let file = env().scratch("bench").join(name);
        write_data(&file, mib, 4);
        upload("public", &format!("bench/{name}"), &file);
        let _ = std::fs::remove_file(&file);
        let (port, pid) = cold_sidecar(&format!("bench-{name}"));
        let idle = peak_rss_mib(pid);
        curl_seconds(&format!(
            "http://127.0.0.1:{port}/public/bench/{name}?torrent"
        ));
        let peak = peak_rss_mib(pid);
        println!("\n[rss] {mib} MiB object: peak RSS {peak:.1} MiB (idle {idle:.1} MiB)");
        peaks.push(peak);
    }
    println!(
        "  ratio peak RSS {big_mib} MiB / 256 MiB  {:.3}   (goal ~ 1.0, < 64 MiB + cache)",
        peaks[1] / peaks[0]
    );
}

fn bench_coalesce() {
    let file = env().scratch("bench").join("coalesce.bin");
    let mib = 64;
    write_data(&file, mib, 5);
    upload("flight", "bench/coalesce.bin", &file);
    let port = env().port;
    let before = bucket_bytes_sent("flight");
    let handles: Vec<_> = (0..100)
        .map(|_| {
            std::thread::spawn(move || {
                request(port, "GET", "/flight/bench/coalesce.bin?torrent", &[]).status
            })
        })
        .collect();
    let ok = handles
        .into_iter()
        .filter(|_| true)
        .map(|h| h.join().unwrap())
        .filter(|s| *s == 200)
        .count();
    let read = bucket_bytes_sent("flight") - before;
    println!("\n[coalesce] 100 concurrent cold requests, {mib} MiB object: {ok} x 200");
    println!(
        "  bytes read upstream / object size  {:.3}   (goal 1)",
        read as f64 / (mib << 20) as f64
    );
}
