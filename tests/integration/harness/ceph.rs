//! A single-node Ceph RGW (Debian's `ceph-mon`, `ceph-osd`, `radosgw`, 16.2), started once per
//! test binary beside SeaweedFS, with a sidecar in front of it: the second real backend of
//! the tests that run on every backend ([`on_every_backend!`]).
//!
//! One mon, one OSD on `memstore` (no disk), pool size 1, cluster auth `none`, RGW (beast) on
//! 127.0.0.1; every daemon in the foreground, a child of the test process, stopped by PID
//! with the rest. Facts learned the hard way: a mon on a non-default port is msgr2-only
//! (`mon host = v2:…`); with auth `none` a daemon must use `ms mon client mode = crc` (else
//! radosgw hangs 300 s); `rgw zonegroup = default` must not be set.
//!
//! Permissions are bucket policies (RGW has no SeaweedFS-style identities): `reader` may
//! read every bucket, anonymous callers every bucket but `private` and `store`, `noread`
//! nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::harness::*;

static CEPH: OnceLock<Env> = OnceLock::new();

/// The Ceph RGW environment, started on first use (about 15 s here).
pub fn ceph() -> &'static Env {
    CEPH.get_or_init(start)
}

fn start() -> Env {
    // SeaweedFS's environment registers the process-exit cleanup and owns the scratch root.
    let root = env().dir.clone();
    let dir = root.join("ceph");
    std::fs::create_dir_all(&dir).unwrap();
    for tool in [
        "ceph-mon",
        "ceph-osd",
        "radosgw",
        "radosgw-admin",
        "monmaptool",
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{tool} is missing: install ceph-mon ceph-osd radosgw ceph-common (.ci/run does)"
        );
    }
    let [mon_port, rgw_port, port, admin_port] = free_ports(4)[..] else {
        unreachable!()
    };
    let conf = write_conf(&dir, mon_port, rgw_port);
    let c = |args: &[&str]| {
        run(Command::new(args[0])
            .args(["-c", conf.to_str().unwrap()])
            .args(&args[1..]))
    };
    run(Command::new("monmaptool")
        .args([
            "--create",
            "--addv",
            "a",
            &format!("[v2:127.0.0.1:{mon_port}]"),
        ])
        .args(["--fsid", &fsid(&dir)])
        .arg(dir.join("monmap")));
    c(&[
        "ceph-mon",
        "--mkfs",
        "-i",
        "a",
        "--monmap",
        dir.join("monmap").to_str().unwrap(),
    ]);
    daemon(&conf, &dir, &["ceph-mon", "-i", "a"]);
    c(&["ceph", "--connect-timeout", "60", "osd", "create"]);
    c(&["ceph-osd", "-i", "0", "--mkfs"]);
    daemon(&conf, &dir, &["ceph-osd", "-i", "0"]);
    daemon(&conf, &dir, &["radosgw", "-n", "client.rgw.a"]);
    // RGW creates its pools on first start; it answers once they exist.
    let deadline = Instant::now() + Duration::from_secs(300);
    while std::net::TcpStream::connect(("127.0.0.1", rgw_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "radosgw never answered: see {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for (uid, (ak, sk)) in [("admin", ADMIN), ("reader", READER), ("noread", NOREAD)] {
        c(&[
            "radosgw-admin",
            "-n",
            "client.admin",
            "user",
            "create",
            "--uid",
            uid,
            "--display-name",
            uid,
            "--access-key",
            ak,
            "--secret-key",
            sk,
        ]);
    }
    let backend = format!("http://127.0.0.1:{rgw_port}");
    let specs: Vec<String> = BUCKETS
        .iter()
        .map(|&b| {
            let who = match b {
                "private" | "store" => "reader",
                b if LISTABLE.contains(&b) => "listable",
                _ => "public",
            };
            format!("{b}:{who}")
        })
        .collect();
    let mut args = vec!["buckets"];
    args.extend(specs.iter().map(String::as_str));
    let out = s3client(&backend, ADMIN, &args);
    assert!(out.get("error").is_none(), "buckets: {out}");
    let out = s3client(&backend, ADMIN, &["versioning", "versioned"]);
    assert!(out.get("error").is_none(), "versioning: {out}");

    let config = dir.join("s3torrent.toml");
    std::fs::write(
        &config,
        sidecar_config(rgw_port, "us-east-1", port, admin_port),
    )
    .unwrap();
    start_sidecar(&config, &dir.join("sidecar.log"), port);
    Env {
        backend: Backend::CephRgw,
        region: "us-east-1",
        s3_port: rgw_port,
        weed_metrics_port: 0,
        port,
        admin_port,
        dir,
    }
}

fn fsid(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("fsid")).unwrap()
}

fn write_conf(dir: &Path, mon_port: u16, rgw_port: u16) -> PathBuf {
    let fsid = std::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap();
    let fsid = fsid.trim();
    std::fs::write(dir.join("fsid"), fsid).unwrap();
    for sub in ["mon", "osd", "run", "log", "rgw"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let d = dir.display();
    let conf = format!(
        "[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
mon initial members = a
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 8589934592
run dir = {d}/run
log file = {d}/log/$name.log
admin socket = {d}/run/$name.asok
[mon.a]
mon data = {d}/mon
[osd.0]
osd data = {d}/osd
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {d}/rgw
rgw dns name = {DOMAIN}
rgw crypt require ssl = false
"
    );
    let path = dir.join("ceph.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A daemon in the foreground, a child of this process: stopped with everything else.
fn daemon(conf: &Path, dir: &Path, args: &[&str]) {
    let log = dir.join("log").join(format!("{}.out", args[0]));
    let mut cmd = Command::new(args[0]);
    cmd.args(["-f", "-c", conf.to_str().unwrap()])
        .args(&args[1..])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
    register_child(spawn_guarded(cmd));
}
