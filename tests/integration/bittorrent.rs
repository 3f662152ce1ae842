//! Real BitTorrent clients against torrents from the sidecar: web-seed-only downloads
//! (aria2c, transmission-cli, libtorrent), presigned web seeds, a corrupted backend copy,
//! and libtorrent peers finding each other through the built-in tracker. Loopback only,
//! DHT/LSD/PEX/UPnP/NAT-PMP off, every client bounded in time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use s3torrent::torrent::bencode::Value;

use crate::harness::*;

fn webseed_sidecar(name: &str, mode: &str) -> Sidecar {
    format_webseed_sidecar(name, mode, "v1")
}

/// A sidecar with web seeds in `mode`, making torrents of `format` (v1, hybrid, v2).
fn format_webseed_sidecar(name: &str, mode: &str, format: &str) -> Sidecar {
    webseed_sidecar_on(env(), name, mode, format)
}

/// As [`format_webseed_sidecar`], in front of `env`'s backend.
fn webseed_sidecar_on(env: &Env, name: &str, mode: &str, format: &str) -> Sidecar {
    SidecarBuilder::on(env, name).webseeds(mode, format).start()
}

/// The web seed is the backend itself (through the sidecar), whichever backend it is.
fn libtorrent_and_aria2c_download_from_the_web_seed_alone(env: &Env) {
    let s = webseed_sidecar_on(env, "ws-clients", "public", "v1");
    let f = fixture_on(env, "ws-lt", s.port, 3 * 1024 * 1024 + 7, 200);
    if !env.backend.serves_anonymous_reads() {
        // The public web seed is an unsigned read, which the backend's anonymous policy
        // decides; Garage has none, so every web-seed request gets its 403, passed on.
        // There, torrents name presigned web seeds (`webseed = "presigned"`, tested below).
        let target = format!("/_s3torrent/webseed/public/bt/{}", f.name);
        let r = request(s.port, "GET", &target, &[("range", "bytes=0-16383")]);
        assert_eq!(r.status, 403, "{}", r.text());
        assert_eq!(r.s3_code().as_deref(), Some("AccessDenied"));
        return;
    }
    libtorrent_gets(f.torrent.to_str().unwrap(), &f, "lt");
    let f = fixture_on(env, "ws-aria2", s.port, 2 * 1024 * 1024 + 3, 201);
    aria2c_gets(&f.torrent, &f, "aria2");
}

crate::on_every_backend!(
    libtorrent_and_aria2c_download_from_the_web_seed_alone,
    presigned_web_seed_for_a_private_object,
);

#[test]
fn libtorrent_downloads_hybrid_and_v2_torrents_from_the_web_seed() {
    libtorrent_downloads("ws-lt-hybrid", "hybrid");
    libtorrent_downloads("ws-lt-v2", "v2");
}

fn libtorrent_downloads(test: &str, format: &str) {
    let s = format_webseed_sidecar(test, "public", format);
    let f = fixture(test, s.port, 3 * 1024 * 1024 + 7, 200);
    libtorrent_gets(f.torrent.to_str().unwrap(), &f, "lt");
}

/// aria2 has no v2: it takes a hybrid torrent by its v1 half.
#[test]
fn aria2c_downloads_a_hybrid_torrent_as_v1() {
    aria2c_downloads("ws-aria2-hybrid", "hybrid");
}

fn aria2c_downloads(test: &str, format: &str) {
    let s = format_webseed_sidecar(test, "public", format);
    let f = fixture(test, s.port, 2 * 1024 * 1024 + 3, 201);
    aria2c_gets(&f.torrent, &f, "aria2");
}

#[test]
fn transmission_downloads_from_the_web_seed_alone() {
    let s = webseed_sidecar("ws-transmission", "public");
    transmission_downloads(&fixture("ws-transmission", s.port, 1024 * 1024 + 11, 202));
}

