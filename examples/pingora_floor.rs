//! The floor under the sidecar's pass-through: the smallest pingora proxy that forwards
//! every request to one backend, on pingora's defaults and the sidecar's server settings
//! (threads, work stealing). `cargo bench` (`BENCH_ONLY=pass`) runs it beside the sidecar,
//! nginx and HAProxy, so what the sidecar adds over pingora itself is measured, not guessed.
//!
//! `cargo run --release --example pingora_floor -- LISTEN BACKEND [THREADS]`
//! (e.g. `127.0.0.1:8081 127.0.0.1:9000 2`).

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

struct Floor {
    backend: String,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.backend.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: pingora_floor LISTEN BACKEND [THREADS]";
    let listen = args.next().expect(usage);
    let backend = args.next().expect(usage);
    let threads = args.next().map_or(2, |t| t.parse().expect(usage));
    let pid = std::process::id();
    let tmp = std::env::temp_dir();
    let conf = ServerConf {
        threads,
        work_stealing: true,
        pid_file: tmp.join(format!("floor-{pid}.pid")).display().to_string(),
        upgrade_sock: tmp.join(format!("floor-{pid}.sock")).display().to_string(),
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Floor { backend });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
