//! The TOML configuration, parsed and validated in one step before any port is bound.
//!
//! One file per section. Values that can be wrong on their own (addresses, URLs, durations,
//! piece length) are validated by their own `Deserialize` impls ([`values`]), so the TOML
//! error names the key and the line. Rules that span keys, and secrets from files and the
//! environment, are checked in [`Config::from_toml`].

mod auth;
mod cidr;
mod cluster;
mod limits;
mod seeder;
mod server;
mod store;
mod torrent;
mod tracker;
mod upstream;
mod values;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use auth::{AuthConfig, Credential, Secret};
pub use cidr::Cidr;
pub use cluster::{ClusterConfig, ENV_POD_IP, ENV_POD_NAME};
pub use limits::{CacheConfig, LimitsConfig};
pub use seeder::{Encryption, SeedObjects, SeederConfig};
pub use server::{AdminConfig, DemoConfig, LogConfig, LogFormat, ServerConfig};
pub use store::{StoreConfig, UploadsConfig};
pub use torrent::{TorrentConfig, WebseedMode, DIRECTORY_ROUTE, WEBSEED_PATH};
pub use tracker::TrackerConfig;
pub use tracker::{ANNOUNCE_PATH, SCRAPE_PATH};
pub use upstream::{Endpoint, UpstreamConfig};
pub use values::{is_bucket_name, Domain, HttpUrl, Seconds, TrackerUrl, MAX_PRESIGN_EXPIRES};

pub const DEFAULT_PATH: &str = "config/s3torrent.toml";
pub const ENV_UPSTREAM_ACCESS_KEY_ID: &str = "S3TORRENT_UPSTREAM_ACCESS_KEY_ID";
pub const ENV_UPSTREAM_SECRET_ACCESS_KEY: &str = "S3TORRENT_UPSTREAM_SECRET_ACCESS_KEY";
pub const ENV_STORE_KEY: &str = "S3TORRENT_STORE_KEY";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub torrent: TorrentConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub tracker: TrackerConfig,
    #[serde(default)]
    pub seeder: SeederConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub uploads: UploadsConfig,
    #[serde(default)]
    pub demo: DemoConfig,
    #[serde(default)]
    pub cluster: ClusterConfig,
}

#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