/// Fetches the private object's torrent as READER from a sidecar at `base`.
fn presigned_torrent(base: &str, dir: &Path, name: &str) -> PathBuf {
    let t = dir.join(format!("{name}.torrent"));
    let out = s3client(
        base,
        READER,
        &["torrent", "private", "bt/secret.bin", t.to_str().unwrap()],
    );
    assert_eq!(out["status"], 200, "{out}");
    t
}

/// The presigned web seed is signed with the sidecar's key for the backend it fronts.
fn presigned_web_seed_for_a_private_object(env: &Env) {
    let s = webseed_sidecar_on(env, "ws-presigned", "presigned", "v1");
    let dir = env.scratch("ws-presigned");
    let data = test_data(2 * 1024 * 1024 + 5, 203);
    env.put_object("private", "bt/secret.bin", &data, &dir);
    let base = format!("http://127.0.0.1:{}", s.port);
    let (first, second) = (
        presigned_torrent(&base, &dir, "first"),
        presigned_torrent(&base, &dir, "second"),
    );
    let plain = dir.join("secret.bin");
    std::fs::write(&plain, &data).unwrap();
    let check = check_torrent(&first, &plain);
    assert_eq!(check["bad_pieces"], serde_json::json!([]));
    let again = check_torrent(&second, &plain);
    assert_eq!(
        check["info_hash"], again["info_hash"],
        "presigning never changes the infohash"
    );
    assert!(std::fs::read(&first)
        .unwrap()
        .windows(16)
        .any(|w| w == b"X-Amz-Signature="));

    // Anonymous callers cannot read the object, so they get no torrent (and no URL).
    assert_eq!(
        request(s.port, "GET", "/private/bt/secret.bin?torrent", &[]).status,
        403
    );

    let save = dir.join("aria2");
    let out = aria2c(&first, &save);
    assert!(
        out.status.success(),
        "aria2c: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_downloaded(
        &save.join("secret.bin"),
        &data,
        "aria2c (presigned web seed)",
    );
}

/// libtorrent 2.0.8 sends `Host` without the port for web seeds, so a URL presigned for
/// `host:port` fails its signature on any non-default port. On the default port (as any
/// public deployment is) it works: this test gives the sidecar port 80 of a loopback
/// address of its own, which needs root.
#[test]
fn presigned_web_seed_with_libtorrent_on_the_default_port() {
    let env = env();
    let dir = env.scratch("ws-presigned-lt");
    let ip = format!(
        "127.{}.{}.{}",
        100 + std::process::id() % 100,
        std::process::id() % 250 + 1,
        7
    );
    if std::net::TcpListener::bind((ip.as_str(), 80)).is_err() {
        eprintln!("SKIPPED: cannot bind {ip}:80 (needs root); libtorrent omits non-default ports from Host");
        return;
    }
    let admin = free_ports(1)[0];
    let config = SidecarBuilder::on(env, "ws-presigned-lt")
        .set("server.listen", format!("{ip}:80"))
        .set("admin.listen", format!("127.0.0.1:{admin}"))
        .set("torrent.webseed", "presigned")
        .set("torrent.public_base_url", format!("http://{ip}"))
        .config_text();
    let path = dir.join("s3torrent.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3torrent"));
    cmd.arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    register_child(spawn_guarded(cmd));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect((ip.as_str(), 80)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sidecar on {ip}:80 did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let data = test_data(2 * 1024 * 1024 + 5, 203);
    put_object("private", "bt/secret.bin", &data, &dir);
    let torrent = presigned_torrent(&format!("http://{ip}"), &dir, "lt");
    let save = dir.join("lt");
    let out = lt_client(&[
        "download",
        torrent.to_str().unwrap(),
        save.to_str().unwrap(),
        "60",
    ]);
    assert_eq!(out["finished"], true, "{out}");
    assert_downloaded(
        &save.join("secret.bin"),
        &data,
        "libtorrent (presigned web seed)",
    );
}

#[test]
fn a_corrupted_backend_copy_is_detected_by_the_client() {
    corrupted_copy_is_detected("ws-corrupt", "v1");
}

