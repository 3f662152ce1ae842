//! Several sidecars behind one Service, as users run them: HAProxy from Debian in front
//! (round robin; HTTP for the S3 port, TCP for the seeder port, with health checks as a
//! readiness probe would have), one shared configuration, and what a pod learns from its
//! environment (`S3TORRENT_POD_IP`, `S3TORRENT_POD_NAME`) set per replica.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

pub struct ReplicaSet {
    pub name: String,
    /// The Service's S3 port (HAProxy).
    pub port: u16,
    /// The Service's seeder port (HAProxy, TCP).
    pub seeder_port: u16,
    /// `None` once killed.
    pub replicas: Vec<Option<Sidecar>>,
    /// Ports each replica slot uses (server, seeder, cluster, admin): a slot not started
    /// yet is already in the balancer, down until it answers.
    slots: Vec<[u16; 4]>,
    cluster: bool,
    webseed: bool,
    /// Settings every replica gets on top of the set's own.
    extra: Vec<(String, toml::Value)>,
    pub haproxy_pid: u32,
    dir: PathBuf,
}

impl ReplicaSet {
    /// `n` replicas started of `slots` (≥ n) known to the balancer; with `cluster` off they
    /// are islands sharing only the store, as before `[cluster]`; without `webseed`, peers
    /// get the bytes from the seeders (and each other) alone.
    pub fn start(name: &str, n: usize, slots: usize, cluster: bool, webseed: bool) -> ReplicaSet {
        Self::start_with(name, n, slots, cluster, webseed, &[])
    }

    /// As [`ReplicaSet::start`], every replica with `extra` settings too.
    pub fn start_with(
        name: &str,
        n: usize,
        slots: usize,
        cluster: bool,
        webseed: bool,
        extra: &[(&str, toml::Value)],
    ) -> ReplicaSet {
        let dir = env().scratch(name);
        // All at once, so no two are the same.
        let ports = free_ports(2 + 4 * slots);
        let (port, seeder_port) = (ports[0], ports[1]);
        let slots: Vec<[u16; 4]> = ports[2..]
            .chunks(4)
            .map(|c| c.try_into().expect("four ports"))
            .collect();
        let haproxy_pid = start_haproxy(&dir, port, seeder_port, &slots);
        let mut set = ReplicaSet {
            name: name.to_string(),
            port,
            seeder_port,
            replicas: Vec::new(),
            slots,
            cluster,
            webseed,
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            haproxy_pid,
            dir,
        };
        for _ in 0..n {
            set.add();
        }
        set.wait_for_members(n);
        set
    }

    /// Starts the next replica slot.
    pub fn add(&mut self) -> usize {
        let i = self.replicas.len();
        let [server, seeder, cluster, admin] = self.slots[i];
        let lb = format!("http://127.0.0.1:{}", self.port);
        let builder = sidecar(&format!("{}-{i}", self.name))
            .set("torrent.max_object_size", 5_368_709_120i64)
            .set(
                "torrent.webseed",
                if self.webseed { "public" } else { "none" },
            )
            .set("torrent.public_base_url", lb.as_str())
            .set("tracker.enabled", true)
            .set("tracker.public_url", format!("{lb}/_s3torrent/announce"))
            .set("tracker.interval", 2)
            .set("tracker.peer_ttl", 30)
            .set("seeder.enabled", true)
            .set("seeder.objects", "all")
            .set("seeder.listen", format!("127.0.0.1:{seeder}"))
            .set(
                "seeder.public_addr",
                format!("127.0.0.1:{}", self.seeder_port),
            )
            .set("store.bucket", "store")
            .set("store.prefix", format!("{}/", self.name))
            .set("store.min_bytes", 0)
            .set("cluster.enabled", self.cluster)
            .set("cluster.listen", format!("127.0.0.1:{cluster}"))
            .set("cluster.heartbeat", 1)
            .set("cluster.member_ttl", 3)
            .env("S3TORRENT_POD_IP", "127.0.0.1")
            .env("S3TORRENT_POD_NAME", &format!("{}-{i}", self.name));
        let builder = self
            .extra
            .iter()
            .fold(builder, |b, (k, v)| b.set(k, v.clone()));
        self.replicas
            .push(Some(builder.listening_on(server, admin).start()));
        i
    }

