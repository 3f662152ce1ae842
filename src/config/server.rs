//! `[server]`, `[admin]`, `[log]` and `[demo]`: where the sidecar listens and how it reports.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::cidr::Cidr;
use super::values::{Domain, Seconds};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Base domains for virtual-hosted-style requests: `Host: {bucket}.{domain}`.
    pub domains: Vec<Domain>,
    /// Worker threads for the proxy; 0 means one per core.
    pub threads: usize,
    /// Peers whose `X-Forwarded-For` / `Forwarded` are believed and extended (a load
    /// balancer in front); from anyone else those headers are replaced by the peer address.
    pub trusted_proxies: Vec<Cidr>,
    /// How long in-flight requests get to finish after SIGTERM (Kubernetes sends SIGKILL
    /// 30 s after SIGTERM by default, so the default leaves room).
    pub grace_period: Seconds,
    /// Connections served at once (once they sent a byte); past it a new one is closed.
    pub max_connections: usize,
    /// How long a new connection may stay silent before its first byte.
    pub header_timeout: Seconds,
    /// Silent connections (no byte yet) given `header_timeout` at once; past it a new one
    /// gets a quarter of a second to speak.
    pub max_silent_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            domains: Vec::new(),
            threads: 0,
            trusted_proxies: Vec::new(),
            grace_period: Seconds(25),
            max_connections: 4096,
            header_timeout: Seconds(10),
            max_silent_connections: 512,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `warn,s3torrent=debug`); `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_string(),
        }
    }
}

/// The embedded filesystem-backed S3 backend (cargo feature `demo`), for trying the sidecar
/// with no external service. It listens on `[upstream] endpoint`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    pub enabled: bool,
    pub root: Option<PathBuf>,
}