#[test]
fn a_corrupted_backend_copy_fails_v2_block_hashes() {
    corrupted_copy_is_detected("ws-corrupt-v2", "v2");
}

fn corrupted_copy_is_detected(test: &str, format: &str) {
    let s = format_webseed_sidecar(test, "public", format);
    let f = fixture(test, s.port, 1024 * 1024, 204);
    // Same length, other bytes: what a bit-rotted or tampered copy looks like to a web seed.
    let mut bad = f.data.clone();
    for b in bad.iter_mut().step_by(4096) {
        *b ^= 0xFF;
    }
    put_object("public", &format!("bt/{}", f.name), &bad, &f.dir);
    let save = f.dir.join("lt");
    let out = lt_client(&[
        "download",
        f.torrent.to_str().unwrap(),
        save.to_str().unwrap(),
        "15",
    ]);
    assert_eq!(out["finished"], false, "{out}");
    assert!(out["hash_failures"].as_u64().unwrap() > 0, "{out}");
}

#[test]
fn magnet_link_names_infohash_trackers_and_web_seed() {
    let s = sidecar("magnet")
        .webseeds("public", "v1")
        .set("torrent.announce", vec![vec!["udp://tracker.example:6969"]])
        .start();
    let f = fixture("magnet", s.port, 50_000, 205);
    let r = request(s.port, "GET", "/public/bt/magnet.bin?torrent", &[]);
    let link = r.header("link").expect("Link header");
    let check = check_torrent(&f.torrent, &{
        let p = f.dir.join("m.bin");
        std::fs::write(&p, &f.data).unwrap();
        p
    });
    let hash = check["info_hash"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("<magnet:?xt=urn:btih:{hash}&dn=magnet.bin")),
        "{link}"
    );
    assert!(
        link.contains("&tr=udp%3A%2F%2Ftracker.example%3A6969"),
        "{link}"
    );
    assert!(
        link.contains(&format!(
            "&ws=http%3A%2F%2F127.0.0.1%3A{}%2F_s3torrent%2Fwebseed%2Fpublic%2Fbt%2Fmagnet.bin",
            s.port
        )),
        "{link}"
    );
}

fn tracker_sidecar(name: &str) -> Sidecar {
    sidecar(name)
        .tracker()
        .set("tracker.interval", 2)
        .set("tracker.peer_ttl", 30)
        .start()
}

