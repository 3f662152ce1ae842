//! `[pass]`: what pass-through costs, beside the proxies users would otherwise run: nginx
//! (`worker_processes 2`, upstream keep-alive), HAProxy (`nbthread 2`, `http-reuse always`)
//! and pingora itself (`examples/pingora_floor.rs`, the smallest `ProxyHttp`), all in front of
//! the same SeaweedFS, measured side by side in alternating rounds:
//! - 1 KiB GET and HEAD req/s at 32 connections, and p50/p99 latency added over direct;
//! - 256 connections, and a connection per request (no keep-alive);
//! - instructions per request (callgrind, 10,000 GETs less one): repeatable on a noisy box;
//! - 1 GiB GET via the sidecar ÷ direct;
//! - 1 GiB PUT via a sidecar hashing on upload ÷ direct.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;
use crate::harness::*;
use crate::{load_with, Load};

/// Requests counted for instructions per request.
const COUNTED: usize = 10_000;

pub fn bench_pass(size_mib: usize) {
    let rounds = env_or("BENCH_ROUNDS", 5);
    let secs = env_or("BENCH_LOAD_SECS", 5);
    let env = env();
    put_object(
        "public",
        "bench/1k.bin",
        &test_data(1024, 3),
        &env.scratch("bench"),
    );
    println!("\n[pass]");
    if have("oha") {
        let mut sides = vec![("direct", env.s3_port), ("sidecar", env.port)];
        for (name, start) in [
            ("nginx", start_nginx as fn(usize) -> Option<u16>),
            ("haproxy", start_haproxy),
            ("pingora", start_floor),
        ] {
            match start(2) {
                Some(port) => sides.push((name, port)),
                None => println!("  {name} not available: its ratios are skipped"),
            }
        }
        small_requests(&sides, rounds.min(3), secs);
        connections(&sides, rounds.min(3), secs);
    } else {
        println!("  oha not installed (cargo install oha --locked): small requests skipped");
    }
    if have("valgrind") && have("oha") {
        instructions();
    } else {
        println!("  valgrind or oha not installed: instructions per request skipped");
    }
    large_bodies(size_mib, rounds);
    large_puts(size_mib, rounds.min(3));
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/public/bench/1k.bin")
}