fn read_secret_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("key `{key}`: cannot read {}: {e}", path.display())))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text, |k| std::env::var(k).ok())
            .map_err(|ConfigError(m)| invalid(format!("{}: {m}", path.display())))
    }

    /// Parses and validates; `env` supplies secret overrides (a closure so tests stay hermetic).
    pub fn from_toml(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        config.resolve_secrets(&env)?;
        config.validate()?;
        Ok(config)
    }

    /// Fills secrets from their files and environment variables; the environment wins over
    /// a file, a file over the inline value.
    fn resolve_secrets(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let up = &mut self.upstream;
        if let Some(path) = &up.access_key_id_file {
            up.access_key_id = read_secret_file("upstream.access_key_id_file", path)?;
        }
        if let Some(path) = &up.secret_access_key_file {
            up.secret_access_key =
                Secret::new(read_secret_file("upstream.secret_access_key_file", path)?);
        }
        if let Some(v) = env(ENV_UPSTREAM_ACCESS_KEY_ID) {
            up.access_key_id = v;
        }
        if let Some(v) = env(ENV_UPSTREAM_SECRET_ACCESS_KEY) {
            up.secret_access_key = Secret::new(v);
        }
        if let Some(v) = env(ENV_STORE_KEY) {
            self.store.key = Secret::new(v);
        }
        // The pod's own facts matter only to a cluster member.
        if let Some(v) = env(ENV_POD_NAME).filter(|_| self.cluster.enabled) {
            self.cluster.pod_name = v;
        }
        if let Some(v) = env(ENV_POD_IP).filter(|_| self.cluster.enabled) {
            let ip = v.parse().map_err(|_| {
                invalid(format!(
                    "environment variable {ENV_POD_IP}: {v:?} is not an IP address"
                ))
            })?;
            self.cluster.pod_ip = Some(ip);
        }
        for (i, c) in self.auth.credentials.iter_mut().enumerate() {
            if let Some(path) = &c.secret_access_key_file {
                let key = format!("auth.credentials[{i}].secret_access_key_file");
                c.secret_access_key = Secret::new(read_secret_file(&key, path)?);
            }
            if let Some(name) = &c.secret_access_key_env {
                let v = env(name).ok_or_else(|| {
                    invalid(format!(
                        "key `auth.credentials[{i}].secret_access_key_env`: environment variable {name} is not set"
                    ))
                })?;
                c.secret_access_key = Secret::new(v);
            }
        }
        Ok(())
    }

    /// The configuration in force, as TOML, with every secret replaced by `<redacted>`.
    pub fn effective_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let at_least_one = |ok: bool, key: &str| match ok {
            true => Ok(()),
            false => Err(invalid(format!("key `{key}` must be at least 1"))),
        };
        let up = &self.upstream;
        if up.endpoint.host.is_empty() {
            return Err(invalid("missing key `upstream.endpoint`"));
        }
        let missing = |key: &str, env: &str| {
            invalid(format!(
                "missing key `upstream.{key}` (or set the environment variable {env})"
            ))
        };
        if up.access_key_id.is_empty() {
            return Err(missing("access_key_id", ENV_UPSTREAM_ACCESS_KEY_ID));
        }
        if up.secret_access_key.is_empty() {
            return Err(missing("secret_access_key", ENV_UPSTREAM_SECRET_ACCESS_KEY));
        }
        if up.region.is_empty() {
            return Err(invalid("key `upstream.region` must not be empty"));
        }
        at_least_one(up.timeout.secs() >= 1, "upstream.timeout")?;
        at_least_one(self.torrent.max_object_size >= 1, "torrent.max_object_size")?;
        at_least_one(self.torrent.max_files >= 1, "torrent.max_files")?;
        at_least_one(
            self.torrent.max_directory_size >= 1,
            "torrent.max_directory_size",
        )?;
        at_least_one(self.limits.directory_probes >= 1, "limits.directory_probes")?;
        at_least_one(
            self.limits.max_concurrent_directories >= 1,
            "limits.max_concurrent_directories",
        )?;
        // Within the window a caller keeps its torrent (and, presigned, fresh web-seed URLs)
        // after losing READ: keep it short.
        let max_revalidate = 300;
        if self.cache.revalidate_after.secs() > max_revalidate {
            return Err(invalid(format!(
                "key `cache.revalidate_after` must be at most {max_revalidate} seconds"
            )));
        }
        if self.cache.directory_checks_window.secs() > max_revalidate {
            return Err(invalid(format!(
                "key `cache.directory_checks_window` must be at most {max_revalidate} seconds"
            )));
        }
        let limits = &self.limits;
        at_least_one(
            limits.max_concurrent_generations >= 1,
            "limits.max_concurrent_generations",
        )?;
        at_least_one(limits.fetch_streams >= 1, "limits.fetch_streams")?;
        if self.server.listen == self.admin.listen {
            return Err(invalid(
                "keys `server.listen` and `admin.listen` must differ",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.auth.credentials.iter().enumerate() {
            if c.access_key_id.is_empty() || c.secret_access_key.is_empty() {
                return Err(invalid(format!(
                    "`auth.credentials[{i}]`: access_key_id and secret_access_key must not be empty"
                )));
            }
            if !seen.insert(&c.access_key_id) {
                return Err(invalid(format!(
                    "`auth.credentials[{i}]`: access_key_id {:?} is listed twice",
                    c.access_key_id
                )));
            }
        }
        let t = &self.torrent;
        if t.webseed != WebseedMode::None && t.public_base_url.is_none() {
            return Err(invalid(
                "key `torrent.public_base_url` is required when `torrent.webseed` is public or presigned",
            ));
        }
        let max_expiry = MAX_PRESIGN_EXPIRES;
        if t.presign_expiry.secs() == 0 || t.presign_expiry.secs() > max_expiry {
            return Err(invalid(format!(
                "key `torrent.presign_expiry` must be from 1 to {max_expiry} seconds (7 days)"
            )));
        }
        if t.announce.iter().any(Vec::is_empty) {
            return Err(invalid("key `torrent.announce`: a tier must not be empty"));
        }
        let tr = &self.tracker;
        if tr.enabled && tr.public_url.is_none() {
            return Err(invalid(
                "key `tracker.public_url` is required when `tracker.enabled` is true",
            ));
        }
        let announce = ANNOUNCE_PATH;
        if let Some(url) = &tr.public_url {
            let uri = url.as_str().parse::<http::Uri>().ok();
            if uri.as_ref().map(|u| u.path()) != Some(announce) {
                return Err(invalid(format!(
                    "key `tracker.public_url`: the path must be {announce} (a path no S3 bucket can take), e.g. \"http://s3.example.com{announce}\""
                )));
            }
        }
        if tr.interval.secs() == 0
            || tr.peer_ttl.secs() < tr.interval.secs()
            || tr.max_torrents == 0
            || tr.max_peers == 0
            || tr.max_peers_per_torrent == 0
            || tr.max_peers_per_address == 0
            || tr.max_peers_per_prefix == 0
        {
            return Err(invalid(
                "keys `tracker.*`: interval ≥ 1, peer_ttl ≥ interval, max_torrents, max_peers, max_peers_per_torrent, max_peers_per_address and max_peers_per_prefix ≥ 1",
            ));
        }
        let sv = &self.server;
        at_least_one(sv.max_connections >= 1, "server.max_connections")?;
        at_least_one(
            sv.max_silent_connections >= 1,
            "server.max_silent_connections",
        )?;
        at_least_one(sv.header_timeout.secs() >= 1, "server.header_timeout")?;
        let sd = &self.seeder;
        if sd.enabled {
            at_least_one(sd.max_peers >= 1, "seeder.max_peers")?;
            at_least_one(
                sd.max_peers_per_address >= 1,
                "seeder.max_peers_per_address",
            )?;
            at_least_one(sd.max_unchoked >= 1, "seeder.max_unchoked")?;
            at_least_one(sd.webseed_slot_ttl.secs() >= 1, "seeder.webseed_slot_ttl")?;
            at_least_one(
                sd.webseed_retry_after.secs() >= 1,
                "seeder.webseed_retry_after",
            )?;
            at_least_one(sd.public_recheck.secs() >= 1, "seeder.public_recheck")?;
            let addr = sd.public_addr();
            let port = addr
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok());
            if port.is_none_or(|p| p == 0) {
                return Err(invalid(format!(
                    "key `seeder.public_addr`: {addr:?} is not host:port"
                )));
            }
            if sd.listen == self.server.listen || sd.listen == self.admin.listen {
                return Err(invalid(
                    "key `seeder.listen` must differ from the other listeners",
                ));
            }
        }
        let st = &self.store;
        if let Some(bucket) = &st.bucket {
            if !is_bucket_name(bucket) {
                return Err(invalid(format!(
                    "key `store.bucket`: {bucket:?} is not a valid S3 bucket name"
                )));
            }
            // Renewed every third of it, on Last-Modified's one-second resolution.
            if st.lease.secs() < 3 {
                return Err(invalid("key `store.lease` must be at least 3 seconds"));
            }
            at_least_one(st.lease_wait.secs() >= 1, "store.lease_wait")?;
        }
        let cl = &self.cluster;
        if cl.enabled {
            if st.bucket.is_none() {
                return Err(invalid(
                    "key `cluster.enabled` needs `store.bucket`: replicas find each other there",
                ));
            }
            if cl.pod_ip.is_none() || cl.pod_name.is_empty() {
                return Err(invalid(format!(
                    "key `cluster.enabled` needs the pod's IP and name: `cluster.pod_ip` and `cluster.pod_name`, or {ENV_POD_IP} and {ENV_POD_NAME} (downward API)"
                )));
            }
            if cl.heartbeat.secs() == 0 || cl.member_ttl.secs() < 2 * cl.heartbeat.secs() {
                return Err(invalid(
                    "keys `cluster.heartbeat` ≥ 1 and `cluster.member_ttl` ≥ twice the heartbeat",
                ));
            }
            at_least_one(cl.max_connections >= 1, "cluster.max_connections")?;
            at_least_one(
                cl.max_relayed_per_replica >= 1,
                "cluster.max_relayed_per_replica",
            )?;
            if cl.max_buffered_bytes < 1 << 20 {
                return Err(invalid(
                    "key `cluster.max_buffered_bytes` must be at least 1 MiB (1048576)",
                ));
            }
            let others = [self.server.listen, self.admin.listen, sd.listen];
            if others.contains(&cl.listen) {
                return Err(invalid(
                    "key `cluster.listen` must differ from the other listeners",
                ));
            }
        }
        if self.demo.enabled && !cfg!(feature = "demo") {
            return Err(invalid(
                "key `demo.enabled`: this binary was built without the `demo` feature",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
