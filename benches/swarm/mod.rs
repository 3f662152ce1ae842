//! `[swarm]`: a crowd of libtorrent peers starting together on one object, fed four ways,
//! side by side in one run: by the web seed alone; by the sidecar's seeder and the web seed;
//! and, the anchor, by a libtorrent session seeding the file from local disk (seed mode, no
//! web seed), super-seeding off and on. Prints the ratios the seeder issue names: time with
//! the seeder ÷ web seed only (goal ≤ 0.8), ÷ the libtorrent seeds (goal ≤ 1.0), and the
//! origin's copies with the seeder (goal ≤ 1.15). Every crowd finds its peers through the
//! sidecar's built-in tracker. The crowd's own CPU (one process of libtorrent sessions)
//! bounds its time on a small machine, so each run prints the CPU seconds of the sidecar
//! and of the crowd; `BENCH_SWARM_ROUNDS` (1) alternating rounds, medians reported.

use crate::common::*;
use crate::harness::*;

pub fn bench_swarm() {
    let mib = env_or("BENCH_SWARM_MIB", 256);
    let counts = std::env::var("BENCH_SWARM_PEERS").unwrap_or_else(|_| "8,16,32".into());
    println!(
        "\n[swarm] libtorrent peers starting together on a {mib} MiB object, built-in tracker"
    );
    for peers in counts
        .split(',')
        .filter_map(|p| p.trim().parse::<usize>().ok())
    {
        // `BENCH_SWARM_FEEDS` (web,seed,lt,lt-super) picks; rounds alternate the feeds and
        // each one's median round is reported.
        let picked = std::env::var("BENCH_SWARM_FEEDS").unwrap_or_default();
        let feeds: Vec<Feed> = [
            Feed::WebSeed,
            Feed::Seeder,
            Feed::Libtorrent { super_seed: false },
            Feed::Libtorrent { super_seed: true },
        ]
        .into_iter()
        .filter(|f| picked.is_empty() || picked.split(',').any(|p| p.trim() == f.tag()))
        .collect();
        let mut rounds: Vec<Vec<SwarmRun>> = feeds.iter().map(|_| Vec::new()).collect();
        for round in 0..env_or("BENCH_SWARM_ROUNDS", 1) {
            for (i, feed) in feeds.iter().enumerate() {
                rounds[i].push(run(peers, mib, *feed, round));
            }
        }
        let runs: Vec<(Feed, SwarmRun)> = feeds
            .into_iter()
            .zip(rounds.into_iter().map(median_run))
            .collect();
        for (feed, r) in &runs {
            println!(
                "  {peers:>2} peers, {:<28} finished {}/{peers} in {:>5.1} s, origin/size {:.2}{}{}",
                feed.name(),
                r.done,
                r.seconds,
                r.origin_ratio,
                r.peak_rss_mib
                    .map_or(String::new(), |m| format!(", sidecar peak RSS {m:.1} MiB")),
                r.cpu.map_or(String::new(), |(sidecar, crowd)| format!(
                    ", CPU s sidecar {sidecar:.1} crowd {crowd:.1}"
                )),
            );
        }
        let of = |tag: &str| runs.iter().find(|(f, _)| f.tag() == tag).map(|(_, r)| r);
        let Some(seeder) = of("seed") else {
            continue;
        };
        let ratio = |tag: &str| {
            of(tag).map_or("-".into(), |r| format!("{:.2}", seeder.seconds / r.seconds))
        };
        println!(
            "  {peers:>2} peers: origin/size with the seeder {:.2} (goal <= 1.15); time seeder ÷ web seed only {} (goal <= 0.8); ÷ libtorrent seed {}, ÷ libtorrent super-seed {} (goal <= 1.0)",
            seeder.origin_ratio,
            ratio("web"),
            ratio("lt"),
            ratio("lt-super"),
        );
    }
}

#[derive(Clone, Copy)]
enum Feed {
    WebSeed,
    Seeder,
    Libtorrent { super_seed: bool },
}

impl Feed {
    fn name(self) -> &'static str {
        match self {
            Feed::WebSeed => "web seed only",
            Feed::Seeder => "seeder + web seed",
            Feed::Libtorrent { super_seed: false } => "libtorrent seed (disk)",
            Feed::Libtorrent { super_seed: true } => "libtorrent super-seed (disk)",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Feed::WebSeed => "web",
            Feed::Seeder => "seed",
            Feed::Libtorrent { super_seed: false } => "lt",
            Feed::Libtorrent { super_seed: true } => "lt-super",
        }
    }
}

