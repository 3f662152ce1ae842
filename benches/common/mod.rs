//! Helpers shared by the benchmark targets (each includes this file as a module).

use std::io::Write;
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
