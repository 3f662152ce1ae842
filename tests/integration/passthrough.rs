//! Everything that is not `?torrent` reaches the backend unchanged, signatures intact.

use crate::harness::*;

fn upload_and_download_through_the_sidecar_are_byte_identical(env: &Env) {
    let dir = env.scratch("pass");
    let data = test_data(3 * 1024 * 1024 + 5, 40);
    let src = dir.join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let put = s3client(
        &env.sidecar_url(),
        ADMIN,
        &["put", "private", "pass/a.bin", src.to_str().unwrap()],
    );
    assert!(put.get("error").is_none(), "{put}");
    let back = dir.join("back.bin");
    let get = s3client(
        &env.sidecar_url(),
        ADMIN,
        &["get", "private", "pass/a.bin", back.to_str().unwrap()],
    );
    assert_eq!(get["etag"], put["etag"]);
    assert_eq!(std::fs::read(&back).unwrap(), data);
    // Also as stored: read it straight from the backend.
    let direct = dir.join("direct.bin");
    s3client(
        &env.backend_url(),
        ADMIN,
        &["get", "private", "pass/a.bin", direct.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(&direct).unwrap(), data);
}

fn multipart_upload_through_the_sidecar(env: &Env) {
    let dir = env.scratch("pass-mp");
    let data = test_data(12 * 1024 * 1024 + 3, 41);
    let src = dir.join("mp.bin");
    std::fs::write(&src, &data).unwrap();
    let put = s3client(
        &env.sidecar_url(),
        ADMIN,
        &[
            "put-multipart",
            "private",
            "pass/mp.bin",
            src.to_str().unwrap(),
        ],
    );
    assert!(put["etag"].as_str().unwrap().contains('-'), "{put}");
    let back = dir.join("mp-back.bin");
    s3client(
        &env.sidecar_url(),
        ADMIN,
        &["get", "private", "pass/mp.bin", back.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(&back).unwrap(), data);
}

fn ranged_get_through_the_sidecar(env: &Env) {
    let dir = env.scratch("pass-range");
    let data = test_data(100_000, 42);
    env.put_object("private", "pass/range.bin", &data, &dir);
    let out = dir.join("range.bin");
    let r = s3client(
        &env.sidecar_url(),
        ADMIN,
        &[
            "get",
            "private",
            "pass/range.bin",
            out.to_str().unwrap(),
            "bytes=1000-1999",
        ],
    );
    assert_eq!(r["content_range"], "bytes 1000-1999/100000");
    assert_eq!(std::fs::read(&out).unwrap(), &data[1000..2000]);
}

fn backend_errors_pass_through_unchanged(env: &Env) {
    for target in [
        "/private/pass/missing.bin",
        "/no-such-bucket/x",
        "/private/pass/missing.bin?torrents",
    ] {
        let via = request(env.port, "GET", target, &[]);
        let direct = request(env.s3_port, "GET", target, &[]);
        assert_eq!(via.status, direct.status, "{target}");
        assert_eq!(via.s3_code(), direct.s3_code(), "{target}");
        assert_eq!(
            via.header("content-type"),
            direct.header("content-type"),
            "{target}"
        );
        assert!(via.status >= 400);
    }
}

fn aws_cli_copy_through_the_sidecar(env: &Env) {
    let dir = env.scratch("pass-cli");
    let data = test_data(6 * 1024 * 1024, 43);
    let src = dir.join("cli-src.bin");
    std::fs::write(&src, &data).unwrap();
    let aws = |args: &[&str]| {
        aws_cli(
            &env.sidecar_url(),
            ADMIN,
            &dir,
            &[&["s3"][..], args].concat(),
        )
    };
    aws(&["cp", src.to_str().unwrap(), "s3://private/pass/cli.bin"]);
    let back = dir.join("cli-back.bin");
    aws(&["cp", "s3://private/pass/cli.bin", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), data);
}

crate::on_every_backend!(
    upload_and_download_through_the_sidecar_are_byte_identical,
    multipart_upload_through_the_sidecar,
    ranged_get_through_the_sidecar,
    backend_errors_pass_through_unchanged,
    aws_cli_copy_through_the_sidecar,
);

/// One HTTP/1.1 response off `conn`: its status and body (by `Content-Length`).
fn read_response(conn: &mut std::io::BufReader<std::net::TcpStream>, what: &str) -> (u16, Vec<u8>) {
    use std::io::{BufRead, Read};
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = conn.read_line(&mut line).unwrap();
        assert!(n > 0, "{what}: closed before a whole answer; got: {head:?}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no Content-Length: {head}"));
    let mut body = vec![0; length];
    if let Err(e) = conn.read_exact(&mut body) {
        panic!("{what}: the body of {length} bytes was cut off: {e}");
    }
    (status, body)
}

/// libtorrent pipelines its web-seed requests: the next request arrives while the answer
/// before it is still streaming. The backend answers both in order, so the sidecar must
/// too, on the pass-through path and on the web-seed route; it used to cut the first
/// answer off ("Sent data after end of body") and close.
#[test]
fn pipelined_requests_are_answered_in_order() {
    use std::io::Write;
    let env = env();
    let dir = env.scratch("pass-pipeline");
    let data = test_data(24 * 1024 * 1024, 44);
    env.put_object("public", "pass/pipe.bin", &data, &dir);
    let s = SidecarBuilder::on(env, "pipeline")
        .webseeds("public", "v1")
        .start();
    let object = "/public/pass/pipe.bin";
    let webseed = "/_s3torrent/webseed/public/pass/pipe.bin";
    let cases = [
        ("backend", env.s3_port, object),
        ("pass-through", s.port, object),
        ("web seed", s.port, webseed),
    ];
    // The second request in the same write as the first, or while the first is streaming.
    for (what, port, target) in cases {
        for gap in [None, Some(std::time::Duration::from_millis(300))] {
            let what = &format!("{what}, second request after {gap:?}");
            let conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
            let get = |range: &str| {
                format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nRange: bytes={range}\r\n\r\n")
            };
            let first = get(&format!("0-{}", data.len() - 1));
            let second = get("100-199");
            let mut writer = conn.try_clone().unwrap();
            match gap {
                None => writer
                    .write_all(format!("{first}{second}").as_bytes())
                    .unwrap(),
                Some(gap) => {
                    writer.write_all(first.as_bytes()).unwrap();
                    // Unread, the first answer fills the socket buffers: the second request
                    // comes in while the sidecar is still pumping the first one's body.
                    std::thread::sleep(gap);
                    writer.write_all(second.as_bytes()).unwrap();
                }
            }
            let mut reader = std::io::BufReader::new(conn);
            let (status, body) = read_response(&mut reader, what);
            assert_eq!(status, 206, "{what}: first answer");
            assert!(body == data, "{what}: first body differs");
            let (status, body) = read_response(&mut reader, what);
            assert_eq!(status, 206, "{what}: second answer");
            assert_eq!(body, &data[100..200], "{what}: second body");
        }
    }
    // The sidecar's own answers too: two `?torrent` requests in one write, both answered.
    let conn = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let get = format!(
        "GET {object}?torrent HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        s.port
    );
    let mut writer = conn.try_clone().unwrap();
    writer.write_all(format!("{get}{get}").as_bytes()).unwrap();
    let mut reader = std::io::BufReader::new(conn);
    let (status, first) = read_response(&mut reader, "?torrent, first");
    assert_eq!(status, 200, "?torrent, first answer");
    let (status, second) = read_response(&mut reader, "?torrent, second");
    assert_eq!(status, 200, "?torrent, second answer");
    assert!(
        !first.is_empty() && first == second,
        "?torrent answers differ"
    );
}
