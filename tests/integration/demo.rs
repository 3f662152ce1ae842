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
             secret_access_key = \"{sk}\"\n[demo]\nenabled = true\nroot = \"{root}\"\n\
             [torrent]\npiece_length = 1048576\n",
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

/// The demo backend does not check the ETags a completion lists: a client that replaced part
/// 1 around the tap and then lists the old part's ETag gets the new bytes stored. The torrent
/// must describe those, not the hashes kept for the old part.
#[test]
fn a_completion_listing_a_replaced_parts_old_etag_gets_a_torrent_of_what_is_stored() {
    let dir = env().scratch("demo-replaced");
    let port = demo_sidecar(&dir);
    let url = format!("http://127.0.0.1:{port}");
    assert!(s3client(&url, DEMO, &["mkbucket", "parts"])
        .get("error")
        .is_none());
    let mib = 1024 * 1024;
    let mut paths = Vec::new();
    for (name, size, seed) in [
        ("a", 5 * mib, 1530),
        ("b", 5 * mib, 1531),
        ("tail", mib + 3, 1532),
    ] {
        let f = dir.join(name);
        std::fs::write(&f, test_data(size, seed)).unwrap();
        paths.push(f.to_str().unwrap().to_string());
    }
    let args = [
        "multipart-replaced",
        "parts",
        "replaced.bin",
        &paths[0],
        &paths[1],
        &paths[2],
        "stale",
    ];
    let out = s3client(&url, DEMO, &args);
    assert!(
        out.get("etag").is_some(),
        "the demo backend takes the list: {out}"
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let held = dir.join("held");
    let got = s3client(
        &url,
        DEMO,
        &["get", "parts", "replaced.bin", held.to_str().unwrap()],
    );
    assert!(got.get("error").is_none(), "{got}");
    let mut want = test_data(5 * mib, 1531);
    want.extend(test_data(mib + 3, 1532));
    assert!(
        std::fs::read(&held).unwrap() == want,
        "the backend holds part B"
    );
    let t = dir.join("replaced.torrent");
    let r = s3client(
        &url,
        DEMO,
        &["torrent", "parts", "replaced.bin", t.to_str().unwrap()],
    );
    assert_eq!(r["status"], 200, "{r}");
    let check = check_torrent(&t, &held);
    assert_eq!(check["bad_pieces"], serde_json::json!([]), "{check}");
}
