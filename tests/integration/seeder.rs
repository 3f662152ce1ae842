//! The sidecar as a seed: real clients download with no web seed, from a magnet link alone,
//! never get an overwritten object's old bytes, and hostile peers hurt nobody else.

use std::io::{Read, Write};

use sha1::Digest;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::harness::*;

pub struct SeedingSidecar {
    pub sidecar: Sidecar,
    pub seeder_port: u16,
}

/// A sidecar that seeds (the default objects, `public`), with its tracker on and no web
/// seed: peers can only get the bytes from the seeder (or each other).
pub fn seeding_sidecar(name: &str) -> SeedingSidecar {
    seeding_sidecar_with(name, |b| b)
}

/// As [`seeding_sidecar`], with more settings.
pub fn seeding_sidecar_with(
    name: &str,
    settings: impl FnOnce(SidecarBuilder) -> SidecarBuilder,
) -> SeedingSidecar {
    seeding_sidecar_on(env(), name, settings)
}

/// As [`seeding_sidecar_with`], in front of `env`'s backend.
pub fn seeding_sidecar_on<'a>(
    env: &'a Env,
    name: &str,
    settings: impl FnOnce(SidecarBuilder<'a>) -> SidecarBuilder<'a>,
) -> SeedingSidecar {
    let seeder_port = free_ports(1)[0];
    let builder = SidecarBuilder::on(env, name)
        .tracker()
        .set("tracker.interval", 2)
        .set("tracker.peer_ttl", 30)
        .set("seeder.enabled", true)
        .set("seeder.listen", format!("127.0.0.1:{seeder_port}"));
    let sidecar = settings(builder).start();
    wait_for_port(seeder_port, "seeder", &sidecar.log);
    SeedingSidecar {
        sidecar,
        seeder_port,
    }
}

