//! The real clients tests drive: boto3 (`tests/clients/s3client.py`), the aws CLI,
//! libtorrent (as the independent checker and as a peer), aria2c, Transmission and
//! qBittorrent.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

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
        .env("S3CLIENT_REGION", region_of(endpoint))
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

/// Runs the aws CLI against `endpoint` as `creds`, path-style, with a config of its own (no
/// user profile leaks in); panics with its stderr if it fails.
pub fn aws_cli(endpoint: &str, (ak, sk): (&str, &str), dir: &Path, args: &[&str]) {
    let cfg = dir.join("aws-config");
    std::fs::write(
        &cfg,
        format!(
            "[default]\nregion = {}\ns3 =\n  addressing_style = path\n",
            region_of(endpoint)
        ),
    )
    .unwrap();
    let out = Command::new("aws")
        .args(["--endpoint-url", endpoint])
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

/// aria2c with DHT, LPD and PEX off; `--bt-stop-timeout` because a bad piece hangs it.
/// `source` is a .torrent file or a magnet link.
pub fn aria2c(source: impl AsRef<std::ffi::OsStr>, save: &Path) -> std::process::Output {
    aria2c_with(source, save, &[])
}

/// As [`aria2c`], with extra options (`--bt-require-crypto=true`, say).
pub fn aria2c_with(
    source: impl AsRef<std::ffi::OsStr>,
    save: &Path,
    options: &[&str],
) -> std::process::Output {
    Command::new("timeout")
        .args(["90", "aria2c", "--enable-dht=false", "--enable-dht6=false"])
        .args([
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--seed-time=0",
        ])
        .args([
            "--bt-stop-timeout=30",
            "--console-log-level=warn",
            "--summary-interval=0",
        ])
        .args(["--bt-save-metadata=false", "--listen-port=6881-6999"])
        .args(options)
        .arg("-d")
        .arg(save)
        .arg(source)
        .output()
        .expect("aria2c")
}

pub fn lt_client(args: &[&str]) -> Value {
    lt_client_with(&[], args)
}

/// As [`lt_client`], with environment variables (`LT_ENCRYPTION`).
pub fn lt_client_with(vars: &[(&str, &str)], args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/lt_client.py");
    let out = Command::new(libtorrent_python())
        .arg(script)
        .args(args)
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "lt_client {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub struct Fixture {
    pub dir: PathBuf,
    pub data: Vec<u8>,
    pub torrent: PathBuf,
    pub name: String,
    /// A directory torrent's files (paths under `name`); empty for one object (`data`).
    pub tree: Vec<(String, Vec<u8>)>,
}

impl Fixture {
    /// What a client must have saved, path (under its save directory) by path.
    pub fn expected(&self) -> Vec<(PathBuf, &[u8])> {
        if self.tree.is_empty() {
            return vec![(PathBuf::from(&self.name), &self.data[..])];
        }
        let root = PathBuf::from(&self.name);
        self.tree
            .iter()
            .map(|(path, data)| (root.join(path), &data[..]))
            .collect()
    }

    /// Every expected file is in `save`, byte for byte.
    pub fn complete_in(&self, save: &Path) -> bool {
        self.expected()
            .iter()
            .all(|(p, data)| std::fs::read(save.join(p)).is_ok_and(|got| got == *data))
    }

    pub fn assert_downloaded_in(&self, save: &Path, client: &str) {
        for (path, data) in self.expected() {
            assert_downloaded(&save.join(path), data, client);
        }
    }
}

/// Uploads an object to the public bucket and fetches its torrent anonymously from `port`.
pub fn fixture(test: &str, port: u16, size: usize, seed: u64) -> Fixture {
    fixture_on(env(), test, port, size, seed)
}

/// As [`fixture`], on `env`'s backend.
pub fn fixture_on(env: &Env, test: &str, port: u16, size: usize, seed: u64) -> Fixture {
    let dir = env.scratch(test);
    let data = test_data(size, seed);
    let name = format!("{test}.bin");
    let key = format!("bt/{name}");
    env.put_object("public", &key, &data, &dir);
    let r = env.public_request(port, "GET", &format!("/public/{key}?torrent"));
    assert_eq!(r.status, 200, "{}", r.text());
    let torrent = dir.join(format!("{test}.torrent"));
    std::fs::write(&torrent, &r.body).unwrap();
    Fixture {
        dir,
        data,
        torrent,
        name,
        tree: Vec::new(),
    }
}

pub fn assert_downloaded(path: &Path, data: &[u8], client: &str) {
    let got = std::fs::read(path).unwrap_or_else(|e| panic!("{client}: {}: {e}", path.display()));
    assert!(
        got == data,
        "{client}: downloaded bytes differ from the object"
    );
}

/// libtorrent fetches `f`'s object from `source` (its .torrent or a magnet link) into
/// `f.dir/save` within 60 s, with no hash failure, and the bytes are the object's.
pub fn libtorrent_gets(source: &str, f: &Fixture, save: &str) {
    let save = f.dir.join(save);
    let out = lt_client(&["download", source, save.to_str().unwrap(), "60"]);
    assert_eq!(out["finished"], true, "{out}");
    assert_eq!(out["hash_failures"], 0, "{out}");
    f.assert_downloaded_in(&save, "libtorrent");
}

/// aria2c fetches `f`'s object from `source` (its .torrent or a magnet link) into
/// `f.dir/save`, and the bytes are the object's.
pub fn aria2c_gets(source: impl AsRef<std::ffi::OsStr>, f: &Fixture, save: &str) {
    let save = f.dir.join(save);
    let out = aria2c(source, &save);
    assert!(
        out.status.success(),
        "aria2c: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    f.assert_downloaded_in(&save, "aria2c");
}

pub fn transmission_downloads(f: &Fixture) {
    transmission_downloads_with(f, &[])
}

/// transmission-cli with extra flags (`-et`: peers without encryption; `-er`: encryption
/// required).
pub fn transmission_downloads_with(f: &Fixture, flags: &[&str]) {
    let cmd = Command::new("transmission-cli");
    transmission_downloads_in(f, flags, cmd, "transmission", None)
}

/// As [`transmission_downloads_with`], run as `cmd` (inside a network namespace, say),
/// saving into `f.dir/save`, with `settings` (its `settings.json`) if given.
pub fn transmission_downloads_in(
    f: &Fixture,
    flags: &[&str],
    mut cmd: Command,
    save: &str,
    settings: Option<&str>,
) {
    let save = f.dir.join(save);
    std::fs::create_dir_all(&save).unwrap();
    let port = free_ports(1)[0];
    let config = save.with_extension("config");
    std::fs::create_dir_all(&config).unwrap();
    if let Some(settings) = settings {
        std::fs::write(config.join("settings.json"), settings).unwrap();
    }
    cmd.arg("-w")
        .arg(&save)
        .arg("-g")
        .arg(&config)
        .args(["-D", "-M", "-p", &port.to_string()])
        .args(flags)
        .arg(&f.torrent)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // transmission-cli seeds forever once done (and retries bad pieces forever): poll the
    // file, then stop it by its PID.
    let mut child = spawn_guarded(cmd);
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if f.complete_in(&save) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = child.kill();
    let _ = child.wait();
    f.assert_downloaded_in(&save, "transmission-cli");
}

pub fn qbittorrent_downloads(f: &Fixture) {
    let profile = f.dir.join("qbt-profile");
    let config_dir = profile.join("qBittorrent").join("config");
    std::fs::create_dir_all(&config_dir).unwrap();
    // DHT, LSD, PeX, UPnP/NAT-PMP off; the Web UI on loopback without a login, to poll it.
    // SSRF mitigation off: libtorrent otherwise refuses a tracker on a local address unless
    // its path is exactly /announce (and these tests run on loopback).
    std::fs::write(
        config_dir.join("qBittorrent.conf"),
        "[LegalNotice]\nAccepted=true\n\n[BitTorrent]\nSession\\DHTEnabled=false\nSession\\LSDEnabled=false\n\
         Session\\SSRFMitigation=false\n\
         Session\\PeXEnabled=false\nSession\\Port=0\n\n[Network]\nPortForwardingEnabled=false\n\n\
         [Preferences]\nConnection\\UPnP=false\nWebUI\\Address=127.0.0.1\nWebUI\\LocalHostAuth=false\n",
    )
    .unwrap();
    let save = f.dir.join("qbt");
    let webui = free_ports(1)[0];
    let mut cmd = Command::new("qbittorrent-nox");
    cmd.arg(format!("--profile={}", profile.display()))
        .arg(format!("--webui-port={webui}"))
        .arg(format!("--save-path={}", save.display()))
        .arg(&f.torrent)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = spawn_guarded(cmd);
    // qBittorrent preallocates the file: completion comes from its API, not the file size.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut state = Value::Null;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", webui)).is_ok() {
            let r = request(webui, "GET", "/api/v2/torrents/info", &[]);
            state = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            if state[0]["progress"].as_f64() == Some(1.0) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(state[0]["progress"].as_f64(), Some(1.0), "{state}");
    f.assert_downloaded_in(&save, "qbittorrent-nox");
}

pub fn torrent_info_hash(torrent: &[u8]) -> [u8; 20] {
    use sha1::{Digest, Sha1};
    let v = s3torrent::torrent::bencode::decode(torrent).unwrap();
    Sha1::digest(v.get("info").unwrap().encode()).into()
}

/// `peers` libtorrent peers in one process fetching `torrent` together (`lt_client.py
/// swarm`), each saving under `work`, for at most `timeout_secs`.
pub fn spawn_crowd(
    torrent: &Path,
    work: &Path,
    peers: usize,
    timeout_secs: u64,
) -> std::process::Child {
    spawn_crowd_with(&[], torrent, work, peers, timeout_secs)
}

/// As [`spawn_crowd`], with environment variables (`LT_ENCRYPTION`).
pub fn spawn_crowd_with(
    vars: &[(&str, &str)],
    torrent: &Path,
    work: &Path,
    peers: usize,
    timeout_secs: u64,
) -> std::process::Child {
    crowd(vars, torrent, work, peers, timeout_secs, None)
}

/// As [`spawn_crowd_with`], plus a libtorrent seeder in the crowd's process holding
/// `seed_data` (the anchor the sidecar's seeder is measured against; `LT_SUPER_SEED=1` in
/// `vars` makes it super-seed).
pub fn spawn_seeded_crowd(
    vars: &[(&str, &str)],
    torrent: &Path,
    work: &Path,
    peers: usize,
    timeout_secs: u64,
    seed_data: &Path,
) -> std::process::Child {
    crowd(vars, torrent, work, peers, timeout_secs, Some(seed_data))
}

fn crowd(
    vars: &[(&str, &str)],
    torrent: &Path,
    work: &Path,
    peers: usize,
    timeout_secs: u64,
    seed_data: Option<&Path>,
) -> std::process::Child {
    Command::new(libtorrent_python())
        .envs(vars.iter().copied())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/lt_client.py"
        ))
        .args(["swarm", torrent.to_str().unwrap(), work.to_str().unwrap()])
        .args([peers.to_string(), timeout_secs.to_string()])
        .args(seed_data)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3-libtorrent")
}

/// A crowd's outcome: peers that finished (a seeder in it counted), hash failures, and its
/// seconds.
pub fn crowd_outcome(child: std::process::Child) -> (usize, u64, f64) {
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).expect("lt_client output");
    let finished = v["peers"]
        .as_object()
        .unwrap()
        .values()
        .filter(|p| p["finished"] == true)
        .count();
    let failures = v["hash_failures"].as_u64().unwrap_or(0);
    (finished, failures, v["seconds"].as_f64().unwrap_or(0.0))
}
