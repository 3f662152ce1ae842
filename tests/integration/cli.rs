//! The binary's command line: help, version, check-config, exit code 64 on bad config.

use std::process::Command;

use crate::harness::*;

fn s3torrent(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_s3torrent"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_and_version() {
    let help = s3torrent(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("check-config"));
    let version = s3torrent(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("s3torrent {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(s3torrent(&["--bogus"]).status.code(), Some(64));
}

#[test]
fn check_config_accepts_the_shipped_file() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/s3torrent.toml");
    let out = s3torrent(&["check-config", shipped]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_config_exits_64_naming_key_and_line_before_binding() {
    let dir = std::env::temp_dir().join(format!("s3torrent-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_ports(1)[0];
    let good = sidecar_config(1, "us-east-1", port, free_ports(1)[0]);
    let cases = [
        (
            "piece",
            good.replace("[torrent]\n", "[torrent]\npiece_length = 12345\n"),
            "piece_length",
        ),
        (
            "unknown",
            good.replace("[server]\n", "[server]\nlisten_addr = 1\n"),
            "listen_addr",
        ),
        (
            "type",
            good.replace("threads = 2", "threads = \"two\""),
            "threads",
        ),
    ];
    for (name, text, key) in cases {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, &text).unwrap();
        for args in [
            vec!["--config", path.to_str().unwrap()],
            vec!["check-config", path.to_str().unwrap()],
        ] {
            let out = s3torrent(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{name}: {err}");
            assert!(err.contains(key), "{name}: {err}");
            if name != "secret-file" {
                assert!(err.contains("line"), "{name}: {err}");
            }
        }
        // Nothing was bound.
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
    let missing = s3torrent(&["--config", "/nonexistent/s3torrent.toml"]);
    assert_eq!(missing.status.code(), Some(64));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn admin_listener_answers_healthz() {
    let env = env();
    let r = request(env.admin_port, "GET", "/healthz", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert_eq!(request(env.admin_port, "GET", "/nope", &[]).status, 404);
}

/// `warm`'s command line: what is missing or wrong is named, exit 64, before any request.
#[test]
fn warm_refuses_bad_arguments_with_64() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/s3torrent.toml");
    let cases: [(&[&str], &str); 5] = [
        (&["warm", "--config", shipped], "s3://bucket/prefix"),
        (
            &["warm", "--config", shipped, "bucket/prefix"],
            "unexpected argument",
        ),
        (
            &["warm", "--config", shipped, "s3://Bad_Name/x"],
            "not a bucket name",
        ),
        (
            &["warm", "--config", shipped, "s3://data/x", "-j", "0"],
            "--concurrency",
        ),
        // The shipped config has no [store]: nothing to warm.
        (
            &["warm", "--config", shipped, "s3://data/x"],
            "no [store] bucket",
        ),
    ];
    for (args, says) in cases {
        let out = s3torrent(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// The Kubernetes manifests, base and replicas, are valid against the Kubernetes schemas
/// (PyPI `kubernetes-validate`, offline, strict: no unknown field), every file a
/// kustomization names exists, and each configuration they ship passes `check-config` with
/// what the pod's environment supplies.
#[test]
fn the_kubernetes_manifests_validate_offline() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    for dir in ["base", "replicas"] {
        let dir = root.join(dir);
        let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
        let named: Vec<&str> = kustomization
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- "))
            .filter(|f| f.ends_with(".yaml") || f.ends_with(".toml"))
            .collect();
        assert!(named.len() >= 3, "{kustomization}");
        for f in &named {
            assert!(
                dir.join(f).exists(),
                "{}: names {f}, which is missing",
                dir.display()
            );
        }
        let manifests: Vec<_> = named
            .iter()
            .filter(|f| f.ends_with(".yaml"))
            .map(|f| dir.join(f))
            .collect();
        let out = Command::new("kubernetes-validate")
            .args(["--strict", "--no-warn", "-k", "1.30.0"])
            .args(&manifests)
            .output()
            .expect("kubernetes-validate (pip install kubernetes-validate)");
        assert!(
            out.status.success(),
            "{}: {}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new(env!("CARGO_BIN_EXE_s3torrent"))
            .arg("check-config")
            .arg(dir.join("s3torrent.toml"))
            .env("S3TORRENT_UPSTREAM_ACCESS_KEY_ID", "k")
            .env("S3TORRENT_UPSTREAM_SECRET_ACCESS_KEY", "s")
            .env("S3TORRENT_CALLER_SECRET_ACCESS_KEY", "c")
            .env("S3TORRENT_POD_IP", "10.0.0.7")
            .env("S3TORRENT_POD_NAME", "s3torrent-0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