#[test]
fn libtorrent_downloads_from_the_seeder_alone() {
    let s = seeding_sidecar("seed-lt");
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
    let s = seeding_sidecar("seed-clients");
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
    let s = seeding_sidecar("seed-magnet");
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

/// v2 and hybrid torrents are seeded too. libtorrent completes from the seeder alone: a
/// v2-only .torrent, a v2 magnet link alone (the `info` over BEP 9, then the piece layers
/// a magnet lacks over BEP 52 hash requests), and a hybrid magnet link (its v1 connection
/// upgraded to v2, so its piece layers come the same way).
#[test]
fn v2_and_hybrid_torrents_and_magnet_links_are_seeded() {
    for (format, seed) in [("v2", 420), ("hybrid", 421)] {
        let name = format!("seed-{format}");
        let s = seeding_sidecar_with(&name, |b| {
            b.set("torrent.format", format)
                .set("torrent.piece_length", 32 * 1024)
        });
        // 97 pieces and a short last one: hash requests for a layer wider than 64, padded.
        let f = fixture(&name, s.sidecar.port, 97 * 32 * 1024 - 5000, seed);
        let magnet = magnet_of(s.sidecar.port, &format!("bt/{}", f.name));
        assert!(magnet.contains("xt=urn:btmh:1220"), "{magnet}");
        assert_eq!(
            magnet.contains("xt=urn:btih:"),
            format == "hybrid",
            "{magnet}"
        );
        assert!(
            magnet.contains(&format!("x.pe=127.0.0.1%3A{}", s.seeder_port)),
            "{magnet}"
        );
        let hashes = || {
            let metrics = request(s.sidecar.admin_port, "GET", "/metrics", &[]).text();
            (
                metric(
                    &metrics,
                    "s3torrent_seeder_hash_requests_total{answer=\"hashes\"}",
                ),
                metric(
                    &metrics,
                    "s3torrent_seeder_hash_requests_total{answer=\"reject\"}",
                ),
            )
        };
        libtorrent_gets(&magnet, &f, "lt-magnet");
        let (answered, rejected) = hashes();
        assert!(
            answered >= 1,
            "{format}: the piece layers came from the seeder"
        );
        assert_eq!(rejected, 0, "{format}");
        if format == "v2" {
            // With the .torrent the layers are known: the bytes alone, checked by v2 hashes.
            libtorrent_gets(f.torrent.to_str().unwrap(), &f, "lt-file");
            assert_eq!(hashes(), (answered, 0), "no hash request needed");
        }
    }
}

#[test]
fn an_overwritten_object_is_never_served_from_its_old_torrent() {
    let s = seeding_sidecar("seed-overwrite");
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
    let s = seeding_sidecar("seed-private");
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
    let hash = crate::harness::torrent_info_hash(&std::fs::read(&t).unwrap());
    assert!(
        handshake(s.seeder_port, hash).is_none(),
        "the seeder does not know it"
    );
}

/// MSE/PE: libtorrent forcing encryption (an RC4 payload, or the MSE handshake with a
/// plaintext one) and aria2c requiring it download from the seeder alone, and the seeder's
/// counters say which handshakes they used. With `encryption = "required"` a plaintext
/// peer is refused and an encrypted one served; with `"plaintext"` an encrypted one is
/// refused.
#[test]
fn encrypted_peers_download_from_the_seeder() {
    let s = seeding_sidecar("seed-mse");
    let f = fixture("seed-mse", s.sidecar.port, 2 * 1024 * 1024 + 13, 411);
    let handshakes = |port: u16, kind: &str| {
        let m = request(port, "GET", "/metrics", &[]).text();
        metric(
            &m,
            &format!("s3torrent_seeder_handshakes_total{{kind=\"{kind}\"}}"),
        )
    };
    for (mode, kind) in [("rc4", "rc4"), ("mse-plaintext", "mse_plaintext")] {
        let save = f.dir.join(format!("lt-{mode}"));
        let torrent = f.torrent.to_str().unwrap();
        let out = lt_client_with(
            &[("LT_ENCRYPTION", mode)],
            &["download", torrent, save.to_str().unwrap(), "60"],
        );
        assert_eq!(out["finished"], true, "{mode}: {out}");
        assert_eq!(out["hash_failures"], 0, "{out}");
        f.assert_downloaded_in(&save, "libtorrent");
        assert!(handshakes(s.sidecar.admin_port, kind) >= 1, "{mode}");
    }
    let before = handshakes(s.sidecar.admin_port, "rc4");
    let save = f.dir.join("aria2-rc4");
    let out = aria2c_with(
        &f.torrent,
        &save,
        &["--bt-require-crypto=true", "--bt-min-crypto-level=arc4"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    f.assert_downloaded_in(&save, "aria2c");
    assert!(handshakes(s.sidecar.admin_port, "rc4") > before);
    assert_eq!(handshakes(s.sidecar.admin_port, "refused"), 0);

    // Encryption required: the plaintext peer gets nothing, the encrypted one everything.
    let required = seeding_sidecar_with("seed-mse-required", |b| {
        b.set("seeder.encryption", "required")
    });
    let f = fixture(
        "seed-mse-required",
        required.sidecar.port,
        1024 * 1024 + 3,
        412,
    );
    let plain = lt_client(&[
        "download",
        f.torrent.to_str().unwrap(),
        f.dir.join("plain").to_str().unwrap(),
        "8",
    ]);
    assert_eq!(plain["finished"], false, "{plain}");
    assert!(handshakes(required.sidecar.admin_port, "refused") >= 1);
    assert_eq!(handshakes(required.sidecar.admin_port, "plaintext"), 0);
    let save = f.dir.join("lt-required");
    let out = lt_client_with(
        &[("LT_ENCRYPTION", "rc4")],
        &[
            "download",
            f.torrent.to_str().unwrap(),
            save.to_str().unwrap(),
            "60",
        ],
    );
    assert_eq!(out["finished"], true, "{out}");
    f.assert_downloaded_in(&save, "libtorrent");

    // Plaintext only: an encrypted peer is refused.
    let plaintext =
        seeding_sidecar_with("seed-mse-off", |b| b.set("seeder.encryption", "plaintext"));
    let f = fixture("seed-mse-off", plaintext.sidecar.port, 1024 * 1024 + 5, 413);
    let out = lt_client_with(
        &[("LT_ENCRYPTION", "rc4")],
        &[
            "download",
            f.torrent.to_str().unwrap(),
            f.dir.join("enc").to_str().unwrap(),
            "8",
        ],
    );
    assert_eq!(out["finished"], false, "{out}");
    assert!(handshakes(plaintext.sidecar.admin_port, "refused") >= 1);
}

/// What an unauthenticated connection can do with the encrypted handshake: a public key
/// then noise is cut off at once, once PadA's bound has passed; one that stops
/// mid-handshake is cut off at the handshake timeout; both count as refused and hold no
/// peer slot afterwards.
#[test]
fn mse_noise_and_stalls_are_cut_off() {
    let s = seeding_sidecar("seed-mse-hostile");
    let started = std::time::Instant::now();
    let mut noise = TcpStream::connect(("127.0.0.1", s.seeder_port)).unwrap();
    noise
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut key = vec![0u8; 96];
    key[0] = 0x5a;
    key[95] = 7;
    noise.write_all(&key).unwrap();
    // The seeder's own key comes back at once, then noise gets the connection closed.
    let mut theirs = [0u8; 96];
    noise.read_exact(&mut theirs).unwrap();
    let _ = noise.write_all(&test_data(2048, 415));
    assert!(hung_up(&mut noise), "noise is cut off");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "at once, not at a timeout"
    );

    let mut stalled = TcpStream::connect(("127.0.0.1", s.seeder_port)).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stalled.write_all(&key[..60]).unwrap();
    let started = std::time::Instant::now();
    assert!(hung_up(&mut stalled), "a stalled handshake is cut off");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(8) && waited < Duration::from_secs(14),
        "{waited:?}"
    );

    // Both are counted as their connections end, just after they close: a moment later.
    let refused = "s3torrent_seeder_handshakes_total{kind=\"refused\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let m = loop {
        let m = request(s.sidecar.admin_port, "GET", "/metrics", &[]).text();
        let counted = metric(&m, refused) == 2 && metric(&m, "s3torrent_seeder_peers") == 0;
        if counted || std::time::Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(metric(&m, refused), 2, "{m}");
    assert_eq!(metric(&m, "s3torrent_seeder_peers"), 0);
}

/// Transmission 3.00 discards tracker peers in 127.0.0.0/8, so it runs in a network
/// namespace of the test's own and finds the seeder at the host's address on a veth pair.
/// It downloads from the seeder alone with encryption required (`-er`: MSE with RC4) and
/// preferring plaintext (`-et`), and the seeder's counters say which handshakes were made.
#[test]
fn transmission_downloads_from_the_seeder_encrypted_or_not() {
    let ns = crate::harness::netns::Netns::create();
    let [port, admin, seeder] = free_ports(3)[..] else {
        unreachable!()
    };
    let s = sidecar("seed-transmission")
        .tracker()
        .listening_on(port, admin)
        .set("server.listen", format!("0.0.0.0:{port}"))
        .set(
            "tracker.public_url",
            format!("http://{}:{port}/_s3torrent/announce", ns.host_ip),
        )
        .set("tracker.interval", 2)
        .set("seeder.enabled", true)
        .set("seeder.listen", format!("0.0.0.0:{seeder}"))
        .set("seeder.public_addr", format!("{}:{seeder}", ns.host_ip))
        .start();
    wait_for_port(seeder, "seeder", &s.log);
    let handshakes = |kind: &str| {
        let m = request(s.admin_port, "GET", "/metrics", &[]).text();
        metric(
            &m,
            &format!("s3torrent_seeder_handshakes_total{{kind=\"{kind}\"}}"),
        )
    };
    let f = fixture("seed-transmission", port, 2 * 1024 * 1024 + 17, 414);
    let torrent = s3torrent::torrent::bencode::decode(&std::fs::read(&f.torrent).unwrap()).unwrap();
    assert!(torrent.get("url-list").is_none(), "no web seed");
    // With µTP on (its default) Transmission dials the seeder over µTP first and, with no
    // answer on UDP, did not fall back to TCP within 400 s here: µTP off, it dials TCP.
    let tcp = Some(r#"{"utp-enabled": false}"#);
    let transmission = || ns.command("transmission-cli");
    transmission_downloads_in(&f, &["-er"], transmission(), "required", tcp);
    assert!(handshakes("rc4") >= 1, "encrypted");
    let before = handshakes("plaintext") + handshakes("rc4");
    transmission_downloads_in(&f, &["-et"], transmission(), "tolerated", tcp);
    assert!(handshakes("plaintext") + handshakes("rc4") > before);
    assert_eq!(handshakes("refused"), 0);
}

/// On a backend without anonymous reads (Garage) no object is public, so the default
/// (`objects = "public"`) seeds nothing, not even what the other backends would; an operator
/// who accepts the trust model seeds with `objects = "all"`, and libtorrent then gets the
/// bytes from the seeder alone.
#[test]
fn without_anonymous_reads_only_objects_all_seeds() {
    let env = garage();
    let public = seeding_sidecar_on(env, "seed-garage-public", |b| b);
    let f = fixture_on(
        env,
        "seed-garage-public",
        public.sidecar.port,
        1024 * 1024 + 5,
        409,
    );
    std::thread::sleep(Duration::from_millis(500)); // the background anonymous check
    let hash = crate::harness::torrent_info_hash(&std::fs::read(&f.torrent).unwrap());
    assert!(
        handshake(public.seeder_port, hash).is_none(),
        "nothing is public on Garage: not seeded"
    );

    let all = seeding_sidecar_on(env, "seed-garage-all", |b| b.set("seeder.objects", "all"));
    let f = fixture_on(
        env,
        "seed-garage-all",
        all.sidecar.port,
        2 * 1024 * 1024 + 5,
        410,
    );
    libtorrent_gets(f.torrent.to_str().unwrap(), &f, "lt");
    let metrics = request(all.sidecar.admin_port, "GET", "/metrics", &[]).text();
    let uploaded = metric(&metrics, "s3torrent_seeder_uploaded_bytes_total");
    assert!(uploaded >= f.data.len() as u64, "{uploaded}");
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

/// Sends a handshake for `info_hash`: the connection, if the seeder answered it.
fn handshake(port: u16, info_hash: [u8; 20]) -> Option<RawPeer> {
    RawPeer::connect(port, info_hash)
}

#[test]
fn hostile_peers_hurt_nobody_else() {
    let s = seeding_sidecar("seed-hostile");
    let f = fixture("seed-hostile", s.sidecar.port, 2 * 1024 * 1024, 408);
    let hash = crate::harness::torrent_info_hash(&std::fs::read(&f.torrent).unwrap());
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
    let before = crate::harness::rss_kib(s.sidecar.pid);
    // Meanwhile a real client gets the object.
    libtorrent_gets(f.torrent.to_str().unwrap(), &f, "lt");
    let grown = crate::harness::rss_kib(s.sidecar.pid).saturating_sub(before) / 1024;
    assert!(grown < 64, "RSS grew {grown} MiB");
    drop(slow_readers);
}

/// BEP 52 as an attacker uses it: hash requests on a v1 connection, for block hashes or
/// outside the tree get a reject; a valid one gets exactly the torrent's piece layer; a
/// peer that asks for hashes and never reads them is cut off at the output bound.
#[test]
fn hash_requests_are_answered_exactly_and_floods_are_cut_off() {
    let s = seeding_sidecar_with("seed-hashes", |b| {
        b.set("torrent.format", "hybrid")
            .set("torrent.piece_length", 32 * 1024)
    });
    let f = fixture("seed-hashes", s.sidecar.port, 97 * 32 * 1024 - 5000, 422);
    let torrent = s3torrent::torrent::bencode::decode(&std::fs::read(&f.torrent).unwrap()).unwrap();
    let info = torrent.get("info").unwrap().encode();
    let v1: [u8; 20] = sha1::Sha1::digest(&info).into();
    let v2: [u8; 20] = sha2::Sha256::digest(&info)[..20].try_into().unwrap();
    let layers = torrent.get("piece layers").unwrap();
    let s3torrent::torrent::bencode::Value::Dict(layers) = layers else {
        panic!("piece layers")
    };
    let (root, layer) = layers.iter().next().unwrap();
    let layer = layer.as_bytes().unwrap().to_vec();
    assert_eq!(layer.len(), 97 * 32);
    // root, base, index, count, proof layers
    let ask = |base: u32, index: u32, count: u32, proof: u32| {
        let mut b = root.clone();
        for v in [base, index, count, proof] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b
    };
    // The piece layer is layer 1 (32 KiB pieces, 16 KiB blocks), 128 wide.
    let answer = |peer: &mut RawPeer, body: &[u8]| {
        peer.send(21, body).unwrap();
        loop {
            let (id, back) = peer.read().expect("an answer");
            if id == 22 || id == 23 {
                assert_eq!(back[..48], body[..], "the answer names the request");
                return (id, back[48..].to_vec());
            }
        }
    };
    let mut plain = RawPeer::connect(s.seeder_port, v1).expect("v1 connection");
    assert_eq!(answer(&mut plain, &ask(1, 0, 128, 0)).0, 23, "v1: reject");
    let mut peer = RawPeer::connect_v2(s.seeder_port, v2).expect("v2 connection");
    let (id, hashes) = answer(&mut peer, &ask(1, 0, 128, 0));
    assert_eq!((id, hashes.len()), (22, 128 * 32));
    assert_eq!(
        hashes[..97 * 32],
        layer[..],
        "the torrent's own piece layer"
    );
    for bad in [
        ask(0, 0, 2, 0),
        ask(1, 120, 16, 0),
        ask(1, 0, 0, 0),
        ask(1, 0, 128, 7),
    ] {
        assert_eq!(answer(&mut peer, &bad).0, 23, "{bad:?}");
    }
    // The upgrade: the hybrid's v1 id with the v2 bit is answered with the v2 id.
    let mut upgraded = RawPeer::connect_with(s.seeder_port, v1, 0x10).expect("upgraded");
    assert_eq!(upgraded.1, v2, "answered with the v2 id");
    assert_eq!(answer(&mut upgraded, &ask(1, 0, 128, 0)).0, 22);
    // 3000 answers of 4 KiB piling up unread: cut off, not 12 MiB queued.
    let flood: Vec<u8> = (0..3000)
        .flat_map(|_| frame(21, &ask(1, 0, 128, 6)))
        .collect();
    let _ = peer.0.write_all(&flood);
    std::thread::sleep(Duration::from_secs(1));
    assert!(hung_up(&mut peer.0), "a flood of unread hash answers");
    // Others are served meanwhile.
    assert_eq!(answer(&mut upgraded, &ask(1, 64, 64, 1)).0, 22);
}

#[test]
fn the_web_seed_serves_each_piece_of_a_seeded_object_about_once() {
    let s = seeding_sidecar_with("seed-shaping", |b| {
        b.set("seeder.objects", "all")
            .set("seeder.webseed_concurrency", 4)
    });
    let port = s.sidecar.port;
    let dir = env().scratch("seed-shaping");
    let key = "bt/shaped.bin";
    let data = test_data(256 * 1024, 409); // 16 pieces of 16 KiB
    put_object("public", key, &data, &dir);
    let route = format!("/_s3torrent/webseed/public/{key}");
    let range = |r: &str| request(port, "GET", &route, &[("Range", r)]);
    // Before the seeder seeds it, the web seed serves any range.
    assert_eq!(range("bytes=0-16383").status, 206);
    assert_eq!(range("bytes=0-16383").status, 206);
    assert_eq!(
        request(port, "GET", &format!("/public/{key}?torrent"), &[]).status,
        200
    );
    // Seeded: a range with pieces the swarm lacks comes from the origin, once delivered.
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
    // The same object by its S3 URL is ordinary S3: never shaped, whoever asks.
    let path = format!("/public/{key}");
    let plain = request(port, "GET", &path, &[("Range", "bytes=0-16383")]);
    assert_eq!(plain.status, 206);
    assert_eq!(plain.body, data[..16384]);
    let metrics = request(s.sidecar.admin_port, "GET", "/metrics", &[]).text();
    assert_eq!(
        metric(&metrics, "s3torrent_seeder_webseed_deferred_total"),
        2
    );
}

/// What a browser's `<video>` sends: `bytes=0-`, dropped after a few bytes. It once marked
/// every piece as gone, and every ranged read of the object got 503 from then on.
#[test]
fn a_dropped_read_leaves_ordinary_reads_and_the_web_seed_alone() {
    let s = seeding_sidecar_with("seed-dropped", |b| b.set("seeder.objects", "all"));
    let port = s.sidecar.port;
    let dir = env().scratch("seed-dropped");
    let key = "bt/dropped.bin";
    let data = test_data(4 * 1024 * 1024, 424);
    put_object("public", key, &data, &dir);
    assert_eq!(
        request(port, "GET", &format!("/public/{key}?torrent"), &[]).status,
        200
    );
    let route = format!("/_s3torrent/webseed/public/{key}");
    for target in [route.as_str(), &format!("/public/{key}")] {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let head =
            format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nRange: bytes=0-\r\n\r\n");
        c.write_all(head.as_bytes()).unwrap();
        let mut first = [0u8; 10];
        c.read_exact(&mut first).unwrap();
        drop(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let range = [("Range", "bytes=16384-32767")];
    let want = &data[16384..32768];
    // Unsigned, SigV4-presigned and SigV2-presigned ranged reads: the backend's answer.
    let r = request(port, "GET", &format!("/public/{key}"), &range);
    assert_eq!((r.status, r.body.as_slice()), (206, want), "unsigned");
    let base = format!("http://127.0.0.1:{port}");
    for signature in ["s3v4", "default"] {
        let url = s3client_signing(
            &base,
            READER,
            signature,
            &["presign-get", "public", key, "300"],
        );
        let target = url["url"]
            .as_str()
            .unwrap()
            .trim_start_matches(&base)
            .to_string();
        let r = request(port, "GET", &target, &range);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (206, want),
            "{signature}: {}",
            r.text()
        );
    }
    // And the web seed itself: what the dropped read did not deliver is still fresh (it was
    // acknowledged by the client's TCP for at most its receive window, far from the end).
    let tail = data.len() - 16384;
    let r = request(port, "GET", &route, &[("Range", &format!("bytes={tail}-"))]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &data[tail..]),
        "web seed"
    );
}

/// Two web-seed readers that never read once held both of an object's slots for as long as
/// they kept the connection open. A slot (and the pieces it reserves) now lapses.
#[test]
fn slow_web_seed_readers_hold_their_slots_only_for_a_while() {
    web_seed_readers_that_stop_reading_give_their_slots_back(3, Duration::from_secs(3));
}

/// With the default slot term (30 s), two `Range` requests that read nothing held every
/// other web-seed request for the object off with 503 for the whole term: slots now go to
/// clients that read, and a response that has not moved for 5 s holds nothing.
#[test]
fn web_seed_slots_go_to_clients_that_read() {
    web_seed_readers_that_stop_reading_give_their_slots_back(30, Duration::from_secs(7));
}

fn web_seed_readers_that_stop_reading_give_their_slots_back(ttl: i64, wait: Duration) {
    let name = format!("seed-slow-ws-{ttl}");
    let s = seeding_sidecar_with(&name, |b| {
        b.set("seeder.objects", "all")
            .set("seeder.webseed_slot_ttl", ttl)
    });
    let port = s.sidecar.port;
    let dir = env().scratch(&name);
    let key = &format!("bt/slow-ws-{ttl}.bin");
    let mib = 1024 * 1024;
    // Reads far larger than kernel buffers, so the responses stay under way.
    let data = test_data(32 * mib, 426);
    put_object("public", key, &data, &dir);
    let r = request(port, "GET", &format!("/public/{key}?torrent"), &[]);
    assert_eq!(r.status, 200);
    let route = format!("/_s3torrent/webseed/public/{key}");
    let slow: Vec<TcpStream> = [(0, 12 * mib - 1), (12 * mib, 24 * mib - 1)]
        .iter()
        .map(|(first, last)| {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let head = format!(
                "GET {route} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nRange: bytes={first}-{last}\r\n\r\n"
            );
            c.write_all(head.as_bytes()).unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let at = 28 * mib;
    let range = format!("bytes={at}-{}", at + 16383);
    let third = [("Range", range.as_str())];
    let r = request(port, "GET", &route, &third);
    assert_eq!(r.status, 503, "both slots are held");
    std::thread::sleep(wait);
    let r = request(port, "GET", &route, &third);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &data[at..at + 16384]),
        "the slots lapsed"
    );
    drop(slow);
}

#[test]
fn the_seed_is_announced_to_external_trackers_when_configured() {
    // Tracker: another sidecar's built-in tracker, which knows the torrent once it served it
    // (torrents are deterministic: the same object gives the same infohash on both).
    let tracker = sidecar("ext-tracker").tracker().start();
    let announce = format!("http://127.0.0.1:{}/_s3torrent/announce", tracker.port);
    let seeder_port = free_ports(1)[0];
    let seeder = sidecar("ext-seeder")
        .set("torrent.announce", vec![vec![announce.as_str()]])
        .set("seeder.enabled", true)
        .set("seeder.listen", format!("127.0.0.1:{seeder_port}"))
        .set("seeder.announce_external", true)
        .start();
    let dir = env().scratch("ext-announce");
    put_object("public", "bt/ext.bin", &test_data(40_000, 410), &dir);
    let from_tracker = request(tracker.port, "GET", "/public/bt/ext.bin?torrent", &[]);
    let from_seeder = request(seeder.port, "GET", "/public/bt/ext.bin?torrent", &[]);
    let hash = crate::harness::torrent_info_hash(&from_tracker.body);
    assert_eq!(hash, crate::harness::torrent_info_hash(&from_seeder.body));
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

/// A peer of our own making, for what real clients never send; and the infohash the seeder
/// answered its handshake with.
struct RawPeer(TcpStream, [u8; 20]);

impl RawPeer {
    /// Connects and handshakes (fast and extension bits set); `None` if the seeder refuses.
    fn connect(port: u16, info_hash: [u8; 20]) -> Option<RawPeer> {
        Self::connect_with(port, info_hash, 0)
    }

    /// As [`RawPeer::connect`] by a v2 id (BEP 52: the v2 bit set as well).
    fn connect_v2(port: u16, info_hash: [u8; 20]) -> Option<RawPeer> {
        Self::connect_with(port, info_hash, 0x10)
    }

    /// As [`RawPeer::connect`], with more bits in the last reserved byte.
    fn connect_with(port: u16, info_hash: [u8; 20], bits: u8) -> Option<RawPeer> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut h = vec![19u8];
        h.extend_from_slice(b"BitTorrent protocol");
        h.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x04 | bits]);
        h.extend_from_slice(&info_hash);
        h.extend_from_slice(b"-XX0001-rawpeer00000");
        s.write_all(&h).ok()?;
        let mut back = [0u8; 68];
        s.read_exact(&mut back).ok()?;
        Some(RawPeer(s, back[28..48].try_into().unwrap()))
    }

    fn send(&mut self, id: u8, body: &[u8]) -> std::io::Result<()> {
        self.0.write_all(&frame(id, body))
    }

    fn request(&mut self, index: u32, begin: u32, length: u32) -> std::io::Result<()> {
        let mut b = index.to_be_bytes().to_vec();
        b.extend_from_slice(&begin.to_be_bytes());
        b.extend_from_slice(&length.to_be_bytes());
        self.send(6, &b)
    }

    /// The next message (id, body), keep-alives skipped; `None` once the seeder hung up.
    fn read(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            let mut len = [0u8; 4];
            self.0.read_exact(&mut len).ok()?;
            let len = u32::from_be_bytes(len) as usize;
            if len == 0 {
                continue;
            }
            let mut body = vec![0u8; len];
            self.0.read_exact(&mut body).ok()?;
            return Some((body[0], body[1..].to_vec()));
        }
    }

    /// Reads until message `id`, noting the pieces shown (`have`) on the way.
    fn until(&mut self, id: u8, shown: &mut Vec<u32>) -> Option<Vec<u8>> {
        loop {
            let (got, body) = self.read()?;
            if got == 4 {
                shown.push(u32::from_be_bytes(body[..4].try_into().unwrap()));
            }
            if got == id {
                return Some(body);
            }
        }
    }

    /// Interested, then unchoked: the pieces shown so far.
    fn unchoked(&mut self) -> Vec<u32> {
        let mut shown = Vec::new();
        self.send(2, &[]).unwrap();
        self.until(1, &mut shown).expect("unchoked");
        shown
    }
}

