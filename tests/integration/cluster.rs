//! Several replicas behind one Service are one swarm: a crowd costs the origin about one copy
//! however many replicas serve it, a replica that dies or joins mid-crowd changes nothing a
//! peer sees, and forged sibling messages do nothing. Bytes the origin served are counted by
//! SeaweedFS for a bucket of each counting test's own (`swarm-*`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::*;
use crate::seeder::metric;

/// A crowd's outcome.
struct Crowd {
    finished: usize,
    hash_failures: u64,
    /// Origin bytes ÷ object size.
    copies: f64,
    seconds: f64,
}

/// Uploads `mib` MiB as `bucket/key` and fetches its torrent through the Service.
fn object_and_torrent(
    set: &ReplicaSet,
    bucket: &str,
    key: &str,
    mib: usize,
    seed: u64,
) -> std::path::PathBuf {
    let data = test_data(mib << 20, seed);
    put_object(bucket, key, &data, set.dir());
    let r = request(set.port, "GET", &format!("/{bucket}/{key}?torrent"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let torrent = set.dir().join(format!("{}.torrent", key.replace('/', "_")));
    std::fs::write(&torrent, &r.body).unwrap();
    torrent
}

/// `peers` libtorrent peers fetch `torrent` (of an object of `bucket`); `during` runs
/// meanwhile (after `after`).
fn crowd(
    set: &mut ReplicaSet,
    bucket: &str,
    torrent: &std::path::Path,
    mib: usize,
    peers: usize,
    after: Duration,
    during: impl FnOnce(&mut ReplicaSet),
) -> Crowd {
    let before = bucket_bytes_sent(bucket);
    let work = set.dir().join(format!("peers-{peers}"));
    let child = spawn_crowd(torrent, &work, peers, 240);
    std::thread::sleep(after);
    during(set);
    let (finished, hash_failures, seconds) = crowd_outcome(child);
    Crowd {
        finished,
        hash_failures,
        copies: (bucket_bytes_sent(bucket) - before) as f64 / (mib << 20) as f64,
        seconds,
    }
}

/// Sibling frames refused for a wrong tag.
const FORGED: &str = "s3torrent_cluster_frames_total{kind=\"unknown\",result=\"forged\"}";

fn forwarded(set: &ReplicaSet, what: &str) -> f64 {
    set.sum(&format!(
        "s3torrent_cluster_forwarded_total{{what=\"{what}\"}}"
    ))
}

/// No web seed: every byte comes from the seeders (and the peers), through any replica.
#[test]
fn three_replicas_behind_one_service_seed_one_copy() {
    let mut set = ReplicaSet::start("cluster-three", 3, 3, true, false);
    let mib = 24;
    let torrent = object_and_torrent(&set, "swarm-seed", "three.bin", mib, 1900);
    let c = crowd(
        &mut set,
        "swarm-seed",
        &torrent,
        mib,
        6,
        Duration::ZERO,
        |_| {},
    );
    println!(
        "3 replicas, seeders only, 6 peers, {mib} MiB: {}/6 finished in {:.1} s, origin {:.2} copies",
        c.finished, c.seconds, c.copies
    );
    assert_eq!((c.finished, c.hash_failures), (6, 0));
    assert!(c.copies <= 1.15, "the origin served {:.2} copies", c.copies);
    // The replicas did work as one: announces and peers went to the torrent's owner.
    assert!(
        forwarded(&set, "announce") > 0.0,
        "no announce reached an owner"
    );
    assert!(forwarded(&set, "peer") > 0.0, "no peer was relayed");
    let fallbacks = set.sum("s3torrent_cluster_fallbacks_total{cause=\"owner unreachable\"}");
    assert_eq!(fallbacks, 0.0);
}

/// Peers that insist on encryption are one swarm too: a replica that is not the torrent's
/// owner decrypts and relays them to it, so the origin still serves about one copy.
#[test]
fn an_encrypted_crowd_is_one_swarm_across_replicas() {
    let set = ReplicaSet::start("cluster-mse", 3, 3, true, false);
    let mib = 8;
    let torrent = object_and_torrent(&set, "swarm-mse", "mse.bin", mib, 1901);
    let before = bucket_bytes_sent("swarm-mse");
    let work = set.dir().join("peers-mse");
    let child = spawn_crowd_with(&[("LT_ENCRYPTION", "rc4")], &torrent, &work, 4, 240);
    let (finished, hash_failures, seconds) = crowd_outcome(child);
    let copies = (bucket_bytes_sent("swarm-mse") - before) as f64 / (mib << 20) as f64;
    println!("3 replicas, 4 encrypted peers, {mib} MiB: {finished}/4 in {seconds:.1} s, origin {copies:.2} copies");
    assert_eq!((finished, hash_failures), (4, 0));
    assert!(copies <= 1.15, "the origin served {copies:.2} copies");
    assert!(
        forwarded(&set, "peer") > 0.0,
        "no encrypted peer was relayed"
    );
    assert!(set.sum("s3torrent_seeder_handshakes_total{kind=\"rc4\"}") > 0.0);
    assert_eq!(
        set.sum("s3torrent_seeder_handshakes_total{kind=\"plaintext\"}"),
        0.0
    );
}

/// With the web seed, its requests are shaped by the owner, wherever they land.
#[test]
fn web_seed_requests_through_any_replica_are_shaped_once() {
    let mut set = ReplicaSet::start("cluster-webseed", 3, 3, true, true);
    let mib = 24;
    let torrent = object_and_torrent(&set, "swarm-web", "webseed.bin", mib, 1903);
    let c = crowd(
        &mut set,
        "swarm-web",
        &torrent,
        mib,
        6,
        Duration::ZERO,
        |_| {},
    );
    println!(
        "3 replicas, web seed and seeders, 6 peers, {mib} MiB: {}/6 finished in {:.1} s, origin {:.2} copies",
        c.finished, c.seconds, c.copies
    );
    assert_eq!((c.finished, c.hash_failures), (6, 0));
    assert!(c.copies <= 1.15, "the origin served {:.2} copies", c.copies);
    assert!(
        forwarded(&set, "webseed") > 0.0,
        "no web-seed request reached the owner"
    );
}

/// A directory's torrent asked of one replica is seeded by its owner, another one: the seed
/// (its `info` and every file's object and ETag) is described to every sibling, so peers
/// relayed to the owner are served without a request for the torrent ever reaching it.
#[test]
fn a_directory_asked_of_one_replica_is_seeded_by_its_owner() {
    let set = ReplicaSet::start("cluster-dir", 3, 3, true, false);
    let first = set.replicas[0].as_ref().unwrap().port;
    // Directories until one is owned by a replica that was not asked (two in three are).
    let (torrent, sizes) = (1..=8)
        .find_map(|n| {
            let prefix = format!("set{n}/");
            let sizes = [5 << 20, 3 << 20, 0, 4 << 20];
            for (i, size) in sizes.iter().enumerate() {
                let data = test_data(*size, 1910 + 10 * n + i as u64);
                put_object("swarm-dir", &format!("{prefix}f{i}.bin"), &data, set.dir());
            }
            let r = request(
                first,
                "GET",
                &format!("/swarm-dir/?torrent&prefix={prefix}"),
                &[],
            );
            assert_eq!(r.status, 200, "{}", r.text());
            let owner = set.owner_of(&torrent_info_hash(&r.body));
            println!("directory {prefix}: owned by replica {owner}");
            let torrent = set.dir().join(format!("set{n}.torrent"));
            std::fs::write(&torrent, &r.body).unwrap();
            (owner != 0).then_some((torrent, sizes))
        })
        .expect("a directory owned by another replica");
    let bytes: usize = sizes.iter().sum();
    let mib = bytes as f64 / (1 << 20) as f64;
    let before = bucket_bytes_sent("swarm-dir");
    let child = spawn_crowd(&torrent, &set.dir().join("dir-peers"), 4, 240);
    let (finished, hash_failures, seconds) = crowd_outcome(child);
    let copies = (bucket_bytes_sent("swarm-dir") - before) as f64 / bytes as f64;
    println!(
        "3 replicas, a directory asked of replica 0, 4 peers, {mib:.0} MiB: {finished}/4 finished in {seconds:.1} s, origin {copies:.2} copies"
    );
    assert_eq!((finished, hash_failures), (4, 0));
    assert!(copies <= 1.15, "the origin served {copies:.2} copies");
    assert!(forwarded(&set, "peer") > 0.0, "no peer was relayed");
    let fallbacks = set.sum("s3torrent_cluster_fallbacks_total{cause=\"owner unreachable\"}");
    assert_eq!(fallbacks, 0.0);
}

#[test]
fn a_replica_killed_mid_crowd_changes_nothing_a_peer_sees() {
    let mut set = ReplicaSet::start("cluster-kill", 3, 3, true, false);
    let mib = 48;
    let torrent = object_and_torrent(&set, "swarm-kill", "kill.bin", mib, 1901);
    let hash = torrent_info_hash(&std::fs::read(&torrent).unwrap());
    // The torrent's owner dies once it is seeding.
    let during = |set: &mut ReplicaSet| {
        let owner = set.owner_of(&hash);
        let admin = set.replicas[owner].as_ref().unwrap().admin_port;
        let uploaded = || {
            let m = request(admin, "GET", "/metrics", &[]).text();
            metric(&m, "s3torrent_seeder_uploaded_bytes_total")
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while uploaded() < 4 << 20 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        println!(
            "killing replica {owner}, the owner, after it uploaded {} bytes",
            uploaded()
        );
        set.kill(owner);
    };
    let c = crowd(
        &mut set,
        "swarm-kill",
        &torrent,
        mib,
        6,
        Duration::ZERO,
        during,
    );
    println!(
        "3 replicas, the owner killed mid-crowd, 6 peers, {mib} MiB: {}/6 finished in {:.1} s, origin {:.2} copies",
        c.finished, c.seconds, c.copies
    );
    assert_eq!((c.finished, c.hash_failures), (6, 0));
    assert!(c.copies <= 1.5, "the origin served {:.2} copies", c.copies);
}

#[test]
fn a_replica_added_later_knows_the_torrents_and_serves_them() {
    let mut set = ReplicaSet::start("cluster-join", 2, 3, true, true);
    let torrent = object_and_torrent(&set, "swarm", "join.bin", 2, 1902);
    let hash = torrent_info_hash(&std::fs::read(&torrent).unwrap());
    let i = set.add();
    set.wait_for_members(3);
    let late = set.replicas[i].as_ref().unwrap();
    // Its tracker takes announces for a torrent served before it started.
    let target = format!(
        "/_s3torrent/announce?info_hash={}&peer_id=-LT2080-aaaaaaaaaaaa&port=7000&left=1&compact=1",
        percent(&hash)
    );
    let mut answered = false;
    for _ in 0..20 {
        let r = request(late.port, "GET", &target, &[]);
        if !r.text().contains("failure reason") {
            answered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        answered,
        "the late replica's tracker never knew the torrent"
    );
}

/// Anyone who can reach a sibling port may send it bytes: forged, cut, or replayed frames
/// are refused and counted, and a web-seed request with a forged sibling token is refused.
#[test]
fn forged_sibling_messages_are_refused_and_serve_nothing() {
    let set = ReplicaSet::start("cluster-forged", 2, 2, true, true);
    let port = set.slot_ports(0)[2];
    let body = b"d4:from3:pod1:k4:peere";
    let mut frame = b"S3TSIB2\n".to_vec();
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&now_secs().to_be_bytes());
    frame.extend_from_slice(&[7u8; 16]); // nonce
    frame.extend_from_slice(&<sha2::Sha256 as sha2::Digest>::digest(body));
    frame.extend_from_slice(&[0u8; 32]); // not the tag
    frame.extend_from_slice(body);
    let mut handshake = vec![19u8];
    handshake.extend_from_slice(b"BitTorrent protocol");
    handshake.extend_from_slice(&[0u8; 48]);
    for attempt in [frame.clone(), b"GET / HTTP/1.1\r\n\r\n".to_vec(), handshake] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&attempt).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(got.is_empty(), "a refused frame got an answer: {got:?}");
    }
    let m = set.metrics().remove(0);
    assert!(metric(&m, FORGED) >= 1, "{m}");
    assert!(
        metric(
            &m,
            "s3torrent_cluster_frames_total{kind=\"unknown\",result=\"malformed\"}"
        ) >= 2,
        "{m}"
    );
    let s = set.replicas[0].as_ref().unwrap();
    let r = request(
        s.port,
        "GET",
        "/_s3torrent/webseed/swarm/anything.bin",
        &[("x-s3torrent-sibling", "00ff")],
    );
    assert_eq!(
        (r.status, r.s3_code().as_deref()),
        (403, Some("AccessDenied"))
    );
}

fn percent(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A handshake for `info_hash` on a seeder port: the connection, if a seeder answered it
/// with that torrent.
fn raw_handshake(port: u16, info_hash: [u8; 20]) -> Option<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut h = vec![19u8];
    h.extend_from_slice(b"BitTorrent protocol");
    h.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x04]);
    h.extend_from_slice(&info_hash);
    h.extend_from_slice(b"-XX0001-relayedpeer0");
    s.write_all(&h).ok()?;
    let mut back = [0u8; 68];
    s.read_exact(&mut back).ok()?;
    (back[28..48] == info_hash).then_some(s)
}

