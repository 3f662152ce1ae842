//! `?torrent` for objects of every shape, checked piece by piece by libtorrent.

use std::path::Path;
use std::process::Command;

use s3torrent::s3::uri::encode_path;
use serde_json::Value;

use crate::harness::*;

/// Fetches `?torrent` with curl and checks it against `data` with libtorrent: anonymously,
/// or signed by curl as `READER` where the backend serves no one unsigned (Garage).
fn curl_torrent(
    env: &Env,
    port: u16,
    bucket: &str,
    key: &str,
    data: &[u8],
    dir: &Path,
) -> (Value, Vec<u8>) {
    let torrent = dir.join(format!("{}.torrent", data.len()));
    // curl 7.88 signs the query as written, not in SigV4's canonical form (`torrent=`); so
    // signed, it is written canonically (one of the spellings the sidecar accepts).
    let query = match env.backend.serves_anonymous_reads() {
        true => "torrent",
        false => "torrent=",
    };
    let url = format!(
        "http://127.0.0.1:{port}/{bucket}/{}?{query}",
        encode_path(key)
    );
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--fail-with-body", "-o"]).arg(&torrent);
    if !env.backend.serves_anonymous_reads() {
        curl.arg("--aws-sigv4")
            .arg(format!("aws:amz:{}:s3", env.region))
            .arg("--user")
            .arg(format!("{}:{}", READER.0, READER.1))
            // As S3 does, the sidecar requires it of SigV4; curl does not send it unasked.
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]);
    }
    let out = curl.arg(&url).output().expect("curl");
    assert!(
        out.status.success(),
        "curl {url}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&std::fs::read(&torrent).unwrap_or_default())
    );
    (
        verify(&torrent, data, dir),
        std::fs::read(&torrent).unwrap(),
    )
}

fn verify(torrent: &Path, data: &[u8], dir: &Path) -> Value {
    let data_file = dir.join(format!("data-{}", data.len()));
    std::fs::write(&data_file, data).unwrap();
    let check = check_torrent(torrent, &data_file);
    assert_eq!(check["bad_pieces"], serde_json::json!([]), "{check}");
    assert_eq!(check["length"].as_u64(), Some(data.len() as u64), "{check}");
    assert_eq!(check["files"], 1, "{check}");
    check
}

fn piece_boundaries_one_byte_one_piece_and_one_more(env: &Env) {
    let dir = env.scratch("boundaries");
    // Objects this small get 16 KiB pieces.
    for (size, pieces) in [(1usize, 1u64), (16_384, 1), (16_385, 2)] {
        let data = test_data(size, size as u64);
        let key = format!("boundaries/{size}.bin");
        env.put_object("public", &key, &data, &dir);
        let (check, _) = curl_torrent(env, env.port, "public", &key, &data, &dir);
        assert_eq!(check["pieces"].as_u64(), Some(pieces), "{check}");
        assert_eq!(check["piece_length"], 16_384);
        assert_eq!(check["name"], format!("{size}.bin"));
    }
}

fn multipart_object_via_boto3_as_a_reader(env: &Env) {
    let dir = env.scratch("multipart");
    let data = test_data(20 * 1024 * 1024 + 17, 20);
    let file = dir.join("big.bin");
    std::fs::write(&file, &data).unwrap();
    let put = s3client(
        &env.backend_url(),
        ADMIN,
        &[
            "put-multipart",
            "private",
            "mp/big.bin",
            file.to_str().unwrap(),
        ],
    );
    let etag = put["etag"].as_str().unwrap();
    assert!(etag.contains('-'), "multipart ETag expected, got {etag}");

    let torrent = dir.join("big.torrent");
    let out = s3client(
        &env.sidecar_url(),
        READER,
        &[
            "torrent",
            "private",
            "mp/big.bin",
            torrent.to_str().unwrap(),
        ],
    );
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["headers"]["content-type"], "application/x-bittorrent");
    let check = verify(&torrent, &data, &dir);
    assert_eq!(
        check["piece_length"],
        64 * 1024,
        "auto piece length for 20 MiB"
    );
    assert_eq!(check["pieces"], 321);
}