fn frame(id: u8, body: &[u8]) -> Vec<u8> {
    let mut m = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    m.push(id);
    m.extend_from_slice(body);
    m
}

/// 16 KiB pieces, as the probes that found these defects used.
fn small_piece_seeder(name: &str) -> SeedingSidecar {
    seeding_sidecar_with(name, |b| b.set("torrent.piece_length", 16384))
}

/// One `ut_metadata` request costs the seeder a 16 KiB copy: a peer sending thousands and
/// reading nothing is held to a few, and cut off if it lets output pile up.
#[test]
fn metadata_floods_from_peers_that_never_read_stay_bounded() {
    let s = small_piece_seeder("seed-metadata-flood");
    // 1024 pieces: `info` is 20 KiB, so metadata piece 0 is a whole 16 KiB.
    let f = fixture("seed-metadata-flood", s.sidecar.port, 16 * 1024 * 1024, 420);
    let hash = crate::harness::torrent_info_hash(&std::fs::read(&f.torrent).unwrap());
    let honest = fixture("seed-metadata-honest", s.sidecar.port, 2 * 1024 * 1024, 421);
    let before = crate::harness::rss_kib(s.sidecar.pid);
    let request = frame(
        20,
        &[[1u8].as_slice(), b"d8:msg_typei0e5:piecei0ee"].concat(),
    );
    let flood: Vec<u8> = std::iter::repeat_n(request, 2000).flatten().collect();
    let mut floods = Vec::new();
    for _ in 0..8 {
        let mut p = RawPeer::connect(s.seeder_port, hash).expect("handshake");
        p.send(
            20,
            &[[0u8].as_slice(), b"d1:md11:ut_metadatai3eee"].concat(),
        )
        .unwrap();
        let _ = p.0.write_all(&flood);
        floods.push(p);
    }
    std::thread::sleep(Duration::from_secs(2));
    libtorrent_gets(honest.torrent.to_str().unwrap(), &honest, "lt");
    let grown = crate::harness::rss_kib(s.sidecar.pid).saturating_sub(before) / 1024;
    eprintln!("8 metadata floods beside libtorrent: RSS grew {grown} MiB");
    assert!(grown < 24, "8 metadata floods grew RSS by {grown} MiB");
    drop(floods);
}

