//! `s3torrent warm`: fills the store for a prefix, so replicas serve without reading; a
//! rerun skips what is stored, so an interrupted warm resumes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::*;
use crate::store::{read_by, replica};

/// A configuration for `warm` (the sidecar's, plus the store, taking objects of any size).
fn warm_config(dir: &Path, store_prefix: &str, lease: &str) -> PathBuf {
    let config = dir.join("warm.toml");
    let text = sidecar("warm")
        .set("store.bucket", "store")
        .set("store.prefix", store_prefix)
        .set("store.lease", lease)
        .set("store.min_bytes", 0)
        .config_text();
    std::fs::write(&config, text).unwrap();
    config
}

fn warm(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3torrent"));
    cmd.arg("warm").arg("--config").arg(config).args(args);
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn summary(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.starts_with("warm: "), "{stdout}\n{stderr}");
    stdout
}

/// How many entries the store holds under `prefix`.
fn stored(prefix: &str) -> usize {
    let out = s3client(&env().backend_url(), ADMIN, &["list", "store", prefix]);
    out["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| !k.as_str().unwrap().contains("/.leases/"))
        .count()
}

#[test]
fn a_warmed_prefix_is_served_by_a_replica_without_reading() {
    let env = env();
    let dir = env.scratch("warm-prefix");
    let sizes = [1usize, 16 * 1024, 300_001, 1024 * 1024, 2 * 1024 * 1024 + 9];
    let objects: Vec<(String, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| (format!("set/obj {i}+ü"), test_data(size, 1400 + i as u64)))
        .collect();
    for (key, data) in &objects {
        put_object("warm", key, data, &dir);
    }
    put_object("warm", "set/empty", b"", &dir);
    put_object("warm", "other/outside", &test_data(70_000, 1410), &dir);

    // Two keys per listing page: the continuation is followed to the end.
    let config = warm_config(&dir, "prefix/", "30s");
    let metrics_file = dir.join("warm.prom");
    let metrics_arg = metrics_file.to_str().unwrap();
    let out = warm(
        &config,
        &[
            "s3://warm/set/",
            "--page-size",
            "2",
            "--metrics-file",
            metrics_arg,
        ],
    )
    .output()
    .unwrap();
    let text = summary(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with("warm: 6 objects listed: 5 stored, 1 skipped"),
        "{text}"
    );
    assert_eq!(stored("prefix/"), 5);
    let prom = std::fs::read_to_string(&metrics_file).unwrap();
    assert!(
        prom.contains("s3torrent_warm_objects_total{result=\"stored\"} 5"),
        "{prom}"
    );
    assert!(
        prom.contains("s3torrent_warm_objects_total{result=\"skipped\"} 1"),
        "{prom}"
    );
    let hashed: u64 = objects.iter().map(|(_, d)| d.len() as u64).sum();
    let line = format!("s3torrent_warm_bytes_hashed_total {hashed}");
    assert!(prom.lines().any(|l| l == line), "{prom}");

    let b = replica("warm-replica", "store", "prefix/")
        .set("store.min_bytes", 0)
        .start();
    for (key, data) in &objects {
        let target = format!("/warm/{}?torrent", s3torrent::s3::uri::encode_path(key));
        let mut body = Vec::new();
        let read = read_by("warm", || {
            let r = request(b.port, "GET", &target, &[]);
            assert_eq!(r.status, 200, "{}", r.text());
            body = r.body;
        });
        assert_eq!(read, PROBE_BYTES, "{key}: only the READ check");
        let t = dir.join("t.torrent");
        let f = dir.join("data");
        std::fs::write(&t, &body).unwrap();
        std::fs::write(&f, data).unwrap();
        let check = check_torrent(&t, &f);
        assert_eq!(check["bad_pieces"], serde_json::json!([]), "{key}: {check}");
        assert_eq!(check["length"].as_u64(), Some(data.len() as u64));
    }
    // Outside the prefix: not warmed.
    let read = read_by("warm", || {
        let r = request(b.port, "GET", "/warm/other/outside?torrent", &[]);
        assert_eq!(r.status, 200);
    });
    assert_eq!(read, 70_000 + PROBE_BYTES);

    // A rerun reads nothing but its facts checks.
    let mut rerun = None;
    let read = read_by("warm", || {
        rerun = Some(warm(&config, &["s3://warm/set/"]).output().unwrap())
    });
    let text = summary(rerun.as_ref().unwrap());
    assert!(text.contains("0 stored, 6 skipped"), "{text}");
    assert_eq!(read, 5 * PROBE_BYTES);
}

#[test]
fn an_interrupted_warm_resumes_without_redoing_stored_objects() {
    let env = env();
    let dir = env.scratch("warm-resume");
    let (count, size) = (12, 3 * 1024 * 1024);
    for i in 0..count {
        put_object(
            "warm-resume",
            &format!("resume/{i:02}"),
            &test_data(size, 1420 + i),
            &dir,
        );
    }
    // The killed run leaves the lease of the object it was hashing: the rerun takes it over
    // once it is this old.
    let config = warm_config(&dir, "resume/", "3s");
    let mut child = warm(&config, &["s3://warm-resume/resume/", "--concurrency", "1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Stop it once it has read a quarter of the objects (SeaweedFS's own byte counter).
    let start = bucket_bytes_sent("warm-resume");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while bucket_bytes_sent("warm-resume") - start < 3 * size as u64 {
        assert!(std::time::Instant::now() < deadline, "warm read nothing");
        assert!(
            child.try_wait().unwrap().is_none(),
            "warm ended before it was stopped"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // SIGKILL: no chance to finish anything cleanly.
    child.kill().unwrap();
    child.wait().unwrap();
    let before = stored("resume/");
    assert!(before < count as usize, "stopped halfway: {before}");
    let leases = s3client(
        &env.backend_url(),
        ADMIN,
        &["list", "store", "resume/.leases/"],
    );
    // A lease left behind matters only for an object not stored yet: killed between writing
    // an entry and deleting its lease, the run leaves a lease nobody will wait on.
    let entries = s3client(
        &env.backend_url(),
        ADMIN,
        &["list", "store", "resume/warm-resume/"],
    );
    let digest =
        |k: &serde_json::Value| k.as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let stored_digests: Vec<String> = entries["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(digest)
        .collect();
    let left_a_lease = leases["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| !stored_digests.contains(&digest(k)));

    let mut out = None;
    let read = read_by("warm-resume", || {
        out = Some(
            warm(&config, &["s3://warm-resume/resume/"])
                .output()
                .unwrap(),
        )
    });
    let out = out.unwrap();
    let text = summary(&out);
    assert!(out.status.success(), "{text}");
    let todo = count as usize - before;
    assert!(
        text.starts_with(&format!(
            "warm: {count} objects listed: {todo} stored, {before} skipped"
        )),
        "{before} were stored before: {text}"
    );
    assert_eq!(
        read,
        (todo * size) as u64 + count * PROBE_BYTES,
        "only the missing objects were read"
    );
    assert_eq!(stored("resume/"), count as usize);
    if left_a_lease {
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("took over a lease"), "{log}");
    }
}

/// `--directory`: the prefix's one directory torrent is stored, under the identity a
/// caller's request computes, so a replica serves it reading only its READ checks, and
/// its bytes are those a sidecar without the store generates.
#[test]
fn a_warmed_directory_is_served_by_a_replica_without_reading() {
    let env = env();
    let dir = env.scratch("warm-directory");
    let files = [("a.bin", 300_001usize), ("b/c.bin", 1024 * 1024), ("d", 5)];
    for (i, (name, size)) in files.iter().enumerate() {
        put_object(
            "dirs-store",
            &format!("warmed/{name}"),
            &test_data(*size, 1450 + i as u64),
            &dir,
        );
    }
    let config = warm_config(&dir, "warm-dir/", "30s");
    let out = warm(&config, &["s3://dirs-store/warmed/", "--directory"])
        .output()
        .unwrap();
    let text = summary(&out);
    assert!(out.status.success(), "{text}");
    let total: usize = files.iter().map(|(_, n)| n).sum();
    assert_eq!(
        text.trim(),
        format!("warm: directory s3://dirs-store/warmed/: stored, {total} bytes hashed")
    );
    assert_eq!(stored("warm-dir/"), 1);

    let b = replica("warm-dir-replica", "store", "warm-dir/")
        .set("store.min_bytes", 0)
        .start();
    let target = "/dirs-store/?torrent&prefix=warmed/";
    let mut served = Vec::new();
    let read = read_by("dirs-store", || {
        let r = request(b.port, "GET", target, &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        served = r.body;
    });
    assert_eq!(
        read,
        files.len() as u64 * PROBE_BYTES,
        "only the READ checks"
    );
    let fresh = sidecar("warm-dir-fresh").start();
    let generated = request(fresh.port, "GET", target, &[]);
    assert_eq!(generated.status, 200);
    assert_eq!(
        served, generated.body,
        "the stored torrent is the one a generation makes"
    );

    let rerun = warm(&config, &["s3://dirs-store/warmed/", "--directory"])
        .output()
        .unwrap();
    let text = summary(&rerun);
    assert!(
        rerun.status.success() && text.contains("already stored"),
        "{text}"
    );
    // Nothing under the prefix: a clear failure, exit 1.
    let none = warm(&config, &["s3://dirs-store/nothing/", "--directory"])
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1), "{}", summary(&none));
}