/// Anyone who can reach the sibling port may claim a large frame: the claim is refused
/// after its 100-byte head (the head is authenticated before any body is buffered), so 32
/// connections claiming and sending 8 MiB each cost the replica almost nothing. It held the
/// whole 8 MiB per connection before (16 connections: +150 MiB).
#[test]
fn a_stranger_on_the_sibling_port_is_refused_after_the_head() {
    let set = ReplicaSet::start("cluster-stranger", 2, 2, true, false);
    let port = set.slot_ports(0)[2];
    let pid = set.replicas[0].as_ref().unwrap().pid;
    let before = rss_kib(pid);
    let claims: Vec<_> = (0..32u8)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut head = b"S3TSIB2\n".to_vec();
                head.extend_from_slice(&(8u32 << 20).to_be_bytes());
                head.extend_from_slice(&now_secs().to_be_bytes());
                head.extend_from_slice(&[i; 16]);
                head.extend_from_slice(&[0u8; 64]); // digest and tag: not the key's
                let junk = vec![0x5Au8; 64 << 10];
                let mut sent = 0;
                if s.write_all(&head).is_ok() {
                    while sent < 8 << 20 && s.write_all(&junk).is_ok() {
                        sent += junk.len();
                    }
                }
                sent
            })
        })
        .collect();
    let sent: usize = claims.into_iter().map(|c| c.join().unwrap()).sum();
    let grown = rss_kib(pid).saturating_sub(before);
    println!(
        "32 claims of 8 MiB: {} MiB sent before the replica hung up, RSS +{} MiB",
        sent >> 20,
        grown >> 10
    );
    assert!(grown < 48 << 10, "RSS grew by {} MiB", grown >> 10);
    let m = set.metrics().remove(0);
    assert!(metric(&m, FORGED) >= 32, "{m}");
}

