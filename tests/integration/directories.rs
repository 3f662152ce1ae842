//! Directory torrents (`?torrent&prefix=`) against a real backend and real clients: every
//! file byte-identical from the web seed, and the refusals a caller can meet.

use s3torrent::torrent::bencode::{self, Value};
use s3torrent::torrent::Info;

use crate::harness::*;
use crate::seeder::{metric, seeding_sidecar_with};
use crate::store::replica;

/// Uploads `files` (paths under `prefix`, sizes) and a folder marker to `bucket`, and
/// fetches the prefix's torrent anonymously from `port`.
fn directory_fixture(port: u16, bucket: &str, prefix: &str, files: &[(&str, usize)]) -> Fixture {
    let test = prefix.trim_end_matches('/').replace('/', "-");
    let dir = env().scratch(&format!("dir-{test}"));
    let mut tree = Vec::new();
    for (i, (path, size)) in files.iter().enumerate() {
        let data = test_data(*size, 7000 + i as u64);
        put_object(bucket, &format!("{prefix}{path}"), &data, &dir);
        // Where clients save it: every segment made safe, as the sidecar names it.
        let safe: Vec<String> = path.split('/').map(Info::safe_file_name).collect();
        tree.push((safe.join("/"), data));
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
    let name = Info::name_for_key(bucket, prefix);
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
    let v = bencode::decode(&std::fs::read(&f.torrent).unwrap()).unwrap();
    let files = v.get("info").unwrap().get("files").unwrap();
    assert!(matches!(files, Value::List(l) if l.len() == FILES.len()));
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

/// The torrent's one web seed.
fn web_seed(torrent: &std::path::Path) -> String {
    let v = bencode::decode(&std::fs::read(torrent).unwrap()).unwrap();
    match v.get("url-list") {
        Some(Value::List(urls)) if urls.len() == 1 => {
            String::from_utf8(urls[0].as_bytes().unwrap().to_vec()).unwrap()
        }
        other => panic!("one web seed expected: {other:?}"),
    }
}

/// Keys that `{name}/{path}` cannot spell once made safe: the web seed is the directory's
/// own route, which finds each file by its path — on the replica that made the torrent, and
/// on another one sharing the store, which never saw the listing.
#[test]
fn a_renamed_directory_is_served_by_its_own_web_seed_route() {
    const RENAMED: [(&str, usize); 4] = [
        ("a?.bin", 300_001),
        ("sub/CON.txt", 70_000),
        ("sub/x*y z.bin", 1_048_576),
        ("tiny:.txt", 17),
    ];
    let (a, b) = (
        replica("dir-ren-a", "store", "dir-ren/")
            .webseeds("public", "v1")
            .start(),
        replica("dir-ren-b", "store", "dir-ren/")
            .webseeds("public", "v1")
            .start(),
    );
    let f = directory_fixture(a.port, "dirs-renamed", "sets/re:named/", &RENAMED);
    assert_eq!(f.name, "re_named");
    let url = web_seed(&f.torrent);
    let route = url
        .split_once("/_s3torrent/")
        .map(|(_, r)| format!("/_s3torrent/{r}"))
        .unwrap();
    assert!(
        route.starts_with("/_s3torrent/webseed/_dir/dirs-renamed/"),
        "{url}"
    );
    libtorrent_gets(f.torrent.to_str().unwrap(), &f, "lt");
    aria2c_gets(&f.torrent, &f, "aria2");
    // Replica b: the store entry alone says which key `re_named/sub/x_y z.bin` is.
    let (path, data) = &f.tree[2];
    assert_eq!(path, "sub/x_y z.bin");
    let file = format!("{route}re_named/sub/x_y%20z.bin");
    let r = request(b.port, "GET", &file, &[("range", "bytes=1000-1999")]);
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(r.body, data[1000..2000]);
    // No such file, no such directory, a malformed identity: clear answers, nothing read.
    let other = format!("/_s3torrent/webseed/_dir/dirs-renamed/{}/", "0".repeat(64));
    for (target, status, code) in [
        (format!("{route}re_named/sub/nope"), 404, "NoSuchKey"),
        (format!("{route}re_named/sub"), 404, "NoSuchKey"),
        (format!("{route}other/sub/x_y%20z.bin"), 404, "NoSuchKey"),
        (format!("{other}re_named/a_.bin"), 404, "NoSuchKey"),
        (
            "/_s3torrent/webseed/_dir/dirs-renamed/abc/re_named/a_.bin".into(),
            400,
            "InvalidRequest",
        ),
        (format!("{route}re_named"), 400, "InvalidRequest"),
    ] {
        for port in [a.port, b.port] {
            let r = request(port, "GET", &target, &[]);
            assert_eq!(
                (r.status, r.s3_code().as_deref()),
                (status, Some(code)),
                "{target}"
            );
        }
    }
}

/// The seeder alone (no web seed): pieces that span objects are read one ranged read per
/// object segment, and both clients get every file.
#[test]
fn libtorrent_and_aria2c_download_a_directory_from_the_seeder_alone() {
    let s = seeding_sidecar_with("dir-seed", |b| b.set("seeder.objects", "all"));
    let f = directory_fixture(s.sidecar.port, "dirs-seed", "sets/seeded/", &FILES);
    let v = bencode::decode(&std::fs::read(&f.torrent).unwrap()).unwrap();
    assert!(v.get("url-list").is_none(), "no web seed");
    libtorrent_gets(f.torrent.to_str().unwrap(), &f, "lt");
    aria2c_gets(&f.torrent, &f, "aria2");
    let metrics = request(s.sidecar.admin_port, "GET", "/metrics", &[]).text();
    let uploaded = metric(&metrics, "s3torrent_seeder_uploaded_bytes_total");
    let total: usize = FILES.iter().map(|(_, n)| n).sum();
    assert!(
        uploaded >= 2 * total as u64,
        "both from the seeder: {uploaded}"
    );
}

/// `dir-torrent` as `creds`, from `env`'s shared sidecar.
fn directory_as(env: &Env, creds: (&str, &str), bucket: &str, prefix: &str) -> serde_json::Value {
    let out = env.scratch("dir-authz").join("signed.torrent");
    let path = out.to_str().unwrap();
    s3client(
        &env.sidecar_url(),
        creds,
        &["dir-torrent", bucket, prefix, path],
    )
}

fn torrent_files(bytes: &[u8]) -> usize {
    let v = bencode::decode(bytes).unwrap();
    match v.get("info").unwrap().get("files") {
        Some(Value::List(l)) => l.len(),
        other => panic!("no files: {other:?}"),
    }
}

/// Who may have a directory, asked as the caller: listing and READ of every object,
/// signed with their key (SigV4 from botocore) or anonymous; every form of the request;
/// and any change under the prefix is another torrent.
fn callers_forms_and_changes_under_a_prefix(env: &Env) {
    let dir = env.scratch("dir-authz");
    for (i, name) in ["a.bin", "b/c.bin", "d.bin"].iter().enumerate() {
        let data = test_data(40_000 + i, 7100 + i as u64);
        env.put_object("private", &format!("dirauth/{name}"), &data, &dir);
        env.put_object("dirs", &format!("dirforms/{name}"), &data, &dir);
    }
    let ok = directory_as(env, READER, "private", "dirauth/");
    assert_eq!(ok["status"], 200, "{ok}");
    let signed = std::fs::read(dir.join("signed.torrent")).unwrap();
    assert_eq!(torrent_files(&signed), 3);
    // NOREAD may list the bucket, not read it: the backend's 403 for the first object.
    let denied = directory_as(env, NOREAD, "private", "dirauth/");
    let e = &denied["error"];
    assert_eq!(
        (e["status"].as_u64(), e["code"].as_str()),
        (Some(403), Some("AccessDenied")),
        "{denied}"
    );
    // Where NOREAD may list (SeaweedFS's `List` action), the READ check refuses, naming the
    // first object; where it may not (Ceph: not the bucket's owner), the listing does.
    let listed = s3client(&env.backend_url(), NOREAD, &["list", "private", "dirauth/"]);
    if listed.get("error").is_none() {
        let message = e["message"].as_str().unwrap();
        assert!(message.contains("dirauth/a.bin"), "names the key: {denied}");
    }
    assert!(
        env.backend != Backend::SeaweedFs || listed.get("error").is_none(),
        "{listed}"
    );
    let anonymous = request(env.port, "GET", "/private/?torrent&prefix=dirauth/", &[]);
    assert_eq!(anonymous.status, 403, "{}", anonymous.text());

    // The same torrent however it is asked for.
    let path_style = env.public_request(env.port, "GET", "/dirs/?torrent&prefix=dirforms/");
    assert_eq!(path_style.status, 200, "{}", path_style.text());
    let etag = path_style.header("etag").unwrap().to_string();
    let host = format!("dirs.{DOMAIN}:{}", env.port);
    for (target, host) in [
        ("/dirs?torrent&prefix=dirforms/", None),
        ("/dirs/?prefix=dirforms/&torrent", None),
        ("/?torrent&prefix=dirforms/", Some(host.as_str())),
    ] {
        let headers: Vec<(&str, &str)> = host.iter().map(|h| ("host", *h)).collect();
        let r = env.public_request_with(env.port, "GET", target, &headers);
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        assert_eq!(r.body, path_style.body, "{target}");
        let head = env.public_request_with(env.port, "HEAD", target, &headers);
        assert_eq!(
            (head.status, head.header("etag")),
            (200, Some(etag.as_str())),
            "HEAD {target}"
        );
    }
    let cached = env.public_request_with(
        env.port,
        "GET",
        "/dirs/?torrent&prefix=dirforms/",
        &[("if-none-match", &etag)],
    );
    assert_eq!(cached.status, 304);
    // Overwritten with as many bytes: another torrent, never the old one.
    env.put_object("dirs", "dirforms/b/c.bin", &test_data(40_001, 7199), &dir);
    let after = env.public_request(env.port, "GET", "/dirs/?torrent&prefix=dirforms/");
    assert_eq!(after.status, 200);
    assert_ne!(after.header("etag").unwrap(), etag);
    assert_ne!(after.body, path_style.body);
    // A new object under the prefix: one more file.
    env.put_object("dirs", "dirforms/e.bin", b"new", &dir);
    let grown = env.public_request(env.port, "GET", "/dirs/?torrent&prefix=dirforms/");
    assert_eq!(torrent_files(&grown.body), 4);
}

crate::on_every_backend!(callers_forms_and_changes_under_a_prefix);

/// A directory asked again by the same caller within `cache.directory_checks_window` costs
/// the backend its listing only, not a READ check per object (a 10,000-object directory
/// cost 10,009 backend requests per request before); past the window, or once an object
/// changes, every object is checked again.
#[test]
fn a_repeated_directory_request_costs_only_its_listing() {
    let s = sidecar("dirs-checks")
        .set("cache.directory_checks_window", 2)
        .start();
    let dir = env().scratch("dirs-checks");
    for i in 0..40 {
        put_object(
            "dirs-checks",
            &format!("d/{i:02}.bin"),
            &test_data(1000, 7300 + i),
            &dir,
        );
    }
    let get = || {
        let r = request(s.port, "GET", "/dirs-checks/?torrent&prefix=d/", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
    };
    let first = crate::store::read_by("dirs-checks", get);
    assert_eq!(
        first,
        40 * 1000 + 40 * PROBE_BYTES,
        "generated, every object checked"
    );
    let again = crate::store::read_by("dirs-checks", get);
    assert_eq!(again, 0, "within the window: the listing alone");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let later = crate::store::read_by("dirs-checks", get);
    assert_eq!(
        later,
        40 * PROBE_BYTES,
        "past the window: every object checked again"
    );
    put_object("dirs-checks", "d/07.bin", &test_data(1000, 7399), &dir);
    let changed = crate::store::read_by("dirs-checks", get);
    assert!(
        changed >= 40 * PROBE_BYTES,
        "a changed listing is checked anew: {changed}"
    );
}