#[test]
fn libtorrent_peers_find_each_other_through_the_built_in_tracker() {
    let s = tracker_sidecar("tracker-swarm");
    let f = fixture("tracker-swarm", s.port, 4 * 1024 * 1024 + 1, 206);
    let seed = f.dir.join("seed.bin");
    std::fs::write(&seed, &f.data).unwrap();
    let work = f.dir.join("swarm");
    let out = lt_client(&[
        "swarm",
        f.torrent.to_str().unwrap(),
        work.to_str().unwrap(),
        "3",
        "90",
        seed.to_str().unwrap(),
    ]);
    for (name, peer) in out["peers"].as_object().unwrap() {
        assert_eq!(peer["finished"], true, "{name}: {out}");
    }
    for i in 0..3 {
        assert_downloaded(
            &work.join(format!("leecher{i}")).join(&f.name),
            &f.data,
            "libtorrent via tracker",
        );
    }
    // Scrape agrees: the seeder and three finished leechers.
    let hash = check_torrent(&f.torrent, &seed)["info_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let raw: String = (0..20)
        .map(|i| format!("%{}", &hash[2 * i..2 * i + 2]))
        .collect();
    let stats = scrape_one(s.port, &raw);
    assert!(
        stats.get("downloaded").unwrap().as_int().unwrap() >= 3,
        "{:?}",
        stats
    );
}

/// The tracker's scrape of one torrent (`info_hash` percent-encoded): its counts.
fn scrape_one(port: u16, info_hash: &str) -> Value {
    let target = format!("/_s3torrent/scrape?info_hash={info_hash}");
    let r = request(port, "GET", &target, &[]);
    let v = s3torrent::torrent::bencode::decode(&r.body).unwrap();
    let files = v.get("files").unwrap().as_dict().unwrap();
    files
        .values()
        .next()
        .cloned()
        .expect("the torrent's counts")
}

#[test]
fn announce_and_scrape_edge_cases_answer_bencoded_failures() {
    let s = tracker_sidecar("tracker-edges");
    let failure = |target: &str| {
        let r = request(s.port, "GET", target, &[]);
        assert_eq!(r.status, 200, "{target}");
        let v = s3torrent::torrent::bencode::decode(&r.body)
            .unwrap_or_else(|e| panic!("{target}: {e:?}"));
        String::from_utf8(
            v.get("failure reason")
                .unwrap_or_else(|| panic!("{target}: {}", r.text()))
                .as_bytes()
                .unwrap()
                .to_vec(),
        )
        .unwrap()
    };
    let hash = "%01".repeat(20);
    let peer = "-XX0001-000000000000";
    let base = format!("/_s3torrent/announce?info_hash={hash}&peer_id={peer}&port=6881&left=10");
    assert!(failure(&base).starts_with("unregistered torrent"));
    assert_eq!(
        failure(&base.replace(&hash, "%01%02")),
        "invalid info_hash: must be 20 bytes"
    );
    assert_eq!(failure("/_s3torrent/announce"), "missing info_hash");
    assert_eq!(failure(&base.replace("&port=6881", "")), "missing port");
    assert_eq!(
        failure(&base.replace(peer, "x")),
        "invalid peer_id: must be 20 bytes"
    );
    assert_eq!(failure(&format!("{base}&event=exploded")), "invalid event");
    assert_eq!(
        failure("/_s3torrent/scrape?info_hash=%01"),
        "invalid info_hash: must be 20 bytes"
    );
    // An unknown infohash in a scrape is simply absent.
    let r = request(
        s.port,
        "GET",
        &format!("/_s3torrent/scrape?info_hash={hash}"),
        &[],
    );
    assert_eq!(r.body, b"d5:filesdee");
    // The tracker claims only its two paths: objects under a bucket named `announce` pass
    // through to the backend, which answers as it would directly.
    let via = request(s.port, "GET", "/announce/some-key", &[]);
    let direct = request(env().s3_port, "GET", "/announce/some-key", &[]);
    assert_eq!(
        (via.status, via.s3_code()),
        (direct.status, direct.s3_code())
    );
}

#[test]
fn qbittorrent_downloads_from_the_web_seed_alone() {
    let s = webseed_sidecar("ws-qbt", "public");
    qbittorrent_downloads(&fixture("ws-qbt", s.port, 2 * 1024 * 1024 + 9, 207));
}

#[test]
fn qbittorrent_downloads_a_hybrid_torrent() {
    let s = format_webseed_sidecar("ws-qbt-hybrid", "public", "hybrid");
    let f = fixture("ws-qbt-hybrid", s.port, 2 * 1024 * 1024 + 11, 208);
    let torrent = s3torrent::torrent::bencode::decode(&std::fs::read(&f.torrent).unwrap()).unwrap();
    assert_eq!(
        torrent
            .get("info")
            .unwrap()
            .get("meta version")
            .unwrap()
            .as_int(),
        Some(2)
    );
    qbittorrent_downloads(&f);
}

/// The web seed's URL in a torrent, and its `X-Amz-Expires`.
fn webseed_of(torrent: &[u8]) -> (String, u64) {
    let v = s3torrent::torrent::bencode::decode(torrent).unwrap();
    let list = v.get("url-list").expect("url-list");
    let url = match list {
        s3torrent::torrent::bencode::Value::List(items) => {
            String::from_utf8(items[0].as_bytes().unwrap().to_vec()).unwrap()
        }
        other => String::from_utf8(other.as_bytes().unwrap().to_vec()).unwrap(),
    };
    let expires = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("X-Amz-Expires="))
        .expect("X-Amz-Expires")
        .parse()
        .unwrap();
    (url, expires)
}