/// A peer relayed to a torrent's owner costs it one small frame, whatever the torrent's
/// description (8 MiB in 16 KiB pieces: its `pieces` alone are 10 KiB, which every relayed
/// handshake carried before), and one entry replica holds at most
/// `cluster.max_relayed_per_replica` of the owner's peer slots: peers past that share are
/// refused, while a peer dialing the owner itself still gets in.
#[test]
fn relayed_peers_cost_the_owner_a_small_frame_and_a_bounded_share() {
    let set = ReplicaSet::start_with(
        "cluster-relay",
        3,
        3,
        true,
        false,
        &[
            ("torrent.piece_length", 16384.into()),
            ("cluster.max_relayed_per_replica", 4.into()),
        ],
    );
    let torrent = object_and_torrent(&set, "swarm", "relay.bin", 8, 1910);
    let hash = torrent_info_hash(&std::fs::read(&torrent).unwrap());
    let owner = set.owner_of(&hash);
    let entry = (owner + 1) % 3;
    let frame_bytes = "s3torrent_cluster_frame_bytes_total{kind=\"peer\"}";
    let before = set.sum(frame_bytes);
    let peers: Vec<_> = (0..12)
        .map(|_| raw_handshake(set.slot_ports(entry)[1], hash))
        .collect();
    let served = peers.iter().filter(|p| p.is_some()).count();
    let per_peer = (set.sum(frame_bytes) - before) / 12.0;
    println!("12 peers relayed: {served} served, {per_peer:.0} frame bytes each");
    assert_eq!(served, 4, "the entry replica's share of the owner's slots");
    assert!(per_peer < 512.0, "{per_peer:.0} bytes per relayed peer");
    let refused = set.sum("s3torrent_seeder_refused_peers_total{reason=\"relay share\"}");
    assert_eq!(refused, 8.0);
    let described = set.sum("s3torrent_cluster_frames_total{kind=\"describe\",result=\"ok\"}");
    assert!(described <= 1.0, "asked {described} times for one torrent");
    assert!(
        raw_handshake(set.slot_ports(owner)[1], hash).is_some(),
        "a peer of the owner's own is not locked out"
    );
}