fn backend_bytes(s: &SeedingSidecar) -> u64 {
    let m = request(s.sidecar.admin_port, "GET", "/metrics", &[]).text();
    metric(&m, "s3torrent_seeder_backend_bytes_total")
}

/// A peer may fetch only what it was shown, in blocks of 16 KiB (or a piece's last): tiny
/// or unoffered requests end the connection before the backend is asked for anything.
#[test]
fn tiny_and_unoffered_requests_read_nothing_from_the_backend() {
    let s = small_piece_seeder("seed-tiny");
    let f = fixture("seed-tiny", s.sidecar.port, 1024 * 1024, 422);
    let hash = crate::harness::torrent_info_hash(&std::fs::read(&f.torrent).unwrap());
    let before = backend_bytes(&s);
    // 40 one-byte requests, each for another piece.
    let mut p = RawPeer::connect(s.seeder_port, hash).expect("handshake");
    let shown = p.unchoked();
    assert!(!shown.is_empty(), "pieces are shown");
    for i in 0..40 {
        let _ = p.request(shown.get(i).copied().unwrap_or(i as u32), 0, 1);
    }
    assert!(hung_up(&mut p.0), "tiny requests end the connection");
    // A whole block of a piece it was not shown.
    let mut p = RawPeer::connect(s.seeder_port, hash).expect("handshake");
    let shown = p.unchoked();
    let hidden = (0..64).find(|i| !shown.contains(i)).unwrap();
    let _ = p.request(hidden, 0, 16384);
    assert!(hung_up(&mut p.0), "an unoffered piece ends the connection");
    let read = backend_bytes(&s) - before;
    eprintln!("40 one-byte requests and one unoffered: {read} backend bytes");
    assert_eq!(read, 0, "nothing was read from the backend");
    // What it was shown it gets, read once.
    let mut p = RawPeer::connect(s.seeder_port, hash).expect("handshake");
    let shown = p.unchoked();
    p.request(shown[0], 0, 16384).unwrap();
    let piece = p.until(7, &mut Vec::new()).expect("the block");
    let at = shown[0] as usize * 16384;
    assert_eq!(&piece[8..], &f.data[at..at + 16384]);
    assert_eq!(backend_bytes(&s) - before, 16384);
}