#[test]
fn a_presigned_web_seed_never_outlives_the_callers_grant_and_names_the_version() {
    let env = env();
    let s = webseed_sidecar("ws-grant", "presigned");
    let dir = env.scratch("ws-grant");
    put_object("private", "bt/grant.bin", &test_data(40_000, 209), &dir);
    let base = format!("http://127.0.0.1:{}", s.port);

    // A caller whose own presigned ?torrent URL lives 120 s gets a web seed of at most that.
    let url = s3client(
        &base,
        READER,
        &["presign-torrent", "private", "bt/grant.bin", "120"],
    )["url"]
        .as_str()
        .unwrap()
        .to_string();
    let r = request(s.port, "GET", url.trim_start_matches(&base), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, expires) = webseed_of(&r.body);
    assert!((1..=120).contains(&expires), "X-Amz-Expires={expires}");

    // A header-signed caller gets the configured lifetime (1 hour by default).
    let header_signed = presigned_torrent_of(&base, &dir, "private", "bt/grant.bin");
    assert_eq!(webseed_of(&header_signed).1, 3600);

    // In a versioned bucket the web seed names the version the caller was authorized for.
    let v1 = put_object("versioned", "grant.bin", &test_data(30_000, 210), &dir);
    let v2 = put_object("versioned", "grant.bin", &test_data(30_000, 211), &dir);
    let version = v2["version_id"].as_str().expect("a version id");
    assert_ne!(Some(version), v1["version_id"].as_str());
    let (url, _) = webseed_of(&presigned_torrent_of(&base, &dir, "versioned", "grant.bin"));
    assert!(url.contains(&format!("versionId={version}")), "{url}");
}

fn presigned_torrent_of(base: &str, dir: &Path, bucket: &str, key: &str) -> Vec<u8> {
    let t = dir.join(format!("{bucket}-{}.torrent", key.replace('/', "_")));
    let out = s3client(base, READER, &["torrent", bucket, key, t.to_str().unwrap()]);
    assert_eq!(out["status"], 200, "{out}");
    std::fs::read(t).unwrap()
}

/// A signed request as `ADMIN` with `host`, through the sidecar at `port`.
fn signed_as_admin(port: u16, method: &str, host: &str, target: &str, body: &[u8]) -> Response {
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(body));
    let headers = signed_headers(
        ADMIN,
        method,
        host,
        target,
        Some(&hash),
        std::time::SystemTime::now(),
    );
    let refs = header_refs(&headers);
    request_with_body(port, method, target, &refs, body)
}