/// Rounds of `oha` on every side in turn, per side: its loads.
fn rounds_of(
    sides: &[(&'static str, u16)],
    rounds: usize,
    run: impl Fn(u16) -> Load,
) -> BTreeMap<&'static str, Vec<Load>> {
    let mut by: BTreeMap<&str, Vec<Load>> = BTreeMap::new();
    for _ in 0..rounds {
        for (name, port) in sides {
            by.entry(name).or_default().push(run(*port));
        }
    }
    by
}

fn rps(v: &[Load]) -> Vec<f64> {
    v.iter().map(|l| l.rps).collect()
}

fn small_requests(sides: &[(&'static str, u16)], rounds: usize, secs: usize) {
    for method in ["GET", "HEAD"] {
        let by = rounds_of(sides, rounds, |port| {
            load_with(&url(port), secs, method, 32, true)
        });
        println!("  1 KiB {method}, 32 connections, {rounds} rounds of {secs} s:");
        let direct = &by["direct"];
        let p = |v: &[Load], f: fn(&Load) -> f64| median(v.iter().map(f).collect());
        for (name, _) in sides {
            let v = &by[name];
            let added = match *name {
                "direct" => String::new(),
                _ => format!(
                    "  added over direct: p50 {:+.2} ms, p99 {:+.2} ms",
                    p(v, |l| l.p50_ms) - p(direct, |l| l.p50_ms),
                    p(v, |l| l.p99_ms) - p(direct, |l| l.p99_ms)
                ),
            };
            println!(
                "    {name:<8} {:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms{added}",
                median(rps(v)),
                p(v, |l| l.p50_ms),
                p(v, |l| l.p99_ms),
            );
        }
        for anchor in ["nginx", "haproxy", "pingora"] {
            if let Some(theirs) = by.get(anchor) {
                let goal = if anchor == "pingora" {
                    "(pingora's floor)"
                } else {
                    "(goal >= 1.0)"
                };
                println!(
                    "    ratio sidecar / {anchor:<8} {:.3}   {goal}",
                    ratios(&rps(&by["sidecar"]), &rps(theirs))
                );
            }
        }
    }
}

fn connections(sides: &[(&'static str, u16)], rounds: usize, secs: usize) {
    let pair: Vec<_> = sides
        .iter()
        .filter(|(n, _)| matches!(*n, "sidecar" | "nginx" | "haproxy"))
        .cloned()
        .collect();
    for (label, conns, keepalive) in [
        ("256 connections", 256, true),
        ("a connection per request", 32, false),
    ] {
        let by = rounds_of(&pair, rounds, |port| {
            load_with(&url(port), secs, "GET", conns, keepalive)
        });
        println!("  1 KiB GET, {label}:");
        for (name, v) in &by {
            println!("    {name:<8} {:>8.0} req/s", median(rps(v)));
        }
        for anchor in ["nginx", "haproxy"] {
            if let Some(theirs) = by.get(anchor) {
                println!(
                    "    ratio sidecar / {anchor:<8} {:.3}   (goal >= 1.0)",
                    ratios(&rps(&by["sidecar"]), &rps(theirs))
                );
            }
        }
    }
}

/// nginx as a plain reverse proxy to the backend, with upstream keep-alive; `workers` 0 is
/// one worker and no master (for callgrind).
fn nginx_conf(workers: usize) -> (PathBuf, u16) {
    let dir = env().scratch(&format!("nginx-{workers}"));
    let port = free_ports(1)[0];
    let conf = dir.join("nginx.conf");
    let processes = match workers {
        0 => "master_process off;\nworker_processes 1;".to_string(),
        n => format!("worker_processes {n};"),
    };
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nuser root;\n{processes}\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             upstream s3 {{ server 127.0.0.1:{s3}; keepalive 64; }}\n\
             server {{ listen 127.0.0.1:{port};\n  location / {{ proxy_pass http://s3; proxy_http_version 1.1;\n\
             proxy_set_header Connection \"\"; proxy_set_header Host $http_host; }} }}\n}}\n",
            d = dir.display(),
            s3 = env().s3_port,
        ),
    )
    .unwrap();
    (conf, port)
}

fn nginx_argv(conf: &Path) -> Vec<String> {
    let dir = conf.parent().unwrap();
    [
        "nginx",
        "-c",
        conf.to_str().unwrap(),
        "-p",
        dir.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// HAProxy in HTTP mode with idle upstream connections shared by all (`http-reuse always`).
fn haproxy_conf(threads: usize) -> (PathBuf, u16) {
    let dir = env().scratch(&format!("haproxy-{threads}"));
    let port = free_ports(1)[0];
    let conf = dir.join("haproxy.cfg");
    std::fs::write(
        &conf,
        format!(
            "global\n  nbthread {threads}\n  maxconn 4096\n\ndefaults\n  mode http\n  timeout connect 2s\n  \
             timeout client 30s\n  timeout server 30s\n  http-reuse always\n\n\
             frontend s3\n  bind 127.0.0.1:{port}\n  default_backend backend\n\n\
             backend backend\n  server s1 127.0.0.1:{s3}\n",
            s3 = env().s3_port
        ),
    )
    .unwrap();
    (conf, port)
}

fn haproxy_argv(conf: &Path) -> Vec<String> {
    ["haproxy", "-db", "-f", conf.to_str().unwrap()]
        .map(String::from)
        .to_vec()
}

/// `examples/pingora_floor`, built in release here.
fn floor_binary() -> Option<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--example",
            "pingora_floor",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .is_ok_and(|s| s.success());
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/examples/pingora_floor");
    (ok && bin.exists()).then_some(bin)
}

fn floor_argv(bin: &Path, port: u16, threads: usize) -> Vec<String> {
    vec![
        bin.display().to_string(),
        format!("127.0.0.1:{port}"),
        format!("127.0.0.1:{}", env().s3_port),
        threads.to_string(),
    ]
}

/// Starts `argv` for the rest of the run, listening on `port`.
fn serve(argv: &[String], port: u16, log: &Path) -> u16 {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    register_child(spawn_guarded(cmd));
    wait_for_port(port, &argv[0], log);
    port
}

fn start_nginx(workers: usize) -> Option<u16> {
    have("nginx").then(|| {
        let (conf, port) = nginx_conf(workers);
        serve(&nginx_argv(&conf), port, &conf.with_extension("err"))
    })
}

fn start_haproxy(threads: usize) -> Option<u16> {
    have("haproxy").then(|| {
        let (conf, port) = haproxy_conf(threads);
        serve(&haproxy_argv(&conf), port, &conf.with_extension("err"))
    })
}

fn start_floor(threads: usize) -> Option<u16> {
    let bin = floor_binary()?;
    let port = free_ports(1)[0];
    let log = env().scratch("pingora-floor").join("floor.err");
    Some(serve(&floor_argv(&bin, port, threads), port, &log))
}

/// Instructions each proxy executes per 1 KiB GET: callgrind over one request, then over
/// one plus [`COUNTED`] (oha, 32 connections), the difference ÷ [`COUNTED`]. Each runs
/// alone under valgrind (which serializes threads), so the count does not depend on load.
fn instructions() {
    let dir = env().scratch("callgrind");
    let mut sides: Vec<(&str, Vec<String>, u16)> = Vec::new();
    let sidecar = sidecar("bench-callgrind");
    let config = dir.join("sidecar.toml");
    std::fs::write(&config, sidecar.config_text()).unwrap();
    let argv = [env!("CARGO_BIN_EXE_s3torrent"), "--config"]
        .map(String::from)
        .into_iter()
        .chain([config.display().to_string()])
        .collect();
    sides.push(("sidecar", argv, sidecar.port()));
    if have("nginx") {
        let (conf, port) = nginx_conf(0);
        sides.push(("nginx", nginx_argv(&conf), port));
    }
    if have("haproxy") {
        let (conf, port) = haproxy_conf(1);
        sides.push(("haproxy", haproxy_argv(&conf), port));
    }
    if let Some(bin) = floor_binary() {
        let port = free_ports(1)[0];
        sides.push(("pingora", floor_argv(&bin, port, 2), port));
    }
    println!("  instructions per 1 KiB GET (callgrind, {COUNTED} requests less one):");
    let mut counted = BTreeMap::new();
    for (name, argv, port) in &sides {
        let count = |requests: usize| callgrind_total(&dir, name, argv, *port, requests);
        match (count(1), count(1 + COUNTED)) {
            (Some(one), Some(many)) => {
                let per = many.saturating_sub(one) as f64 / COUNTED as f64;
                println!("    {name:<8} {per:>9.0}");
                counted.insert(*name, per);
            }
            _ => println!("    {name:<8} (callgrind run failed)"),
        }
    }
    for anchor in ["nginx", "haproxy", "pingora"] {
        if let (Some(ours), Some(theirs)) = (counted.get("sidecar"), counted.get(anchor)) {
            println!("    ratio sidecar / {anchor:<8} {:.2}", ours / theirs);
        }
    }
}

/// The instructions `argv` executed serving `requests` GETs, start to exit.
fn callgrind_total(
    dir: &Path,
    name: &str,
    argv: &[String],
    port: u16,
    requests: usize,
) -> Option<u64> {
    let out = dir.join(format!("callgrind.{name}.{requests}"));
    let log = dir.join(format!("{name}.{requests}.err"));
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--dump-instr=no")
        .args(argv)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = spawn_guarded(cmd);
    wait_for_port(port, name, &log);
    let status = Command::new("oha")
        .args([
            "-n",
            &requests.to_string(),
            "-c",
            &requests.min(32).to_string(),
        ])
        .args(["--no-tui", "--output-format", "json", &url(port)])
        .stdout(Stdio::null())
        .status();
    // SIGINT: every one of them exits at once on it, and callgrind writes its counts.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
    status.ok().filter(|s| s.success())?;
    let text = std::fs::read_to_string(&out).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("totals: "))
        .and_then(|n| n.trim().parse().ok())
}

fn large_bodies(size_mib: usize, rounds: usize) {
    let env = env();
    let via = format!("http://127.0.0.1:{}/public/bench/object.bin", env.port);
    let direct = format!("http://127.0.0.1:{}/public/bench/object.bin", env.s3_port);
    curl_seconds(&direct);
    let (mut v, mut d) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        v.push(curl_seconds(&via));
        d.push(curl_seconds(&direct));
    }
    let mib = size_mib as f64;
    println!(
        "  {size_mib} MiB GET via sidecar  {:.0} MiB/s",
        mib / median(v.clone())
    );
    println!(
        "  {size_mib} MiB GET direct       {:.0} MiB/s",
        mib / median(d.clone())
    );
    println!(
        "  throughput ratio via / direct  {:.3}   (goal >= 0.95)",
        ratios(&d, &v)
    );
}

/// A PUT of the bench object through a sidecar that hashes it on upload (a store, so the
/// torrent is kept) against the same PUT straight to the backend, alternating.
fn large_puts(size_mib: usize, rounds: usize) {
    let env = env();
    let big = env.scratch("bench").join("object.bin");
    let hashing = sidecar("bench-put")
        .set("torrent.max_object_size", 5_368_709_120i64)
        .set("store.bucket", "store")
        .set("store.prefix", "bench-put/")
        .start();
    // The file is read once ahead, so both sides send from the page cache.
    put_seconds(env.s3_port, "/upload/bench/put-warmup.bin", &big);
    let (mut via, mut direct) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        direct.push(put_seconds(
            env.s3_port,
            &format!("/upload/bench/put-direct-{i}.bin"),
            &big,
        ));
        via.push(put_seconds(
            hashing.port,
            &format!("/upload/bench/put-hashed-{i}.bin"),
            &big,
        ));
    }
    let hashed = request(hashing.admin_port, "GET", "/metrics", &[])
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("s3torrent_uploads_hashed_total{kind=\"put\"} "))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap_or(0));
    let mib = size_mib as f64;
    println!(
        "  {size_mib} MiB PUT via sidecar, hash on upload  {:.0} MiB/s  ({hashed} of {rounds} adopted so far)",
        mib / median(via.clone())
    );
    println!(
        "  {size_mib} MiB PUT direct                       {:.0} MiB/s",
        mib / median(direct.clone())
    );
    println!(
        "  throughput ratio via / direct  {:.3}   (goal >= 0.9)",
        ratios(&direct, &via)
    );
}
