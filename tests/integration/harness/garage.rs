//! A single-node Garage (2.5, `cargo install garage`, which `.ci/run` does), started once per
//! test binary beside SeaweedFS, with a sidecar in front of it: the third real backend of the
//! tests that run on every backend ([`on_every_backend!`]).
//!
//! One node, `db_engine = "sqlite"`, `replication_factor = 1`, a layout of one role applied
//! before the first request, in the foreground as a child of the test process, stopped by PID
//! with the rest. Its region is `garage`, as its documentation configures it, and it
//! enforces it on every signature: clients and the sidecar sign for `garage` here
//! ([`region_of`]).
//!
//! Permissions are per key and bucket (`garage bucket allow`), and there is no anonymous
//! access at all: `admin` owns every bucket, `reader` may read every bucket, `noread` may
//! only write `public`. Every read the other backends serve anonymously is refused here with
//! `403 AccessDenied`; tests say where that changes what they expect.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use crate::harness::*;

static GARAGE: OnceLock<Env> = OnceLock::new();

/// The region Garage is configured with (its documentation's).
pub const GARAGE_REGION: &str = "garage";

/// The Garage environment, started on first use (about a second).
pub fn garage() -> &'static Env {
    GARAGE.get_or_init(start)
}

fn start() -> Env {
    // SeaweedFS's environment registers the process-exit cleanup and owns the scratch root.
    let root = env().dir.clone();
    let dir = root.join("garage");
    std::fs::create_dir_all(&dir).unwrap();
    let found = Command::new("sh")
        .args(["-c", "command -v garage"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "garage is missing: `cargo install garage --locked` (.ci/run does)"
    );
    let [s3_port, rpc_port, admin_api, port, admin_port] = free_ports(5)[..] else {
        unreachable!()
    };
    let conf = write_conf(&dir, s3_port, rpc_port, admin_api);
    let mut cmd = Command::new("garage");
    cmd.args(["-c", conf.to_str().unwrap(), "server"])
        .stdout(std::fs::File::create(dir.join("garage.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("garage.err")).unwrap());
    register_child(spawn_guarded(cmd));
    wait_for_port(rpc_port, "garage RPC", &dir.join("garage.err"));
    let cli = |args: &[&str]| cli(&conf, args);

    let node = cli(&["node", "id", "-q"]);
    let node = node.split('@').next().unwrap().trim().to_string();
    cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
    cli(&["layout", "apply", "--version", "1"]);
    for (name, (ak, sk)) in [("admin", ADMIN), ("reader", READER), ("noread", NOREAD)] {
        cli(&["key", "import", "--yes", "-n", name, ak, sk]);
    }
    wait_for_port(s3_port, "garage S3", &dir.join("garage.err"));
    register_region(s3_port, GARAGE_REGION);

    // Buckets made over S3 are the creating key's alone (a local alias), so every bucket is
    // made with the CLI (a global alias) and each key given its rights on it.
    for bucket in std::iter::once(&"warmup").chain(BUCKETS) {
        cli(&["bucket", "create", bucket]);
        cli(&[
            "bucket", "allow", "--read", "--write", "--owner", bucket, "--key", ADMIN.0,
        ]);
        cli(&["bucket", "allow", "--read", bucket, "--key", READER.0]);
    }
    cli(&["bucket", "allow", "--write", "public", "--key", NOREAD.0]);
    // The layout takes a moment to reach the S3 API: wait until a write works.
    let backend = format!("http://127.0.0.1:{s3_port}");
    let scratch = dir.join("warmup.bin");
    std::fs::write(&scratch, b"warm").unwrap();
    let put = ["put", "warmup", "w", scratch.to_str().unwrap()];
    wait_until_writable(&backend, "Garage", &put);

    let config = dir.join("s3torrent.toml");
    std::fs::write(
        &config,
        sidecar_config(s3_port, GARAGE_REGION, port, admin_port),
    )
    .unwrap();
    register_region(port, GARAGE_REGION);
    start_sidecar(&config, &dir.join("sidecar.log"), port);
    Env {
        backend: Backend::Garage,
        region: GARAGE_REGION,
        s3_port,
        weed_metrics_port: 0,
        port,
        admin_port,
        dir,
    }
}

fn write_conf(dir: &Path, s3_port: u16, rpc_port: u16, admin_api: u16) -> std::path::PathBuf {
    let secret = test_data(32, std::process::id() as u64)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let d = dir.display();
    let conf = format!(
        r#"metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{GARAGE_REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".{DOMAIN}"

[admin]
api_bind_addr = "127.0.0.1:{admin_api}"
"#
    );
    let path = dir.join("garage.toml");
    std::fs::write(&path, conf).unwrap();
    path
}

/// Runs the `garage` CLI against this node; its stdout.
fn cli(conf: &Path, args: &[&str]) -> String {
    let out = Command::new("garage")
        .args(["-c", conf.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "garage {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