#[test]
fn buckets_named_announce_and_scrape_stay_s3_buckets_while_the_tracker_answers() {
    let s = tracker_sidecar("tracker-shadow");
    let base = format!("http://127.0.0.1:{}", s.port);
    let dir = env().scratch("tracker-shadow");
    let data = test_data(5000, 212);
    let file = dir.join("k.bin");
    std::fs::write(&file, &data).unwrap();
    for bucket in ["announce", "scrape"] {
        // Path-style, with boto3: create, write, list, read.
        let made = s3client(&base, ADMIN, &["mkbucket", bucket]);
        assert!(made.get("error").is_none(), "{bucket}: {made}");
        let put = s3client(
            &base,
            ADMIN,
            &["put", bucket, "k.bin", file.to_str().unwrap()],
        );
        assert!(put.get("error").is_none(), "{bucket}: {put}");
        let listed = s3client(&base, ADMIN, &["list", bucket]);
        assert_eq!(listed["keys"], serde_json::json!(["k.bin"]), "{bucket}");
        let back = dir.join(format!("{bucket}.back"));
        s3client(
            &base,
            ADMIN,
            &["get", bucket, "k.bin", back.to_str().unwrap()],
        );
        assert_eq!(std::fs::read(&back).unwrap(), data, "{bucket}");

        // Virtual-hosted style: `{bucket}.s3.test`, where `/_s3torrent/announce` is a key too.
        let host = format!("{bucket}.{DOMAIN}:{}", s.port);
        for key in ["v.bin", "_s3torrent/announce"] {
            let target = format!("/{key}");
            let put = signed_as_admin(s.port, "PUT", &host, &target, b"virtual");
            assert_eq!(put.status, 200, "{bucket} PUT {key}: {}", put.text());
            let get = signed_as_admin(s.port, "GET", &host, &target, b"");
            assert_eq!(
                (get.status, get.body.as_slice()),
                (200, &b"virtual"[..]),
                "{bucket} GET {key}"
            );
        }
        let list = signed_as_admin(s.port, "GET", &host, "/?list-type=2", b"");
        assert_eq!(list.status, 200, "{}", list.text());
        assert!(list.text().contains("<Key>v.bin</Key>"), "{}", list.text());
    }

    // The tracker still answers at the URL the torrents name.
    put_object("public", "bt/shadow.bin", &data, &dir);
    let r = request(s.port, "GET", "/public/bt/shadow.bin?torrent", &[]);
    let torrent = s3torrent::torrent::bencode::decode(&r.body).unwrap();
    let announce = String::from_utf8(
        torrent
            .get("announce")
            .unwrap()
            .as_bytes()
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let path = announce.trim_start_matches(&base);
    assert_eq!(path, "/_s3torrent/announce");
    let hash: String = torrent_info_hash(&r.body)
        .iter()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let query = format!("{path}?info_hash={hash}&peer_id=-XX0001-000000000000&port=6881&left=10");
    let answer =
        s3torrent::torrent::bencode::decode(&request(s.port, "GET", &query, &[]).body).unwrap();
    assert!(answer.get("interval").is_some(), "a tracker answer");
}

/// One announce from `source` (an address in 127.0.0.0/8), answered or not.
async fn announce_from(source: std::net::Ipv4Addr, port: u16, target: String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
        return;
    };
    if socket.bind((source, 0).into()).is_err() {
        return;
    }
    let Ok(mut s) = socket.connect(([127, 0, 0, 1], port).into()).await else {
        return;
    };
    let req = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_ok() {
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    }
}

#[test]
fn an_announce_flood_stays_within_the_tracker_bounds() {
    const PEERS: usize = 3000;
    const FLOOD: usize = 20_000;
    let s = sidecar("tracker-flood")
        .tracker()
        .set("tracker.max_peers", PEERS as i64)
        .set("tracker.max_peers_per_address", 2)
        .start();
    let dir = env().scratch("tracker-flood");
    let hashes: Vec<String> = (0..4)
        .map(|i| {
            let key = format!("bt/flood-{i}.bin");
            put_object("public", &key, &test_data(1000 + i, 300 + i as u64), &dir);
            let r = request(s.port, "GET", &format!("/public/{key}?torrent"), &[]);
            assert_eq!(r.status, 200);
            torrent_info_hash(&r.body)
                .iter()
                .map(|b| format!("%{b:02X}"))
                .collect()
        })
        .collect();
    let before = rss_kib(s.pid);
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut batch = tokio::task::JoinSet::new();
        for i in 0..FLOOD {
            // Every announce a new peer, from one of 20,000 loopback addresses.
            let source = std::net::Ipv4Addr::new(127, 1 + (i / 60_000) as u8, (i / 250 % 240) as u8, (i % 250 + 1) as u8);
            let target = format!(
                "/_s3torrent/announce?info_hash={}&peer_id=-FL0001-{i:012}&port={}&left=5&compact=1",
                hashes[i % hashes.len()],
                1024 + i % 60_000,
            );
            batch.spawn(announce_from(source, s.port, target));
            if batch.len() >= 64 {
                batch.join_next().await;
            }
        }
        while batch.join_next().await.is_some() {}
    });
    let flood_secs = started.elapsed().as_secs_f64();
    let metrics = request(s.admin_port, "GET", "/metrics", &[]).text();
    let held: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("s3torrent_tracker_peers "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the tracker peers gauge");
    assert_eq!(
        held, PEERS,
        "{FLOOD} announces in {flood_secs:.1} s: the global cap holds"
    );
    // Scrape agrees, torrent by torrent.
    let total: i64 = hashes
        .iter()
        .map(|h| {
            let r = request(
                s.port,
                "GET",
                &format!("/_s3torrent/scrape?info_hash={h}"),
                &[],
            );
            let v = s3torrent::torrent::bencode::decode(&r.body).unwrap();
            let files = v.get("files").unwrap().as_dict().unwrap();
            let f = files.values().next().unwrap();
            f.get("incomplete").unwrap().as_int().unwrap()
                + f.get("complete").unwrap().as_int().unwrap()
        })
        .sum();
    assert_eq!(total as usize, PEERS);
    // Memory: a few hundred bytes a peer, far inside the documented worst case.
    let grown_mib = rss_kib(s.pid).saturating_sub(before) as f64 / 1024.0;
    assert!(grown_mib < 16.0, "RSS grew {grown_mib:.1} MiB");
}