/// Whoever can write the store bucket cannot split the cluster: 1,100 junk records that sort
/// before the real ones (more than a listing page) and one of 6 MiB in the membership folder
/// leave every replica seeing both members. Junk is read with a range of at most 4 KiB (the
/// large one not at all: the listing gives its size), skipped and counted. Before, a page of
/// junk dropped every replica's view to itself, and one bad record failed the whole read.
#[test]
fn junk_in_the_membership_folder_splits_nothing() {
    let set = ReplicaSet::start("cluster-junk", 2, 2, true, false);
    let junk = set.dir().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    for i in 0..1100 {
        std::fs::write(junk.join(format!("0-junk-{i:04}")), b"not a record").unwrap();
    }
    std::fs::write(junk.join("0-junk-big"), vec![7u8; 6 << 20]).unwrap();
    let members = "cluster-junk/cluster-members/";
    let out = s3client(
        &env().backend_url(),
        ADMIN,
        &["put-dir", "store", members, junk.to_str().unwrap()],
    );
    assert_eq!(out["files"].as_u64(), Some(1101), "{out}");
    // A few heartbeats (1 s) with the junk in place.
    let verified = "s3torrent_store_errors_total{op=\"verify\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while set.sum(verified) < 2.0 * 1100.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "junk records never counted: {}",
            set.sum(verified)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(3));
    for m in set.metrics() {
        assert!(
            m.lines().any(|l| l == "s3torrent_cluster_members 2"),
            "a replica lost its sibling: {:?}",
            m.lines()
                .filter(|l| l.starts_with("s3torrent_cluster_members")
                    || l.starts_with("s3torrent_cluster_fallbacks"))
                .collect::<Vec<_>>()
        );
    }
}
