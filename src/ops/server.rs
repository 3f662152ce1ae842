//! Assembles the pingora server from a validated [`Config`]: the S3 proxy listener, the admin
//! listener and, when configured, the embedded demo backend; then runs it until drained.

use std::sync::Arc;

use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::proxy::http_proxy;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::services::listening::Service;

use crate::catalog::Catalog;
use crate::cluster::Cluster;
use crate::common::in_flight::InFlight;
use crate::config::Config;
use crate::ops::admin::{AdminApp, Readiness};
use crate::ops::connections::Gate;
use crate::ops::shutdown::{Drain, Drained};
use crate::ops::siblings::SiblingService;
use crate::proxy::S3TorrentProxy;
use crate::s3::upstream::Upstream;
use crate::seeder::{Seeder, SeederService};
use crate::service::TorrentService;
use crate::swarm::Swarm;
use crate::telemetry::metrics::Metrics;
use crate::tracker::Tracker;

/// A built sidecar, ready to serve.
pub struct Sidecar {
    server: Server,
    drained: Arc<Drained>,
}

/// Builds everything that can fail before binding; [`Sidecar::run`] then serves until
/// SIGTERM/SIGINT.
pub fn build(config: Config) -> std::io::Result<Sidecar> {
    let config = Arc::new(config);
    let threads = match config.server.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let tmp = std::env::temp_dir();
    let pid = std::process::id();
    let conf = ServerConf {
        threads,
        work_stealing: true,
        // pingora's defaults share fixed /tmp paths between processes; keep ours apart.
        pid_file: tmp
            .join(format!("s3torrent-{pid}.pid"))
            .display()
            .to_string(),
        upgrade_sock: tmp
            .join(format!("s3torrent-{pid}.sock"))
            .display()
            .to_string(),
        // `Drain` ends the process as soon as requests finish; this is pingora's backstop.
        grace_period_seconds: Some(config.server.grace_period.secs() + 5),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::new(config.upstream.endpoint.clone()));
    let in_flight = Arc::new(InFlight::default());
    let drained = Arc::new(Drained::default());
    let tracker = config.tracker.enabled.then(|| {
        let tracker = Tracker::new(config.tracker.clone());
        Arc::new(tracker.reporting_to(metrics.tracker.peers.clone()))
    });
    let upstream = Arc::new(Upstream::new(&config.upstream, metrics.clone()));
    let seeder = match config.seeder.enabled {
        true => Some(Arc::new(Seeder::bind(
            &config.seeder,
            upstream.clone(),
            metrics.seeder.clone(),
            tracker.clone(),
            config.tracker.public_url.as_ref().map(|u| u.to_string()),
        )?)),
        false => None,
    };
    let builtin_tracker = tracker
        .as_ref()
        .and(config.tracker.public_url.as_ref())
        .map(|url| url.to_string());
    let catalog = Arc::new(Catalog::new(
        config.clone(),
        metrics.clone(),
        upstream.clone(),
        builtin_tracker,
    ));
    let cluster = Cluster::new(&config, catalog.store().cloned(), metrics.cluster.clone());
    if let (Some(cluster), Some(seeder)) = (&cluster, &seeder) {
        seeder.attach(cluster.clone());
    }
    let swarm = Swarm {
        tracker,
        seeder: seeder.clone(),
        cluster: cluster.clone(),
    };
    let torrents = Arc::new(TorrentService::new(
        config.clone(),
        catalog.clone(),
        upstream,
        swarm.clone(),
    ));
    let proxy = http_proxy(
        &server.configuration,
        S3TorrentProxy::new(
            config.clone(),
            torrents,
            catalog,
            metrics.clone(),
            in_flight.clone(),
            swarm.clone(),
        ),
    );
    let gate = Gate::new(proxy, &config.server, metrics.connections.clone());
    let mut proxy = Service::new("s3torrent proxy".to_string(), gate);
    // No 64 KiB read buffer per connection (pingora's default, allocated at accept, before
    // anyone has sent a byte): pingora reads request heads and bodies into buffers of its
    // own, so the layer below only added a copy and made every idle connection cost ~44 KiB.
    let unbuffered_reads = L4BufferSettings::default().read(0);
    proxy.add_listener(
        ListenerConfig::tcp(config.server.listen.to_string()).l4_buffer(unbuffered_reads),
    );
    server.add_service(proxy);

    let mut admin = Service::new(
        "s3torrent admin".to_string(),
        AdminApp {
            metrics,
            readiness: readiness.clone(),
        },
    );
    admin.add_tcp(&config.admin.listen.to_string());
    server.add_service(admin);
    server.add_service(pingora::services::background::background_service(
        "drain",
        Drain {
            readiness,
            in_flight,
            drained: drained.clone(),
            grace_period: config.server.grace_period.get(),
        },
    ));

    if let Some(cluster) = cluster {
        let listener = std::net::TcpListener::bind(config.cluster.listen)?;
        listener.set_nonblocking(true)?;
        server.add_service(pingora::services::background::background_service(
            "siblings",
            SiblingService {
                cluster,
                listener: std::sync::Mutex::new(Some(listener)),
                max_connections: config.cluster.max_connections,
                swarm,
            },
        ));
    }
    if let Some(seeder) = seeder {
        server.add_service(pingora::services::background::background_service(
            "seeder",
            SeederService(seeder),
        ));
    }

    #[cfg(feature = "demo")]
    if config.demo.enabled {
        let backend = crate::demo::DemoBackend::bind(&config)?;
        eprint!("{}", crate::demo::DemoBackend::banner(&config));
        server.add_service(pingora::services::background::background_service(
            "demo backend",
            backend,
        ));
    }
    Ok(Sidecar { server, drained })
}

impl Sidecar {
    /// Serves until drained after SIGTERM (or until pingora itself stops, e.g. on SIGINT),
    /// then returns, so the caller exits through `main` like any program.
    pub fn run(self) {
        let Sidecar { server, drained } = self;
        let stopped = drained.clone();
        std::thread::Builder::new()
            .name("pingora".into())
            .spawn(move || {
                server.run(RunArgs::default());
                stopped.set();
            })
            .expect("spawn the server thread");
        drained.wait();
    }
}
