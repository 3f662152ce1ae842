//! Running it in production: metrics after real traffic (checked by promtool and scraped by a
//! real Prometheus), graceful SIGTERM, and the deployment manifests against the binary.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// `name{labels} value` from Prometheus text, labels given as written by the encoder.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn metrics_move_with_traffic_and_pass_promtool() {
    let env = env();
    let dir = env.scratch("metrics");
    let data = test_data(300_000, 120);
    put_object("public", "metrics/m.bin", &data, &dir);
    let s = sidecar("metrics").start();
    let t = "/public/metrics/m.bin?torrent";
    assert_eq!(request(s.port, "GET", t, &[]).status, 200);
    assert_eq!(request(s.port, "GET", t, &[]).status, 200);
    assert_eq!(
        request(s.port, "GET", "/public/metrics/none?torrent", &[]).status,
        404
    );
    assert_eq!(
        request(s.port, "GET", "/public/metrics/m.bin", &[]).status,
        200
    );

    let text = request(s.admin_port, "GET", "/metrics", &[]).text();
    let torrent_2xx = r#"s3torrent_requests_total{method="GET",route="torrent",status="2xx"}"#;
    assert_eq!(sample(&text, torrent_2xx), 2.0);
    assert_eq!(
        sample(
            &text,
            r#"s3torrent_requests_total{method="GET",route="torrent",status="4xx"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"s3torrent_requests_total{method="GET",route="passthrough",status="2xx"}"#
        ),
        1.0
    );
    assert_eq!(sample(&text, "s3torrent_cache_hits_total"), 1.0);
    assert_eq!(sample(&text, "s3torrent_cache_misses_total"), 1.0);
    assert_eq!(sample(&text, "s3torrent_cache_entries"), 1.0);
    assert_eq!(
        sample(&text, r#"s3torrent_generations_total{result="ok"}"#),
        1.0
    );
    assert_eq!(
        sample(&text, "s3torrent_generation_hashed_bytes_total"),
        data.len() as f64
    );
    assert_eq!(
        sample(&text, r#"s3torrent_upstream_requests_total{kind="probe"}"#),
        3.0
    );
    assert_eq!(
        sample(&text, r#"s3torrent_upstream_requests_total{kind="fetch"}"#),
        1.0
    );
    assert!(
        sample(
            &text,
            r#"s3torrent_passthrough_body_bytes_total{direction="out"}"#
        ) >= data.len() as f64
    );
    assert_eq!(sample(&text, "s3torrent_generations_in_flight"), 0.0);
    assert!(
        !text.contains("metrics/m.bin") && !text.contains(READER.0),
        "no keys or access keys as labels"
    );

    let Ok(mut promtool) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("SKIPPED promtool check: promtool is not installed (apt-get install prometheus; .ci/run does)");
        return;
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_real_prometheus_scrapes_the_sidecar() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: the prometheus server is not installed (apt-get install prometheus; .ci/run does)");
        return;
    }
    let env = env();
    let dir = env.scratch("prometheus");
    let [web] = free_ports(1)[..] else {
        unreachable!()
    };
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: s3torrent\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            env.admin_port
        ),
    )
    .unwrap();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!(
        "--config.file={}",
        dir.join("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        dir.join("data").display()
    ))
    .arg(format!("--web.listen-address=127.0.0.1:{web}"))
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap());
    let mut child = spawn_guarded(cmd);
    wait_for_port(web, "prometheus", &dir.join("prometheus.log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = loop {
        let r = request(
            web,
            "GET",
            "/api/v1/query?query=s3torrent_cache_entries",
            &[],
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if v["data"]["result"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break v;
        }
        if Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let _ = child.kill();
    let _ = child.wait();
    let result = &found["data"]["result"][0];
    assert_eq!(result["metric"]["job"], "s3torrent", "{found}");
}

/// A backend whose object GET trickles 2 MiB over ~1.5 s: slow enough to SIGTERM mid-flight.
fn slow_backend() -> u16 {
    const LEN: usize = 2 * 1024 * 1024;
    fake_backend(|line, out| {
        if is_probe(line) {
            return out.write_all(&probe_answer("\"slow\"", LEN)).is_ok();
        }
        let head = format!("HTTP/1.1 200 OK\r\nETag: \"slow\"\r\nContent-Length: {LEN}\r\n\r\n");
        if out.write_all(head.as_bytes()).is_err() {
            return false;
        }
        if line.starts_with("GET") {
            for chunk in test_data(LEN, 7).chunks(LEN / 30) {
                std::thread::sleep(Duration::from_millis(50));
                if out.write_all(chunk).is_err() {
                    return false;
                }
            }
        }
        true
    })
}

#[test]
fn sigterm_lets_the_in_flight_torrent_finish_refuses_new_connections_and_exits_0() {
    let backend = slow_backend();
    let dir = env().scratch("sigterm");
    let builder = sidecar("sigterm").backend_port(backend);
    let port = builder.port();
    let config = dir.join("s3torrent.toml");
    std::fs::write(&config, builder.config_text()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3torrent"));
    cmd.arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sidecar.log")).unwrap());
    let mut child = spawn_guarded(cmd);
    wait_for_port(port, "s3torrent", &dir.join("sidecar.log"));

    let in_flight = std::thread::spawn(move || request(port, "GET", "/b/slow.bin?torrent", &[]));
    std::thread::sleep(Duration::from_millis(400));
    let sent = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "new connections are refused"
    );

    let r = in_flight.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let torrent = s3torrent::torrent::bencode::decode(&r.body).expect("a whole torrent");
    assert_eq!(
        torrent.get("info").unwrap().get("length").unwrap().as_int(),
        Some(2 * 1024 * 1024)
    );

    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(20),
            "did not exit after draining"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "exit code after SIGTERM");
}

#[test]
fn manifests_agree_with_the_binary() {
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/manifests.py"
        ))
        .arg(deploy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();

    // The ConfigMap's TOML is a valid configuration given the Secret's environment.
    let secret = m["secret"].as_object().unwrap().clone();
    let from_secret = |k: &str| secret.get(k).and_then(Value::as_str).map(str::to_string);
    let toml = m["config_toml"].as_str().unwrap();
    let config = s3torrent::config::Config::from_toml(toml, from_secret).unwrap();
    let file = env().scratch("manifests").join("s3torrent.toml");
    std::fs::write(&file, toml).unwrap();
    let mut check = Command::new(env!("CARGO_BIN_EXE_s3torrent"));
    check.arg("check-config").arg(&file).env_clear();
    for (k, v) in &secret {
        check.env(k, v.as_str().unwrap());
    }
    let checked = check.output().unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    // Every variable the config reads is set in the container from the Secret.
    let mut needed = vec![
        "S3TORRENT_UPSTREAM_ACCESS_KEY_ID",
        "S3TORRENT_UPSTREAM_SECRET_ACCESS_KEY",
    ];
    needed.extend(
        config
            .auth
            .credentials
            .iter()
            .filter_map(|c| c.secret_access_key_env.as_deref()),
    );
    for var in needed {
        let r = &m["env"][var];
        assert_eq!(r["name"], m["secret_name"], "{var}");
        assert!(secret.contains_key(r["key"].as_str().unwrap()), "{var}");
    }

    // The config file path the binary is given is where the ConfigMap is mounted.
    assert_eq!(m["config_volume_map"], m["config_map_name"]);
    let path = format!(
        "{}/{}",
        m["config_mount"].as_str().unwrap(),
        m["config_file"].as_str().unwrap()
    );
    assert_eq!(m["args"], serde_json::json!(["--config", path]));
    let docker_cmd = m["docker_cmd"][0].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(docker_cmd).unwrap(),
        m["args"]
    );

    // Ports: the binary's defaults (8080/9090), on all interfaces inside the pod.
    let defaults = s3torrent::config::Config::from_toml(
        "[upstream]\nendpoint = \"http://h:1\"\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n",
        |_| None,
    )
    .unwrap();
    for (name, listen, default) in [
        ("s3", config.server.listen, defaults.server.listen),
        ("admin", config.admin.listen, defaults.admin.listen),
    ] {
        assert_eq!(m["ports"][name], listen.port(), "{name}");
        assert_eq!(
            listen.port(),
            default.port(),
            "{name} keeps the binary's default port"
        );
        assert!(
            listen.ip().is_unspecified(),
            "{name} must listen beyond loopback in a pod"
        );
        assert!(m["docker_expose"][0]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|p| p == listen.port().to_string()));
    }
    assert_eq!(
        m["liveness"],
        serde_json::json!({"path": "/healthz", "port": "admin"})
    );
    assert_eq!(
        m["readiness"],
        serde_json::json!({"path": "/readyz", "port": "admin"})
    );
    assert_eq!(
        m["annotations"]["prometheus.io/port"],
        config.admin.listen.port().to_string()
    );
    assert_eq!(m["annotations"]["prometheus.io/path"], "/metrics");
    assert_eq!(m["podmonitor"][0]["port"], "admin");
    assert_eq!(m["podmonitor"][0]["path"], "/metrics");

    // Only the sidecar is exposed; MinIO binds the pod's loopback, which the config targets.
    assert_eq!(m["service_ports"].as_array().unwrap().len(), 1);
    assert_eq!(m["service_ports"][0]["targetPort"], "s3");
    let minio = m["minio_args"].as_array().unwrap();
    let address = minio
        .iter()
        .position(|a| a == "--address")
        .map(|i| minio[i + 1].as_str().unwrap());
    assert_eq!(address, Some(config.upstream.endpoint.address().as_str()));

    // Draining must end before Kubernetes' SIGKILL.
    assert!(config.server.grace_period.secs() < m["grace"].as_u64().unwrap());
    // Non-root, read-only root filesystem, resources set, locked build, two stages.
    assert_eq!(m["pod_security"]["runAsNonRoot"], true);
    for (name, sc) in m["container_security"].as_object().unwrap() {
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert!(
            m["resources"][name]["limits"]["memory"].is_string(),
            "{name}"
        );
    }
    assert!(m["docker_user"][0].as_str().unwrap().starts_with("65532"));
    assert!(m["docker_build"][0].as_str().unwrap().contains("--locked"));
    assert_eq!(m["docker_stages"], 2);
}

