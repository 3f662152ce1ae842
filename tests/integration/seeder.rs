//! The sidecar as a seed: real clients download with no web seed, from a magnet link alone,
//! never get an overwritten object's old bytes, and hostile peers hurt nobody else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::bittorrent::{
    aria2c_gets, fixture, libtorrent_gets, lt_client, own_url, qbittorrent_downloads,
};
use crate::harness::*;

pub struct SeedingSidecar {
    pub sidecar: Sidecar,
    pub seeder_port: u16,
}

/// A sidecar that seeds (objects = all unless `extra` says otherwise), with its tracker on
/// and no web seed: peers can only get the bytes from the seeder (or each other).
pub fn seeding_sidecar(name: &str, extra: &str) -> SeedingSidecar {
    let seeder_port = free_ports(1)[0];
    let sidecar = extra_sidecar_logging(
        name,
        |c| {
            let base = own_url(&c);
            format!(
                "{c}\n[tracker]\nenabled = true\npublic_url = \"{base}/_s3torrent/announce\"\n\
                 interval = 2\npeer_ttl = 30\n\n[seeder]\nenabled = true\n\
                 listen = \"127.0.0.1:{seeder_port}\"\n{extra}"
            )
        },
        "warn",
    );
    wait_for_port(seeder_port, "seeder", &sidecar.log);
    SeedingSidecar {
        sidecar,
        seeder_port,
    }
}

#[test]
fn libtorrent_downloads_from_the_seeder_alone() {
    let s = seeding_sidecar("seed-lt", "");
    let f = fixture("seed-lt", s.sidecar.port, 3 * 1024 * 1024 + 7, 400);
    let torrent = s3torrent::torrent::bencode::decode(&std::fs::read(&f.torrent).unwrap()).unwrap();
    assert!(torrent.get("url-list").is_none(), "no web seed");
    libtorrent_gets(f.torrent.to_str().unwrap(), &f, "lt");
    let metrics = request(s.sidecar.admin_port, "GET", "/metrics", &[]).text();
    let uploaded = metric(&metrics, "s3torrent_seeder_uploaded_bytes_total");
    assert!(uploaded >= f.data.len() as u64, "{uploaded}");
}

/// A series' value; `name` may carry labels (`x_total{kind="put"}`).
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

#[test]
fn aria2c_and_qbittorrent_download_from_the_seeder() {
    let s = seeding_sidecar("seed-clients", "");
    let f = fixture("seed-aria2", s.sidecar.port, 2 * 1024 * 1024 + 3, 401);
    aria2c_gets(&f.torrent, &f, "aria2");
    // Not Transmission: 3.00 discards tracker peers in 127.0.0.0/8 ("martian" addresses), so
    // it cannot reach a seeder on loopback, the only address tests may use here.
    qbittorrent_downloads(&fixture(
        "seed-qbt",
        s.sidecar.port,
        2 * 1024 * 1024 + 1,
        403,
    ));
}

/// The magnet link of an object, from the `Link` header of its `?torrent` answer.
fn magnet_of(port: u16, key: &str) -> String {
    let r = request(port, "HEAD", &format!("/public/{key}?torrent"), &[]);
    let link = r.header("link").expect("a Link header").to_string();
    link.trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_magnet_link_alone_is_enough() {
    let s = seeding_sidecar("seed-magnet", "");
    let f = fixture("seed-magnet", s.sidecar.port, 1024 * 1024 + 9, 404);
    let magnet = magnet_of(s.sidecar.port, &format!("bt/{}", f.name));
    assert!(
        magnet.contains(&format!("x.pe=127.0.0.1%3A{}", s.seeder_port)),
        "{magnet}"
    );
    assert!(!magnet.contains("&ws="), "no web seed: {magnet}");
    // libtorrent: metadata over ut_metadata from the seeder it dials (x.pe), then the bytes.
    libtorrent_gets(&magnet, &f, "lt-magnet");
    // aria2c: finds the seeder through the tracker the magnet names.
    aria2c_gets(&magnet, &f, "aria2-magnet");
}

#[test]
fn an_overwritten_object_is_never_served_from_its_old_torrent() {
    let s = seeding_sidecar("seed-overwrite", "");
    let f = fixture("seed-overwrite", s.sidecar.port, 1024 * 1024, 405);
    // Same length, other bytes.
    put_object(
        "public",
        &format!("bt/{}", f.name),
        &test_data(1024 * 1024, 406),
        &f.dir,
    );
    let save = f.dir.join("lt");
    let out = lt_client(&[
        "download",
        f.torrent.to_str().unwrap(),
        save.to_str().unwrap(),
        "12",
    ]);
    assert_eq!(out["finished"], false, "{out}");
    assert_eq!(
        out["hash_failures"], 0,
        "no wrong piece was ever sent: {out}"
    );
}

#[test]
fn private_objects_are_not_seeded_by_default() {
    let s = seeding_sidecar("seed-private", "");
    let dir = env().scratch("seed-private");
    put_object("private", "bt/secret.bin", &test_data(50_000, 407), &dir);
    let t = dir.join("secret.torrent");
    let base = format!("http://127.0.0.1:{}", s.sidecar.port);
    let r = s3client(
        &base,
        READER,
        &["torrent", "private", "bt/secret.bin", t.to_str().unwrap()],
    );
    assert_eq!(r["status"], 200, "{r}");
    std::thread::sleep(Duration::from_millis(500)); // the background anonymous check
    let hash = crate::bittorrent::torrent_info_hash(&std::fs::read(&t).unwrap());
    assert_eq!(
        handshake(s.seeder_port, hash),
        None,
        "the seeder does not know it"
    );
}

/// Whether the other side closed (FIN or reset) before the read timeout; what it sent
/// before that is drained.
fn hung_up(c: &mut TcpStream) -> bool {
    let mut sink = Vec::new();
    match c.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// Sends a handshake for `info_hash`; the seeder's handshake back, if any.
fn handshake(port: u16, info_hash: [u8; 20]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut h = vec![19u8];
    h.extend_from_slice(b"BitTorrent protocol");
    h.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x04]);
    h.extend_from_slice(&info_hash);
    h.extend_from_slice(b"-XX0001-hostile00000");
    s.write_all(&h).ok()?;
    let mut back = vec![0u8; 68];
    s.read_exact(&mut back).ok()?;
    Some(back)
}