fn versioned_object_by_version_id(env: &Env) {
    let dir = env.scratch("versioned");
    if !env.backend.keeps_versions() {
        return a_version_asked_of_a_backend_without_versions(env, &dir);
    }
    let v1_data = test_data(40_000, 1);
    let v2_data = test_data(50_000, 2);
    let v1 = env.put_object("versioned", "doc.bin", &v1_data, &dir);
    env.put_object("versioned", "doc.bin", &v2_data, &dir);
    let v1_id = v1["version_id"]
        .as_str()
        .expect("backend returned a version id");

    let target = format!("/versioned/doc.bin?versionId={v1_id}&torrent");
    let r = request(env.port, "GET", &target, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let t = dir.join("v1.torrent");
    std::fs::write(&t, &r.body).unwrap();
    verify(&t, &v1_data, &dir);

    // Without versionId: the current version.
    let (_, current) = curl_torrent(env, env.port, "versioned", "doc.bin", &v2_data, &dir);
    assert_ne!(current, r.body);
}

/// Garage keeps no versions (`PutBucketVersioning` is 501) and ignores `versionId`, serving
/// the current object without a word about versions. A torrent made from that would be
/// labelled with a version it never described: the sidecar says it cannot, and the plain
/// torrent still works.
fn a_version_asked_of_a_backend_without_versions(env: &Env, dir: &Path) {
    let data = test_data(40_000, 1);
    env.put_object("versioned", "doc.bin", &data, dir);
    let r = env.public_request(env.port, "GET", "/versioned/doc.bin?versionId=v1&torrent");
    assert_eq!(r.status, 501, "{}", r.text());
    assert_eq!(r.s3_code().as_deref(), Some("NotImplemented"));
    assert!(r.text().contains("versionId"), "{}", r.text());
    let (check, _) = curl_torrent(env, env.port, "versioned", "doc.bin", &data, dir);
    assert_eq!(check["length"], 40_000);
}

fn awkward_keys_spaces_utf8_plus_percent_slashes(env: &Env) {
    let dir = env.scratch("keys");
    let keys = [
        "keys/with space.bin",
        "keys/ünïcødé/日本語.bin",
        "keys/a+b.bin",
        "keys/100%.bin",
        "keys/deep/er/still/x.bin",
        "keys/tilde~(paren)!'*.bin",
    ];
    for (i, key) in keys.iter().enumerate() {
        let data = test_data(20_000 + i, 100 + i as u64);
        env.put_object("public", key, &data, &dir);
        let (check, _) = curl_torrent(env, env.port, "public", key, &data, &dir);
        // `*` cannot be in a Windows file name: it becomes `_` (see names_are_safe_…).
        let basename = key.rsplit('/').next().unwrap().replace('*', "_");
        assert_eq!(check["name"], basename, "{key}");
    }
    // `%2F` in the path is a slash in the key.
    let data = test_data(1234, 77);
    env.put_object("public", "keys/enc/slash.bin", &data, &dir);
    let target = "/public/keys%2Fenc%2Fslash.bin?torrent";
    let r = match env.backend.serves_anonymous_reads() {
        true => request(env.port, "GET", target, &[]),
        // Signed, the path's canonical form is the key's (`/`, as Garage computes it too):
        // signed as `%2F`, both refuse the signature.
        false => {
            let host = format!("127.0.0.1:{}", env.port);
            let now = std::time::SystemTime::now();
            let signed_for = "/public/keys/enc/slash.bin?torrent";
            let h = signed_headers(READER, "GET", &host, signed_for, None, now);
            let refs = header_refs(&h);
            request(env.port, "GET", target, &refs)
        }
    };
    assert_eq!(r.status, 200, "{}", r.text());
}

fn overwrite_gives_a_torrent_of_the_new_bytes(env: &Env) {
    let dir = env.scratch("overwrite");
    let first = test_data(30_000, 5);
    let second = test_data(30_000, 6);
    env.put_object("public", "over/write.bin", &first, &dir);
    let (_, t1) = curl_torrent(env, env.port, "public", "over/write.bin", &first, &dir);
    env.put_object("public", "over/write.bin", &second, &dir);
    let (_, t2) = curl_torrent(env, env.port, "public", "over/write.bin", &second, &dir);
    assert_ne!(t1, t2, "a cached torrent of the old bytes was served");
}

fn success_headers_head_and_conditional_get(env: &Env) {
    let dir = env.scratch("headers");
    let data = test_data(70_000, 9);
    env.put_object("public", "hdr/ü file.iso", &data, &dir);
    let target = "/public/hdr/%C3%BC%20file.iso?torrent";
    let get = env.public_request(env.port, "GET", target);
    assert_eq!(get.status, 200);
    assert_eq!(get.header("content-type"), Some("application/x-bittorrent"));
    assert_eq!(
        get.header("content-length"),
        Some(get.body.len().to_string().as_str())
    );
    assert_eq!(
        get.header("content-disposition"),
        Some("attachment; filename=\"_ file.iso.torrent\"; filename*=UTF-8''%C3%BC%20file.iso.torrent")
    );
    let etag = get.header("etag").expect("etag").to_string();
    assert!(get.header("last-modified").is_some());
    let id = get.header("x-amz-request-id").expect("request id");
    assert_eq!(id.len(), 16);

    let head = env.public_request(env.port, "HEAD", target);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    for h in [
        "content-type",
        "content-length",
        "content-disposition",
        "etag",
        "last-modified",
    ] {
        assert_eq!(head.header(h), get.header(h), "{h}");
    }
    assert_ne!(
        head.header("x-amz-request-id"),
        Some(id),
        "request ids are per request"
    );

    let cached = env.public_request_with(env.port, "GET", target, &[("If-None-Match", &etag)]);
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    assert_eq!(cached.header("etag"), Some(etag.as_str()));
    let other = env.public_request_with(env.port, "GET", target, &[("If-None-Match", "\"other\"")]);
    assert_eq!(other.status, 200);
    assert_eq!(other.body, get.body);
}

fn virtual_hosted_style_matches_path_style(env: &Env) {
    let dir = env.scratch("vhost");
    let data = test_data(25_000, 11);
    env.put_object("public", "vh/obj.bin", &data, &dir);
    let path_style = env.public_request(env.port, "GET", "/public/vh/obj.bin?torrent");
    let host = format!("public.{DOMAIN}:{}", env.port);
    let vhost = env.public_request_with(env.port, "GET", "/vh/obj.bin?torrent", &[("Host", &host)]);
    assert_eq!(path_style.status, 200);
    assert_eq!(vhost.status, 200, "{}", vhost.text());
    assert_eq!(vhost.body, path_style.body);
    let head = env.public_request_with(env.port, "HEAD", "/vh/obj.bin?torrent", &[("Host", &host)]);
    assert_eq!(head.status, 200);
    // Same subresource in the other accepted spellings.
    for q in ["torrent=", "x=1&torrent"] {
        let r = env.public_request(env.port, "GET", &format!("/public/vh/obj.bin?{q}"));
        assert_eq!(r.body, path_style.body, "{q}");
    }
}

#[test]
fn aws_cli_get_object_torrent_and_determinism_across_replicas() {
    let env = env();
    let dir = env.scratch("awscli");
    let data = test_data(100_000, 12);
    put_object("public", "cli/file.bin", &data, &dir);
    let out_file = dir.join("cli.torrent");
    let out = out_file.to_str().unwrap();
    aws_cli(
        &env.sidecar_url(),
        READER,
        &dir,
        &[
            "s3api",
            "get-object-torrent",
            "--bucket",
            "public",
            "--key",
            "cli/file.bin",
            out,
        ],
    );
    verify(&out_file, &data, &dir);

    // A second sidecar (another replica, empty cache) produces the same bytes.
    let other = sidecar("replica").start().port;
    let (_, anon) = curl_torrent(env, other, "public", "cli/file.bin", &data, &dir);
    assert_eq!(std::fs::read(&out_file).unwrap(), anon);
}

#[test]
fn request_payer_header_is_accepted() {
    let env = env();
    let dir = env.scratch("payer");
    let data = test_data(10_000, 13);
    put_object("private", "payer/x.bin", &data, &dir);
    let t = dir.join("p.torrent");
    let out = s3client(
        &env.sidecar_url(),
        READER,
        &[
            "torrent",
            "private",
            "payer/x.bin",
            t.to_str().unwrap(),
            "RequestPayer=requester",
        ],
    );
    assert_eq!(out["status"], 200, "{out}");
    verify(&t, &data, &dir);
}

#[test]
fn longest_key_s3_allows() {
    let env = env();
    let dir = env.scratch("longkey");
    // 1024 bytes: five 200-byte segments (backends cap a segment at 255) and a tail.
    let key = format!("{}/{}", vec!["s".repeat(200); 5].join("/"), "e".repeat(19));
    assert_eq!(key.len(), 1024);
    let data = test_data(3000, 14);
    put_object("public", &key, &data, &dir);
    let (check, _) = curl_torrent(env, env.port, "public", &key, &data, &dir);
    assert_eq!(check["name"], "e".repeat(19));
}

#[test]
fn names_are_safe_to_create_on_every_os() {
    let env = env();
    let dir = env.scratch("safe-names");
    let cases = [
        ("names/CON.txt", "_CON.txt"),
        ("names/a:b*c?d|e<f>g\"h\\i.bin", "a_b_c_d_e_f_g_h_i.bin"),
        ("names/trailing. ", "trailing__"),
        ("names/ctl\u{1}\u{7f}.bin", "ctl__.bin"),
    ];
    for (i, (key, name)) in cases.iter().enumerate() {
        let data = test_data(3000 + i, 60 + i as u64);
        put_object("public", key, &data, &dir);
        let (check, _) = curl_torrent(env, env.port, "public", key, &data, &dir);
        assert_eq!(check["name"], *name, "{key:?}");
        let target = format!("/public/{}?torrent", encode_path(key));
        let r = request(env.port, "HEAD", &target, &[]);
        let disposition = r.header("content-disposition").unwrap();
        assert!(
            disposition.contains(&format!("filename=\"{name}.torrent\"")),
            "{disposition}"
        );
        let link = r.header("link").unwrap();
        assert!(
            link.contains(&format!("&dn={}", encode_path(name).replace('/', "%2F"))),
            "{link}"
        );
    }
}

crate::on_every_backend!(
    overwrite_gives_a_torrent_of_the_new_bytes,
    piece_boundaries_one_byte_one_piece_and_one_more,
    multipart_object_via_boto3_as_a_reader,
    versioned_object_by_version_id,
    awkward_keys_spaces_utf8_plus_percent_slashes,
    success_headers_head_and_conditional_get,
    virtual_hosted_style_matches_path_style,
);