    /// SIGKILL, as a node failure would.
    pub fn kill(&mut self, i: usize) {
        if let Some(s) = self.replicas[i].take() {
            unsafe { libc::kill(s.pid as i32, libc::SIGKILL) };
        }
    }

    pub fn live(&self) -> impl Iterator<Item = &Sidecar> {
        self.replicas.iter().flatten()
    }

    /// Every live replica's `/metrics`, concatenated.
    pub fn metrics(&self) -> Vec<String> {
        self.live()
            .map(|s| request(s.admin_port, "GET", "/metrics", &[]).text())
            .collect()
    }

    /// Until every live replica counts `n` members (with `[cluster]`), and the balancer
    /// answers on both ports.
    pub fn wait_for_members(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let line = format!("s3torrent_cluster_members {n}");
        loop {
            let ready =
                !self.cluster || self.metrics().iter().all(|m| m.lines().any(|l| l == line));
            let up = request(self.port, "GET", "/_s3torrent/nothing", &[]).status != 503;
            if ready && up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replicas never saw {n} members: {:?}",
                self.metrics()
                    .iter()
                    .map(|m| m
                        .lines()
                        .find(|l| l.starts_with("s3torrent_cluster_members "))
                        .unwrap_or("-")
                        .to_string())
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sum over live replicas of one metric line's value.
    pub fn sum(&self, name: &str) -> f64 {
        self.metrics()
            .iter()
            .flat_map(|m| {
                m.lines()
                    .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// The replica that owns `info_hash` (rendezvous hashing over the live replicas' names,
    /// as the sidecar computes it).
    pub fn owner_of(&self, info_hash: &[u8; 20]) -> usize {
        use sha2::{Digest, Sha256};
        let weight = |i: usize| {
            let name = format!("{}-{i}", self.name);
            let mut h = Sha256::new();
            h.update((name.len() as u64).to_be_bytes());
            h.update(name.as_bytes());
            h.update(info_hash);
            (
                u64::from_be_bytes(h.finalize()[..8].try_into().unwrap()),
                name,
            )
        };
        (0..self.replicas.len())
            .filter(|&i| self.replicas[i].is_some())
            .max_by_key(|&i| weight(i))
            .expect("a live replica")
    }

    /// Slot `i`'s ports: server, seeder, cluster, admin.
    pub fn slot_ports(&self, i: usize) -> [u16; 4] {
        self.slots[i]
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

/// HAProxy in the foreground: `port` (HTTP) and `seeder_port` (TCP) round-robin over the
/// slots, each health-checked every 300 ms.
fn start_haproxy(dir: &std::path::Path, port: u16, seeder_port: u16, slots: &[[u16; 4]]) -> u32 {
    let mut cfg = String::from(
        "global\n  maxconn 4096\n\ndefaults\n  timeout connect 2s\n  timeout client 300s\n  \
         timeout server 300s\n  option redispatch\n  retries 2\n\n",
    );
    cfg.push_str(&format!(
        "frontend s3\n  mode http\n  bind 127.0.0.1:{port}\n  default_backend replicas\n\n\
         backend replicas\n  mode http\n  balance roundrobin\n  option http-server-close\n"
    ));
    for (i, [server, ..]) in slots.iter().enumerate() {
        cfg.push_str(&format!(
            "  server r{i} 127.0.0.1:{server} check inter 300 fall 1 rise 1\n"
        ));
    }
    cfg.push_str(&format!(
        "\nfrontend peers\n  mode tcp\n  bind 127.0.0.1:{seeder_port}\n  default_backend seeders\n\n\
         backend seeders\n  mode tcp\n  balance roundrobin\n"
    ));
    for (i, [_, seeder, ..]) in slots.iter().enumerate() {
        cfg.push_str(&format!(
            "  server s{i} 127.0.0.1:{seeder} check inter 300 fall 1 rise 1\n"
        ));
    }
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(std::fs::File::create(dir.join("haproxy.log")).unwrap())
        .stderr(std::fs::File::create(dir.join("haproxy.err")).unwrap());
    let child = spawn_guarded(cmd);
    let pid = child.id();
    register_child(child);
    wait_for_port(port, "haproxy", &dir.join("haproxy.err"));
    pid
}