#[test]
fn hostile_peers_hurt_nobody_else() {
    let s = seeding_sidecar("seed-hostile", "");
    let f = fixture("seed-hostile", s.sidecar.port, 2 * 1024 * 1024, 408);
    let hash = crate::bittorrent::torrent_info_hash(&std::fs::read(&f.torrent).unwrap());
    let port = s.seeder_port;
    let frame = |id: u8, body: &[u8]| {
        let mut m = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        m.push(id);
        m.extend_from_slice(body);
        m
    };
    let request = |index: u32, begin: u32, length: u32| {
        let mut b = index.to_be_bytes().to_vec();
        b.extend_from_slice(&begin.to_be_bytes());
        b.extend_from_slice(&length.to_be_bytes());
        frame(6, &b)
    };
    // Each hostile shape: after the handshake, send this, and the seeder must hang up.
    let shapes: Vec<(&str, Vec<u8>)> = vec![
        ("oversized length", vec![0x7f, 0xff, 0xff, 0xff, 7]),
        ("short have", frame(4, &[0, 1])),
        (
            "request out of range",
            [frame(2, &[]), request(10_000, 0, 16384)].concat(),
        ),
        (
            "request past the piece",
            [frame(2, &[]), request(0, 16384 * 1000, 16384)].concat(),
        ),
        (
            "huge block",
            [frame(2, &[]), request(0, 0, 1 << 20)].concat(),
        ),
        (
            "request flood",
            [
                frame(2, &[]),
                (0..2000).flat_map(|i| request(i % 8, 0, 16384)).collect(),
            ]
            .concat(),
        ),
    ];
    let mut slow_readers = Vec::new();
    for (what, bytes) in &shapes {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut h = vec![19u8];
        h.extend_from_slice(b"BitTorrent protocol");
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&hash);
        h.extend_from_slice(b"-XX0001-hostile00000");
        c.write_all(&h).unwrap();
        let _ = c.write_all(bytes);
        assert!(
            hung_up(&mut c),
            "{what}: the seeder should close the connection"
        );
    }
    // Garbage instead of a handshake.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = c.write_all(&[0xAB; 68]);
    assert!(hung_up(&mut c), "garbage handshake");
    // Slow readers: interested, asking for blocks, never reading the answers.
    for _ in 0..8 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut h = vec![19u8];
        h.extend_from_slice(b"BitTorrent protocol");
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&hash);
        h.extend_from_slice(b"-XX0001-slowreader00");
        c.write_all(&h).unwrap();
        c.write_all(&frame(2, &[])).unwrap();
        let _ = c.write_all(
            &(0..200)
                .flat_map(|i| request(i % 8, 0, 16384))
                .collect::<Vec<u8>>(),
        );
        slow_readers.push(c);
    }
    let before = crate::bittorrent::rss_kib(s.sidecar.pid);
    // Meanwhile a real client gets the object.
    libtorrent_gets(f.torrent.to_str().unwrap(), &f, "lt");
    let grown = crate::bittorrent::rss_kib(s.sidecar.pid).saturating_sub(before) / 1024;
    assert!(grown < 64, "RSS grew {grown} MiB");
    drop(slow_readers);
}

