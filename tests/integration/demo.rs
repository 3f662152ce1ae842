//! The embedded demo backend (the default `cargo run`): keys never cross buckets.

use crate::harness::*;

const DEMO: (&str, &str) = ("demo-access-key", "demo-secret-key");

/// A sidecar with its embedded demo backend on a free port; returns the sidecar's port.
fn demo_sidecar(dir: &std::path::Path) -> u16 {
    let [port, admin, backend] = free_ports(3)[..] else {
        unreachable!()
    };
    let config = dir.join("demo.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [upstream]\nendpoint = \"http://127.0.0.1:{backend}\"\naccess_key_id = \"{ak}\"\n\
             secret_access_key = \"{sk}\"\n[[auth.credentials]]\naccess_key_id = \"{ak}\"\n\
             secret_access_key = \"{sk}\"\n[demo]\nenabled = true\nroot = \"{root}\"\n",
            ak = DEMO.0,
            sk = DEMO.1,
            root = dir.join("root").display()
        ),
    )
    .unwrap();
    start_sidecar(&config, &dir.join("sidecar.log"), port);
    wait_for_port(backend, "demo backend", &dir.join("sidecar.err"));
    port
}

#[test]
fn dot_dot_in_a_key_never_reaches_another_bucket() {
    let dir = env().scratch("demo-traversal");
    let port = demo_sidecar(&dir);
    let url = format!("http://127.0.0.1:{port}");
    assert!(s3client(&url, DEMO, &["mkbucket", "private"])
        .get("error")
        .is_none());
    let secret = dir.join("secret.txt");
    std::fs::write(&secret, "the secret").unwrap();
    let put = s3client(
        &url,
        DEMO,
        &["put", "private", "secret.txt", secret.to_str().unwrap()],
    );
    assert!(put.get("error").is_none(), "{put}");
    // The public sample is readable; the private bucket is not.
    assert_eq!(
        request(port, "GET", "/demo/sample/hello.bin?torrent", &[]).status,
        200
    );
    assert_eq!(request(port, "GET", "/private/secret.txt", &[]).status, 403);
    for path in [
        "/demo/../private/secret.txt",
        "/demo/%2E%2E/private/secret.txt",
        "/demo/..%2Fprivate%2Fsecret.txt",
        "/demo/./../private/secret.txt",
    ] {
        for target in [path.to_string(), format!("{path}?torrent")] {
            let r = request(port, "GET", &target, &[]);
            assert_ne!(r.status, 200, "{target}: {}", r.text());
            assert!(!r.text().contains("the secret"), "{target}");
            assert!(r.status < 500, "{target}: {} {}", r.status, r.text());
        }
    }
}
