//! Directory torrents (`?torrent&prefix=`) against a real backend and real clients: every
//! file byte-identical from the web seed, and the refusals a caller can meet.

use crate::harness::*;

/// Uploads `files` (paths under `prefix`, sizes) and a folder marker to `bucket`, and
/// fetches the prefix's torrent anonymously from `port`.
fn directory_fixture(port: u16, bucket: &str, prefix: &str, files: &[(&str, usize)]) -> Fixture {
    let test = prefix.trim_end_matches('/').replace('/', "-");
    let dir = env().scratch(&format!("dir-{test}"));
    let mut tree = Vec::new();
    for (i, (path, size)) in files.iter().enumerate() {
        let data = test_data(*size, 7000 + i as u64);
        put_object(bucket, &format!("{prefix}{path}"), &data, &dir);
        tree.push((path.to_string(), data));
    }
    put_object(bucket, &format!("{prefix}sub/"), b"", &dir);
    let target = format!(
        "/{bucket}/?torrent&prefix={}",
        s3torrent::s3::uri::encode(prefix)
    );
    let r = request(port, "GET", &target, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-bittorrent"));
    let torrent = dir.join("dir.torrent");
    std::fs::write(&torrent, &r.body).unwrap();
    let name = prefix
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    Fixture {
        dir,
        data: Vec::new(),
        torrent,
        name,
        tree,
    }
}

const FILES: [(&str, usize); 5] = [
    ("a.bin", 300_001),
    ("sub/b c.bin", 70_000),
    ("sub/deeper/ü.bin", 1_048_576),
    ("sub/z-last.bin", 5),
    ("tiny.txt", 17),
];

#[test]
fn every_client_downloads_a_directory_from_the_web_seed() {
    let s = sidecar("dir-ws").webseeds("public", "v1").start();
    let f = directory_fixture(s.port, "dirs", "sets/ws/", &FILES);
    let v = s3torrent::torrent::bencode::decode(&std::fs::read(&f.torrent).unwrap()).unwrap();
    let files = v.get("info").unwrap().get("files").unwrap();
    assert!(matches!(files, s3torrent::torrent::bencode::Value::List(l) if l.len() == FILES.len()));
    libtorrent_gets(f.torrent.to_str().unwrap(), &f, "lt");
    aria2c_gets(&f.torrent, &f, "aria2");
    qbittorrent_downloads(&f);
    transmission_downloads(&f);
}

#[test]
fn libtorrent_downloads_hybrid_and_v2_directories_from_the_web_seed() {
    for format in ["hybrid", "v2"] {
        let s = sidecar(&format!("dir-{format}"))
            .webseeds("public", format)
            .start();
        let f = directory_fixture(s.port, "dirs", &format!("sets/{format}/"), &FILES);
        libtorrent_gets(f.torrent.to_str().unwrap(), &f, "lt");
    }
}

#[test]
fn bad_paths_limits_and_refusals_get_clear_answers() {
    let s = sidecar("dir-refusals").set("torrent.max_files", 3).start();
    let dir = env().scratch("dir-refusals");
    let get = |target: &str| request(s.port, "GET", target, &[]);
    put_object("dirs", "bad/a:b", b"1", &dir);
    put_object("dirs", "bad/a_b", b"2", &dir);
    let r = get("/dirs/?torrent&prefix=bad/");
    assert_eq!(
        (r.status, r.s3_code().as_deref()),
        (400, Some("InvalidRequest"))
    );
    assert!(r.text().contains("bad/a:b"), "{}", r.text());
    for i in 0..4 {
        put_object("dirs", &format!("many/{i}"), b"x", &dir);
    }
    let r = get("/dirs/?torrent&prefix=many");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("torrent.max_files"), "{}", r.text());
    let r = get("/dirs/?torrent&prefix=nothing-here/");
    assert_eq!((r.status, r.s3_code().as_deref()), (404, Some("NoSuchKey")));
    // Anonymous callers may not list `private`: the backend's refusal.
    let r = get("/private/?torrent&prefix=x/");
    assert_eq!(r.status, 403, "{}", r.text());
    let head = request(s.port, "HEAD", "/dirs/?torrent&prefix=many", &[]);
    assert_eq!(head.status, 400);
}