/// The access log counts a torrent response's bytes; a 502 caused by the sidecar's own key
/// being refused (an operator's mistake) is one WARN, however many requests it fails.
#[test]
fn access_log_bytes_and_one_warning_per_misconfiguration() {
    let env = env();
    let dir = env.scratch("access-log");
    put_object("public", "log/obj.bin", &test_data(50_000, 77), &dir);
    let good = sidecar("access-log")
        .set("log.format", "json")
        .logging("info")
        .start();
    let r = request(good.port, "GET", "/public/log/obj.bin?torrent", &[]);
    assert_eq!(r.status, 200);
    let head = request(good.port, "HEAD", "/public/log/obj.bin?torrent", &[]);
    assert_eq!(head.status, 200);
    let lines = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&good.log)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &serde_json::Value| v["target"] == "s3torrent::access")
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while lines().len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let logged = lines();
    assert_eq!(logged[0]["route"], "torrent", "{logged:?}");
    assert_eq!(logged[0]["bytes_out"], r.body.len() as u64, "{logged:?}");
    assert_eq!(logged[1]["bytes_out"], 0, "HEAD sends no body: {logged:?}");

    // The sidecar's key may not read `public` (noread's): anonymous callers may, so the
    // READ check passes and the sidecar's own fetch is refused.
    let misconfigured = sidecar("wrong-key").upstream_credentials(NOREAD).start();
    for _ in 0..3 {
        let r = request(
            misconfigured.port,
            "GET",
            "/public/log/obj.bin?torrent",
            &[],
        );
        assert_eq!(r.status, 502, "{}", r.text());
        assert!(
            r.text().contains("check [upstream] credentials"),
            "{}",
            r.text()
        );
    }
    let log = std::fs::read_to_string(&misconfigured.log).unwrap();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("refused the sidecar's own read"))
        .collect();
    assert_eq!(warnings.len(), 1, "once per cause: {log}");
}
