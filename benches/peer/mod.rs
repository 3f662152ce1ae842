//! `[peer]`: one libtorrent peer fetching one object, three ways, in alternating rounds:
//! from the web seed alone (a torrent with a `url-list` and no seeder), and from the seeder
//! alone (no `url-list`) with a plaintext handshake and with MSE/RC4 forced. Prints each
//! rate and the ratios the seeder issue names: seeder ÷ web seed (goal ≥ 0.9) and what
//! encryption costs (rc4 ÷ plaintext).

use crate::common::*;
use crate::harness::*;

pub fn bench_peer() {
    let mib = env_or("BENCH_PEER_MIB", 256);
    let rounds = env_or("BENCH_ROUNDS", 5).min(3);
    let dir = env().scratch("bench-peer");
    let file = dir.join("peer.bin");
    write_data(&file, mib, 61);
    upload("evict", "bench/peer.bin", &file);
    let web = sidecar("bench-peer-web")
        .set("torrent.max_object_size", 5_368_709_120i64)
        .webseeds("public", "v1")
        .start();
    let seeder_port = free_ports(1)[0];
    let seed = sidecar("bench-peer-seed")
        .set("torrent.max_object_size", 5_368_709_120i64)
        .tracker()
        .set("tracker.interval", 5)
        .set("seeder.enabled", true)
        .set("seeder.listen", format!("127.0.0.1:{seeder_port}"))
        .start();
    let torrent_of = |port: u16, name: &str| {
        let r = request(port, "GET", "/evict/bench/peer.bin?torrent", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        let path = dir.join(format!("{name}.torrent"));
        std::fs::write(&path, &r.body).unwrap();
        path
    };
    let (web_torrent, seed_torrent) = (torrent_of(web.port, "web"), torrent_of(seed.port, "seed"));
    println!("\n[peer] one libtorrent peer, {mib} MiB, {rounds} alternating rounds");
    let mut times: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        for (i, (torrent, encryption)) in [
            (&web_torrent, ""),
            (&seed_torrent, ""),
            (&seed_torrent, "rc4"),
        ]
        .into_iter()
        .enumerate()
        {
            let save = dir.join(format!("save-{round}-{i}"));
            let vars: &[(&str, &str)] = match encryption {
                "" => &[],
                e => &[("LT_ENCRYPTION", e)],
            };
            let t = torrent.to_str().unwrap();
            let out = lt_client_with(vars, &["download", t, save.to_str().unwrap(), "600"]);
            assert_eq!(out["finished"], true, "{out}");
            times[i].push(out["seconds"].as_f64().unwrap());
            let _ = std::fs::remove_dir_all(&save);
        }
    }
    let rate = |t: &[f64]| mib as f64 / median(t.to_vec());
    for (what, t) in [
        ("web seed only       ", &times[0]),
        ("seeder, plaintext   ", &times[1]),
        ("seeder, MSE/RC4     ", &times[2]),
    ] {
        println!("  {what} {:>7.1} MiB/s (median of {t:.1?} s)", rate(t));
    }
    println!(
        "  seeder ÷ web seed {:.2} (goal >= 0.9); rc4 ÷ plaintext {:.2}",
        rate(&times[1]) / rate(&times[0]),
        rate(&times[2]) / rate(&times[1])
    );
}