/// A peer claiming every piece (a lying bitfield) once made every piece look spread, so an
/// honest newcomer was shown nothing and stalled. It completes now.
#[test]
fn a_lying_bitfield_does_not_stall_an_honest_peer() {
    // It stalled at 127 of 128 pieces now and then under load: the last piece was shown
    // once the peer had all others, and libtorrent dropped the seeder (see
    // `a_peer_lacking_only_the_last_piece_shown_is_not_dropped`). The peer log is shown if
    // it stalls again.
    let s = seeding_sidecar_with("seed-liar", |b| {
        b.set("torrent.piece_length", 16384)
            .logging("warn,s3torrent::seeder=debug")
    });
    let f = fixture("seed-liar", s.sidecar.port, 2 * 1024 * 1024, 423);
    let hash = crate::harness::torrent_info_hash(&std::fs::read(&f.torrent).unwrap());
    // Every piece leaves the origin once: a first peer takes it all, and goes.
    libtorrent_gets(f.torrent.to_str().unwrap(), &f, "first");
    let mut liar = RawPeer::connect(s.seeder_port, hash).expect("handshake");
    liar.send(5, &[0xff; 16]).unwrap(); // 128 pieces, all "had"
    std::thread::sleep(Duration::from_millis(500));
    libtorrent_gets_or_shows_log(&s, &f, &f.dir.join("second"), "60");
    drop(liar);
}