/// Behind a load balancer listed in `server.trusted_proxies`, the tracker records each peer
/// at the address the balancer reports, not at the balancer's: 24 peers from 24 networks
/// all make the swarm (before, all were the balancer's address, capped at
/// `max_peers_per_address` = 16). A caller that is not a trusted proxy cannot choose its
/// address that way.
#[test]
fn the_tracker_behind_a_trusted_proxy_sees_each_peers_own_address() {
    let s = sidecar("tracker-proxied")
        .tracker()
        .set("server.trusted_proxies", vec!["127.0.0.1/32"])
        .start();
    let dir = env().scratch("tracker-proxied");
    put_object("public", "bt/proxied.bin", &test_data(5000, 311), &dir);
    let r = request(s.port, "GET", "/public/bt/proxied.bin?torrent", &[]);
    assert_eq!(r.status, 200);
    let hash: String = torrent_info_hash(&r.body)
        .iter()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let announce = |i: usize, xff: &str| {
        let target = format!(
            "/_s3torrent/announce?info_hash={hash}&peer_id=-PX0001-{i:012}&port={}&left=5&compact=1",
            7000 + i
        );
        let r = request(s.port, "GET", &target, &[("x-forwarded-for", xff)]);
        assert_eq!(r.status, 200);
        s3torrent::torrent::bencode::decode(&r.body).unwrap()
    };
    for i in 0..24 {
        announce(i, &format!("198.51.{i}.7"));
    }
    let view = announce(99, "203.0.113.9");
    let peers = view.get("peers").unwrap().as_bytes().unwrap().to_vec();
    assert_eq!(peers.len() / 6, 24, "every proxied peer is in the swarm");
    assert!(
        peers.chunks(6).all(|p| p[..2] == [198, 51] && p[3] == 7),
        "recorded at their own addresses: {peers:?}"
    );
    // Not a trusted proxy: the header is the caller's own claim, and ignored.
    let direct = sidecar("tracker-unproxied")
        .tracker()
        .set("tracker.max_peers_per_address", 2)
        .start();
    let r = request(direct.port, "GET", "/public/bt/proxied.bin?torrent", &[]);
    assert_eq!(r.status, 200);
    for i in 0..5 {
        let target = format!(
            "/_s3torrent/announce?info_hash={hash}&peer_id=-PX0002-{i:012}&port=7100&left=5&compact=1"
        );
        let xff = format!("198.51.{i}.7");
        request(direct.port, "GET", &target, &[("x-forwarded-for", &xff)]);
    }
    let f = scrape_one(direct.port, &hash);
    assert_eq!(
        f.get("incomplete").unwrap().as_int(),
        Some(2),
        "one address: two peers"
    );
}
