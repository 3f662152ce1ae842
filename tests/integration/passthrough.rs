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