/// libtorrent downloads `f` into `save` within `secs` and gets the object's bytes; if it
/// stalls, the seeder's log (last lines first) is shown with its report.
fn libtorrent_gets_or_shows_log(s: &SeedingSidecar, f: &Fixture, save: &Path, secs: &str) {
    let torrent = f.torrent.to_str().unwrap();
    let out = lt_client(&["download", torrent, save.to_str().unwrap(), secs]);
    if out["finished"] != true {
        let log = std::fs::read_to_string(&s.sidecar.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(80).collect();
        panic!("{out}\nseeder log, last lines first:\n{}", tail.join("\n"));
    }
    assert_eq!(out["hash_failures"], 0, "{out}");
    assert_downloaded(&save.join(&f.name), &f.data, "libtorrent");
}

/// libtorrent 2.0 drops a peer whose `have` makes it a seed while it is not interested in
/// it (`uninteresting_upload_peer`: checked before its interest is updated), and does not
/// come back within a minute. A peer holding every piece but the one the seeder shows last
/// is in that state when it is shown: here the last because another peer claims it (the
/// pieces fewest peers have are shown first). It was dropped at once, and stalled.
#[test]
fn a_peer_lacking_only_the_last_piece_shown_is_not_dropped() {
    const PIECE: usize = 16384;
    let s = seeding_sidecar_with("seed-last", |b| {
        b.set("torrent.piece_length", PIECE as i64)
            .logging("warn,s3torrent::seeder=debug")
    });
    let f = fixture("seed-last", s.sidecar.port, 5 * PIECE - 100, 426);
    let hash = crate::harness::torrent_info_hash(&std::fs::read(&f.torrent).unwrap());
    let mut claims_last = RawPeer::connect(s.seeder_port, hash).expect("handshake");
    claims_last.send(5, &[0b0000_1000]).unwrap(); // piece 4 of 5
    let save = f.dir.join("lacks-last");
    std::fs::create_dir_all(&save).unwrap();
    let mut partial = f.data.clone();
    partial[4 * PIECE] ^= 0xff;
    std::fs::write(save.join(&f.name), &partial).unwrap();
    libtorrent_gets_or_shows_log(&s, &f, &save, "30");
    drop(claims_last);
}

/// "Public" means anyone: the check that decides it carries no caller's address (a policy
/// on `aws:SourceIp` would otherwise make an object public to one caller public to all).
#[test]
fn the_public_check_carries_no_callers_address() {
    let (fake, heads) = recording_backend();
    let seeder_port = free_ports(1)[0];
    let s = sidecar("seed-public-xff")
        .backend_port(fake)
        .set("seeder.enabled", true)
        .set("seeder.listen", format!("127.0.0.1:{seeder_port}"))
        .start();
    wait_for_port(seeder_port, "seeder", &s.log);
    let r = request(s.port, "GET", "/b/public.bin?torrent", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let hash = crate::harness::torrent_info_hash(&r.body);
    assert!(handshake(seeder_port, hash).is_some(), "seeded");
    let heads = heads.lock().unwrap();
    let probes: Vec<&String> = heads
        .iter()
        .filter(|h| h.contains("range: bytes=0-0"))
        .collect();
    assert!(
        probes.iter().any(|h| h.contains("x-forwarded-for")),
        "the caller's own check names it: {probes:?}"
    );
    assert!(
        probes.iter().any(|h| !h.contains("x-forwarded-for")
            && !h.contains("forwarded:")
            && !h.contains("authorization")),
        "the public check names nobody: {probes:?}"
    );
}

/// An object made private stops being seeded within `seeder.public_recheck`: on Ceph RGW,
/// by a bucket policy that no longer lets anyone read it.
#[test]
fn an_object_made_private_is_no_longer_seeded() {
    let ceph = crate::harness::ceph();
    let backend = ceph.backend_url();
    assert!(s3client(&backend, ADMIN, &["mkbucket", "recheck"])
        .get("error")
        .is_none());
    assert!(s3client(&backend, ADMIN, &["policy", "recheck", "public"])
        .get("error")
        .is_none());
    let s = seeding_sidecar_on(ceph, "seed-recheck", |b| b.set("seeder.public_recheck", 2));
    let dir = ceph.scratch("seed-recheck");
    ceph.put_object("recheck", "was-public.bin", &test_data(100_000, 425), &dir);
    let r = request(
        s.sidecar.port,
        "GET",
        "/recheck/was-public.bin?torrent",
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let hash = crate::harness::torrent_info_hash(&r.body);
    assert!(
        handshake(s.seeder_port, hash).is_some(),
        "seeded while public"
    );
    assert!(s3client(&backend, ADMIN, &["policy", "recheck", "reader"])
        .get("error")
        .is_none());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while handshake(s.seeder_port, hash).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "still seeded 15 s after it was made private"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        request(
            s.sidecar.port,
            "GET",
            "/recheck/was-public.bin?torrent",
            &[]
        )
        .status,
        403,
        "and anonymous callers get no torrent"
    );
}

/// A connection that sent its handshake for `hash` and has not read the answer; reads time
/// out after 2 s.
fn handshake_unanswered(port: u16, hash: [u8; 20], peer_id: &[u8; 20]) -> TcpStream {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut h = vec![19u8];
    h.extend_from_slice(b"BitTorrent protocol");
    h.extend_from_slice(&[0u8; 8]);
    h.extend_from_slice(&hash);
    h.extend_from_slice(peer_id);
    c.write_all(&h).unwrap();
    c
}

/// Peers past `seeder.max_peers` are not accepted (they wait in the backlog, costing the
/// sidecar nothing) and get in when a peer leaves.
#[test]
fn peers_past_max_peers_wait_unaccepted_and_get_in_when_one_leaves() {
    let s = seeding_sidecar_with("seed-max-peers", |b| b.set("seeder.max_peers", 2));
    let f = fixture("seed-max-peers", s.sidecar.port, 100_000, 430);
    let hash = torrent_info_hash(&std::fs::read(&f.torrent).unwrap());
    let first = RawPeer::connect(s.seeder_port, hash).expect("first peer");
    let _second = RawPeer::connect(s.seeder_port, hash).expect("second peer");
    // The third connects (the kernel's backlog) but nobody reads its handshake.
    let mut third = handshake_unanswered(s.seeder_port, hash, b"-XX0001-thirdpeer000");
    let mut back = [0u8; 68];
    assert!(
        third.read_exact(&mut back).is_err(),
        "a third peer was served"
    );
    let m = request(s.sidecar.admin_port, "GET", "/metrics", &[]).text();
    assert_eq!(metric(&m, "s3torrent_seeder_peers"), 2);
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    third.read_exact(&mut back).expect("in once a slot is free");
    assert_eq!(&back[28..48], &hash);
}

/// Out of file descriptors, `accept` fails: the seeder waits a moment before it tries again
/// instead of spinning on the core.
#[test]
fn a_failing_accept_does_not_spin() {
    let seeder_port = free_ports(1)[0];
    let builder = sidecar("seed-emfile")
        .set("seeder.enabled", true)
        .set("seeder.listen", format!("127.0.0.1:{seeder_port}"));
    let s = builder.start();
    wait_for_port(seeder_port, "seeder", &s.log);
    // Lower the running sidecar's (soft) descriptor limit to what it has open now, plus a
    // few.
    let open = std::fs::read_dir(format!("/proc/{}/fd", s.pid))
        .unwrap()
        .count();
    let limit = open + 4;
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &s.pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .unwrap();
    assert!(status.success(), "prlimit");
    let conns: Vec<TcpStream> = (0..20)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", seeder_port)).ok())
        .collect();
    assert!(conns.len() >= 10, "the backlog took {}", conns.len());
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", s.pid)).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        // utime and stime, in clock ticks (100 per second here).
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu();
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu() - before;
    println!("3 s with accept failing: {used} ticks of CPU");
    assert!(
        used < 15,
        "{used} ticks of CPU in 3 s: the accept loop spins"
    );
    // Hung up: the few accepted connections close, leaving a descriptor for the metrics.
    drop(conns);
    std::thread::sleep(Duration::from_millis(500));
    let m = request(s.admin_port, "GET", "/metrics", &[]).text();
    assert!(
        metric(&m, "s3torrent_seeder_accept_errors_total") >= 1,
        "{m}"
    );
}

/// A peer is still heard while its piece comes from a slow backend: a `cancel` sent
/// meanwhile is honored (the cancelled block is never sent) and its next request is served.
#[test]
fn a_cancel_during_a_slow_backend_read_is_honored() {
    const LEN: usize = 256 * 1024;
    let data = std::sync::Arc::new(test_data(LEN, 9));
    let served = data.clone();
    let backend = fake_backend(move |head, out| {
        if is_probe(head) {
            return out.write_all(&probe_answer("\"sl\"", LEN)).is_ok();
        }
        let lower = head.to_ascii_lowercase();
        let range = lower
            .split("\r\n")
            .find_map(|l| l.strip_prefix("range: bytes="));
        let (first, last) = match range.and_then(|r| r.split_once('-')) {
            Some((a, b)) => (a.parse().unwrap(), b.trim().parse::<usize>().unwrap()),
            None => (0, LEN - 1),
        };
        // The seeder's piece reads (ranged) are slow; the generation's whole read is not.
        let status = match range {
            Some(_) => {
                std::thread::sleep(Duration::from_secs(2));
                format!("206 Partial Content\r\nContent-Range: bytes {first}-{last}/{LEN}")
            }
            None => "200 OK".to_string(),
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\nETag: \"sl\"\r\nContent-Length: {}\r\n\r\n",
            last + 1 - first
        );
        out.write_all(answer.as_bytes()).is_ok() && out.write_all(&served[first..=last]).is_ok()
    });
    let s = seeding_sidecar_with("seed-cancel", |b| {
        b.backend_port(backend)
            .set("torrent.piece_length", 16384)
            .set("seeder.objects", "all")
    });
    let r = request(s.sidecar.port, "GET", "/b/slow.bin?torrent", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let hash = torrent_info_hash(&r.body);
    let mut peer = RawPeer::connect(s.seeder_port, hash).expect("a peer");
    let shown = peer.unchoked();
    assert!(shown.len() >= 2, "{shown:?}");
    let block = |index: u32| {
        let mut b = index.to_be_bytes().to_vec();
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&16384u32.to_be_bytes());
        b
    };
    peer.request(shown[0], 0, 16384).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    peer.send(8, &block(shown[0])).unwrap(); // cancel
    peer.request(shown[1], 0, 16384).unwrap();
    let piece = peer.until(7, &mut Vec::new()).expect("a piece");
    let index = u32::from_be_bytes(piece[..4].try_into().unwrap());
    assert_eq!(index, shown[1], "the cancelled piece was sent first");
    let at = shown[1] as usize * 16384;
    assert_eq!(&piece[8..], &data[at..at + 16384]);
}

/// On SIGTERM the seeder stops accepting and closes its peers at once, while the proxy
/// still drains an S3 request in flight.
#[test]
fn sigterm_closes_the_seeders_peers_while_requests_drain() {
    const LEN: usize = 2 * 1024 * 1024;
    let backend = fake_backend(|line, out| {
        if is_probe(line) {
            return out.write_all(&probe_answer("\"sd\"", LEN)).is_ok();
        }
        let head = format!("HTTP/1.1 200 OK\r\nETag: \"sd\"\r\nContent-Length: {LEN}\r\n\r\n");
        if out.write_all(head.as_bytes()).is_err() {
            return false;
        }
        let slow = line.contains("slow.bin") && !line.contains("torrent");
        for chunk in test_data(LEN, 8).chunks(LEN / 40) {
            if slow {
                std::thread::sleep(Duration::from_millis(200));
            }
            if out.write_all(chunk).is_err() {
                return false;
            }
        }
        true
    });
    let seeder_port = free_ports(1)[0];
    let s = sidecar("seed-sigterm")
        .backend_port(backend)
        .set("server.grace_period", 20)
        .set("seeder.enabled", true)
        .set("seeder.objects", "all")
        .set("seeder.listen", format!("127.0.0.1:{seeder_port}"))
        .start();
    wait_for_port(seeder_port, "seeder", &s.log);
    let r = request(s.port, "GET", "/b/obj.bin?torrent", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let hash = torrent_info_hash(&r.body);
    let mut peer = RawPeer::connect(seeder_port, hash).expect("a peer");
    let port = s.port;
    let in_flight = std::thread::spawn(move || request(port, "GET", "/b/slow.bin", &[]));
    std::thread::sleep(Duration::from_millis(500));
    let sent = std::time::Instant::now();
    unsafe { libc::kill(s.pid as i32, libc::SIGTERM) };
    while peer.read().is_some() {}
    let closed = sent.elapsed();
    let alive = std::path::Path::new(&format!("/proc/{}", s.pid)).exists();
    println!("peer closed {closed:?} after SIGTERM; sidecar still draining: {alive}");
    assert!(
        closed < Duration::from_secs(3),
        "the peer stayed {closed:?}"
    );
    assert!(
        alive,
        "the sidecar had already exited: the check proves nothing"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", seeder_port)).is_err(),
        "the seeder still accepts"
    );
    assert_eq!(
        in_flight.join().unwrap().body.len(),
        LEN,
        "the drain finished it"
    );
}

/// One address holds at most `seeder.max_peers_per_address` connections: past it a
/// connection is closed at once, whatever it sends, and the seeder's other slots stay free.
/// Before, 200 handshaken connections from one address locked every other peer out.
#[test]
fn one_address_holds_at_most_its_share_of_the_seeder() {
    let s = seeding_sidecar_with("seed-per-address", |b| {
        b.set("seeder.max_peers_per_address", 3)
    });
    let f = fixture("seed-per-address", s.sidecar.port, 100_000, 431);
    let hash = torrent_info_hash(&std::fs::read(&f.torrent).unwrap());
    let held: Vec<RawPeer> = (0..3)
        .map(|_| RawPeer::connect(s.seeder_port, hash).expect("within its share"))
        .collect();
    for _ in 0..5 {
        assert!(
            RawPeer::connect(s.seeder_port, hash).is_none(),
            "a fourth connection from one address was served"
        );
    }
    let m = request(s.sidecar.admin_port, "GET", "/metrics", &[]).text();
    assert_eq!(
        metric(
            &m,
            "s3torrent_seeder_refused_peers_total{reason=\"address\"}"
        ),
        5
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        RawPeer::connect(s.seeder_port, hash).is_some(),
        "its share is given back"
    );
}

/// Peers that hold a slot and take nothing (keep-alives alone) make room when a peer finds
/// every slot taken: the waiting peer gets in within about `TAKES_NOTHING` (20 s). Before,
/// it waited until the idle peers went quiet for 180 s, and with keep-alives forever.
#[test]
fn peers_that_take_nothing_make_room_when_slots_are_short() {
    let s = seeding_sidecar_with("seed-idle-slots", |b| b.set("seeder.max_peers", 3));
    let f = fixture("seed-idle-slots", s.sidecar.port, 100_000, 432);
    let hash = torrent_info_hash(&std::fs::read(&f.torrent).unwrap());
    let mut idle: Vec<RawPeer> = (0..3)
        .map(|_| RawPeer::connect(s.seeder_port, hash).expect("a slot"))
        .collect();
    let started = std::time::Instant::now();
    let mut waiting = handshake_unanswered(s.seeder_port, hash, b"-XX0001-waitingpeer0");
    let mut back = [0u8; 68];
    let served = loop {
        // The idle peers keep their connections alive, as a real client's would.
        for p in &mut idle {
            let _ = p.0.write_all(&[0, 0, 0, 0]);
        }
        if waiting.read_exact(&mut back).is_ok() {
            break true;
        }
        if started.elapsed() > Duration::from_secs(60) {
            break false;
        }
    };
    assert!(served, "the waiting peer never got a slot");
    assert_eq!(&back[28..48], &hash);
    println!(
        "a waiting peer got a slot after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let m = request(s.sidecar.admin_port, "GET", "/metrics", &[]).text();
    assert!(metric(&m, "s3torrent_seeder_refused_peers_total{reason=\"idle\"}") >= 1);
}

/// A peer that answers every `have` with the same `have` (claiming each piece the moment it
/// is shown) earns at most a tick's budget of reveals, each a scan of the torrent's pieces;
/// before, it was shown every piece at once, the seeder scanning all of them per piece
/// (10,240 pieces: 0.30 CPU-s per connection).
#[test]
fn a_peer_echoing_every_have_is_shown_pieces_at_a_bounded_rate() {
    let s = small_piece_seeder("seed-echo");
    let f = fixture("seed-echo", s.sidecar.port, 4 * 1024 * 1024, 433);
    let hash = torrent_info_hash(&std::fs::read(&f.torrent).unwrap());
    let mut p = RawPeer::connect(s.seeder_port, hash).expect("handshake");
    p.0.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut shown = std::collections::HashSet::new();
    while started.elapsed() < Duration::from_secs(3) {
        let Some((id, body)) = p.read() else {
            continue;
        };
        match id {
            4 => {
                shown.insert(u32::from_be_bytes(body[..4].try_into().unwrap()));
                p.send(4, &body).unwrap();
            }
            14 => panic!("shown all 256 pieces within {:?}", started.elapsed()),
            _ => {}
        }
    }
    println!(
        "a peer echoing every have was shown {} pieces in 3 s",
        shown.len()
    );
    assert!(shown.len() >= 4, "shown nothing: {}", shown.len());
    assert!(
        shown.len() < 128,
        "shown {} of 256 pieces in 3 s",
        shown.len()
    );
}