/// A crowd's outcome (the cluster section's too).
pub struct SwarmRun {
    pub done: usize,
    pub seconds: f64,
    pub origin_ratio: f64,
    /// The sidecar's (the largest replica's), where it serves the bytes.
    pub peak_rss_mib: Option<f64>,
    /// CPU seconds: the sidecar's, and the crowd's (every libtorrent session, one process).
    pub cpu: Option<(f64, f64)>,
}

/// `peers` libtorrent leechers fetch one object through the sidecar's torrent, fed by
/// `feed`; bytes the origin served are counted by SeaweedFS for the object's bucket.
/// The round with the median time.
fn median_run(mut rounds: Vec<SwarmRun>) -> SwarmRun {
    rounds.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let mid = rounds.len() / 2;
    rounds.swap_remove(mid)
}

fn run(peers: usize, mib: usize, feed: Feed, round: usize) -> SwarmRun {
    let name = format!("bench-swarm-{peers}-{}-r{round}", feed.tag());
    let dir = env().scratch(&name);
    let file = dir.join("swarm.bin");
    write_data(&file, mib, 6 + peers as u64 + feed.tag().len() as u64);
    let key = format!("bench/{name}.bin");
    upload("evict", &key, &file);
    let seeder_port = free_ports(1)[0];
    let builder = sidecar(&name)
        .set("torrent.max_object_size", 5_368_709_120i64)
        .tracker()
        .set("tracker.interval", 5)
        .set("tracker.peer_ttl", 60);
    let builder = match feed {
        Feed::WebSeed => builder.webseeds("public", "v1"),
        Feed::Seeder => {
            let b = builder
                .webseeds("public", "v1")
                .set("seeder.enabled", true)
                .set("seeder.listen", format!("127.0.0.1:{seeder_port}"));
            // A knob for trying other deferrals; the default is the sidecar's.
            match std::env::var("BENCH_WEBSEED_RETRY_AFTER") {
                Ok(secs) => b.set("seeder.webseed_retry_after", secs.parse::<i64>().unwrap()),
                Err(_) => b,
            }
        }
        // The torrent and the tracker only: the bytes come from the libtorrent seed.
        Feed::Libtorrent { .. } => builder,
    };
    // `BENCH_SWARM_LOG=debug` keeps the seeder's story (peers joining, closing and why).
    let builder = match std::env::var("BENCH_SWARM_LOG").as_deref() {
        Ok("debug") => builder.logging("warn,s3torrent::seeder=debug"),
        _ => builder,
    };
    let s = builder.start();
    let r = request(s.port, "GET", &format!("/evict/{key}?torrent"), &[]);
    assert_eq!(r.status, 200);
    let torrent = dir.join("swarm.torrent");
    std::fs::write(&torrent, &r.body).unwrap();
    let before = bucket_bytes_sent("evict");
    let work = dir.join("peers");
    let (sidecar_cpu, crowd_cpu) = (cpu_seconds(s.pid), children_cpu_seconds());
    let child = match feed {
        Feed::Libtorrent { super_seed } => {
            let vars = [("LT_SUPER_SEED", if super_seed { "1" } else { "0" })];
            spawn_seeded_crowd(&vars, &torrent, &work, peers, 600, &file)
        }
        _ => spawn_crowd(&torrent, &work, peers, 600),
    };
    // The crowd's own clock: from its sessions' start until every peer seeds.
    let (finished, _, seconds) = crowd_outcome(child);
    let cpu = (
        cpu_seconds(s.pid) - sidecar_cpu,
        children_cpu_seconds() - crowd_cpu,
    );
    let served = bucket_bytes_sent("evict") - before;
    // Every peer wrote a whole copy: 8, 16 and 32 peers on 256 MiB in four feeds are 56 GiB,
    // more than this disk had free. Only the figures outlive the run.
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_file(&file);
    if std::env::var("BENCH_SWARM_LOG").is_ok() {
        // The scratch directory goes with the run: keep the log.
        let kept = std::env::temp_dir().join(format!("{name}.log"));
        let _ = std::fs::copy(s.log.with_extension("err"), &kept);
        println!("  ({} log kept: {})", feed.name(), kept.display());
    }
    let lt_seed = matches!(feed, Feed::Libtorrent { .. });
    SwarmRun {
        // The libtorrent seed is finished from the start: leechers only.
        done: finished - usize::from(lt_seed),
        seconds,
        origin_ratio: served as f64 / (mib << 20) as f64,
        peak_rss_mib: (!lt_seed).then(|| peak_rss_mib(s.pid)),
        cpu: Some(cpu),
    }
}