#[test]
fn the_web_seed_serves_each_piece_of_a_seeded_object_about_once() {
    let s = seeding_sidecar(
        "seed-shaping",
        "objects = \"all\"\nwebseed_concurrency = 4\n",
    );
    let port = s.sidecar.port;
    let dir = env().scratch("seed-shaping");
    let key = "bt/shaped.bin";
    let data = test_data(256 * 1024, 409); // 16 pieces of 16 KiB
    put_object("public", key, &data, &dir);
    let path = format!("/public/{key}");
    let range = |r: &str| request(port, "GET", &path, &[("Range", r)]);
    // Before the seeder seeds it, ranges are plain pass-through.
    assert_eq!(range("bytes=0-16383").status, 206);
    assert_eq!(range("bytes=0-16383").status, 206);
    assert_eq!(
        request(port, "GET", &format!("{path}?torrent"), &[]).status,
        200
    );
    // Seeded: a range with pieces the swarm lacks comes from the origin, once.
    let first = range("bytes=0-65535");
    assert_eq!(first.status, 206);
    assert_eq!(first.body, data[..65536]);
    let again = range("bytes=16384-32767");
    assert_eq!(again.status, 503, "{}", again.text());
    assert_eq!(again.s3_code().as_deref(), Some("SlowDown"));
    assert!(again.header("retry-after").is_some());
    // Only new pieces: allowed; open-ended ranges too.
    assert_eq!(range("bytes=65536-131071").status, 206);
    assert_eq!(range("bytes=131072-").status, 206);
    assert_eq!(range("bytes=0-").status, 503);
    // Signed requests are never shaped: an SDK's ranged download is not a web seed.
    let host = format!("127.0.0.1:{port}");
    let mut signed = signed_headers(
        ADMIN,
        "GET",
        &host,
        &path,
        None,
        std::time::SystemTime::now(),
    );
    signed.push(("range".into(), "bytes=0-16383".into()));
    let refs: Vec<(&str, &str)> = signed
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(request(port, "GET", &path, &refs).status, 206);
    let metrics = request(s.sidecar.admin_port, "GET", "/metrics", &[]).text();
    assert_eq!(
        metric(&metrics, "s3torrent_seeder_webseed_deferred_total"),
        2
    );
}

#[test]
fn the_seed_is_announced_to_external_trackers_when_configured() {
    // Tracker: another sidecar's built-in tracker, which knows the torrent once it served it
    // (torrents are deterministic: the same object gives the same infohash on both).
    let tracker = extra_sidecar_full("ext-tracker", |c| {
        let base = own_url(&c);
        format!("{c}\n[tracker]\nenabled = true\npublic_url = \"{base}/_s3torrent/announce\"\n")
    });
    let announce = format!("http://127.0.0.1:{}/_s3torrent/announce", tracker.port);
    let seeder_port = free_ports(1)[0];
    let seeder = extra_sidecar_full("ext-seeder", |c| {
        let c = c.replace(
            "[torrent]\n",
            &format!("[torrent]\nannounce = [[\"{announce}\"]]\n"),
        );
        format!(
            "{c}\n[seeder]\nenabled = true\nlisten = \"127.0.0.1:{seeder_port}\"\nannounce_external = true\n"
        )
    });
    let dir = env().scratch("ext-announce");
    put_object("public", "bt/ext.bin", &test_data(40_000, 410), &dir);
    let from_tracker = request(tracker.port, "GET", "/public/bt/ext.bin?torrent", &[]);
    let from_seeder = request(seeder.port, "GET", "/public/bt/ext.bin?torrent", &[]);
    let hash = crate::bittorrent::torrent_info_hash(&from_tracker.body);
    assert_eq!(
        hash,
        crate::bittorrent::torrent_info_hash(&from_seeder.body)
    );
    let escaped: String = hash.iter().map(|b| format!("%{b:02X}")).collect();
    let scrape = format!("/_s3torrent/scrape?info_hash={escaped}");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut seeds = 0;
    while std::time::Instant::now() < deadline && seeds == 0 {
        let r = request(tracker.port, "GET", &scrape, &[]);
        let v = s3torrent::torrent::bencode::decode(&r.body).unwrap();
        let files = v.get("files").unwrap().as_dict().unwrap();
        seeds = files
            .values()
            .next()
            .and_then(|f| f.get("complete")?.as_int())
            .unwrap_or(0);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        seeds, 1,
        "the seeder announced itself, as a seed, to the external tracker"
    );
}
