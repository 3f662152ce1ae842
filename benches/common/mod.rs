//! Helpers shared by the benchmark targets (each includes this file as a module).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::harness::*;

pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn curl_seconds(url: &str) -> f64 {
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

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// `label`, then the median of `secs` and the rate it gives over `mib` MiB.
pub fn print_timed(label: &str, secs: &[f64], mib: f64) {
    let m = median(secs.to_vec());
    println!("  {label:<30}{m:.3} s  ({:.0} MiB/s)", mib / m);
}

pub fn ratios(a: &[f64], b: &[f64]) -> f64 {
    median(a.iter().zip(b).map(|(x, y)| x / y).collect())
}

/// Writes `mib` MiB of test data to `path` without holding it all in memory.
pub fn write_data(path: &Path, mib: usize, seed: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..mib {
        f.write_all(&test_data(1 << 20, seed * 1_000_003 + i as u64))
            .unwrap();
    }
}

pub fn upload(bucket: &str, key: &str, file: &Path) {
    let put = s3client(
        &env().backend_url(),
        ADMIN,
        &["put-multipart", bucket, key, file.to_str().unwrap()],
    );
    assert!(put.get("error").is_none(), "{put}");
}

/// The peak RSS of process `pid` (VmHWM), in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024.0
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    ticks / clock_ticks()
}

/// CPU seconds used by this process's children that have been waited for.
pub fn children_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// A PUT streamed from `file` (UNSIGNED-PAYLOAD: the client hashes nothing, so what is timed
/// is the transfer and the sidecar's own work); seconds until the response.
pub fn put_seconds(port: u16, target: &str, file: &Path) -> f64 {
    let length = std::fs::metadata(file).unwrap().len().to_string();
    let host = format!("127.0.0.1:{port}");
    let headers = signed_headers_with(
        ADMIN,
        "PUT",
        &host,
        target,
        Some("UNSIGNED-PAYLOAD"),
        &[("content-length", &length)],
        std::time::SystemTime::now(),
    );
    let t = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!("PUT {target} HTTP/1.1\r\n");
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut f = std::fs::File::open(file).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).unwrap();
    }
    let mut status = String::new();
    BufReader::new(&s).read_line(&mut status).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(status.contains(" 200 "), "PUT {target}: {status}");
    secs
}
