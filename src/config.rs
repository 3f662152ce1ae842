//! The TOML configuration, parsed and validated in one step before any port is bound.
//!
//! Values that can be wrong on their own (addresses, URLs, piece length) are validated by
//! their own `Deserialize` impls, so the TOML error names the key and the line. Rules that
//! span keys, and secrets from the environment, are checked in [`Config::from_toml`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::torrent::PieceLength;

pub const DEFAULT_PATH: &str = "config/s3torrent.toml";
pub const ENV_UPSTREAM_ACCESS_KEY_ID: &str = "S3TORRENT_UPSTREAM_ACCESS_KEY_ID";
pub const ENV_UPSTREAM_SECRET_ACCESS_KEY: &str = "S3TORRENT_UPSTREAM_SECRET_ACCESS_KEY";

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
    pub demo: DemoConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Base domains for virtual-hosted-style requests: `Host: {bucket}.{domain}`.
    #[serde(default)]
    pub domains: Vec<Domain>,
    /// Worker threads for the proxy; 0 means one per core.
    #[serde(default)]
    pub threads: usize,
    /// Seconds in-flight requests get to finish after SIGTERM (Kubernetes sends SIGKILL 30 s
    /// after SIGTERM by default, so the default leaves room).
    #[serde(default = "default_grace_period")]
    pub grace_period: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            domains: Vec::new(),
            threads: 0,
            grace_period: default_grace_period(),
        }
    }
}

fn default_grace_period() -> u64 {
    25
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().unwrap()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
        }
    }
}

fn default_admin_listen() -> SocketAddr {
    "127.0.0.1:9090".parse().unwrap()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub endpoint: Endpoint,
    #[serde(default = "default_region")]
    pub region: String,
    /// The sidecar's own credentials, used only to fetch objects a caller was allowed to read.
    #[serde(default)]
    pub access_key_id: String,
    #[serde(default)]
    pub secret_access_key: Secret,
    /// Alternatives to the inline values: a file (a mounted Kubernetes Secret) whose
    /// content, without a trailing newline, is the value.
    #[serde(default)]
    pub access_key_id_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// Seconds to wait for the backend to connect, answer, or send the next body chunk.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_region() -> String {
    "us-east-1".to_string()
}

fn default_timeout_secs() -> u64 {
    30
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Callers whose SigV4 signatures the sidecar can verify.
    #[serde(default)]
    pub credentials: Vec<Credential>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub access_key_id: String,
    #[serde(default)]
    pub secret_access_key: Secret,
    /// Read the secret from this file instead (a mounted Kubernetes Secret).
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// Read the secret from this environment variable instead.
    #[serde(default)]
    pub secret_access_key_env: Option<String>,
}

impl Credential {
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credential {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key),
            secret_access_key_file: None,
            secret_access_key_env: None,
        }
    }
}

/// A secret string that never shows in `Debug` output (and so never in logs).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The effective configuration shows that a secret is set, never what it is.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct TorrentConfig {
    #[serde(default)]
    pub piece_length: PieceLength,
    /// Tracker tiers (BEP 12): `[["http://t1/announce"], ["http://t2/announce"]]`.
    #[serde(default)]
    pub announce: Vec<Vec<TrackerUrl>>,
    #[serde(default = "default_max_object_size")]
    pub max_object_size: u64,
    /// Sets `private: 1` in `info` (BEP 27): peers only from the trackers.
    #[serde(default)]
    pub private: bool,
    /// Puts `x-amz-bucket` / `x-amz-key` inside `info`, as Amazon S3 did. Off by default
    /// because it changes the infohash: the same bytes under two keys become two swarms.
    #[serde(default)]
    pub s3_info_keys: bool,
    #[serde(default)]
    pub comment: Option<String>,
    /// BEP 19 web seeds (`url-list`): none, a public URL, or a presigned GET URL.
    #[serde(default)]
    pub webseed: WebseedMode,
    /// Base of web-seed URLs: `{public_base_url}/{bucket}/{key}` (path-style), e.g. the
    /// sidecar's public address. Required for `public` and `presigned`.
    #[serde(default)]
    pub public_base_url: Option<String>,
    /// Seconds a presigned web-seed URL stays valid (SigV4 allows at most 7 days).
    #[serde(default = "default_presign_expiry")]
    pub presign_expiry: u64,
}

impl Default for TorrentConfig {
    fn default() -> Self {
        TorrentConfig {
            piece_length: PieceLength::Auto,
            announce: Vec::new(),
            max_object_size: default_max_object_size(),
            private: false,
            s3_info_keys: false,
            comment: None,
            webseed: WebseedMode::None,
            public_base_url: None,
            presign_expiry: default_presign_expiry(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum WebseedMode {
    #[default]
    None,
    /// `{public_base_url}/{bucket}/{key}`: for anonymously readable objects.
    Public,
    /// The same URL presigned with the sidecar's credentials, for callers who passed READ.
    Presigned,
}

fn default_presign_expiry() -> u64 {
    24 * 3600
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerConfig {
    #[serde(default)]
    pub enabled: bool,
    /// The announce URL peers use, e.g. `http://s3.example.com/announce`; the torrent's
    /// first tier. Required when enabled.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Seconds between announces that peers are told to wait.
    #[serde(default = "default_tracker_interval")]
    pub interval: u64,
    /// Seconds after its last announce a peer is forgotten.
    #[serde(default = "default_peer_ttl")]
    pub peer_ttl: u64,
    #[serde(default = "default_max_torrents")]
    pub max_torrents: usize,
    #[serde(default = "default_max_peers")]
    pub max_peers_per_torrent: usize,
    #[serde(default = "default_max_numwant")]
    pub max_numwant: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            enabled: false,
            public_url: None,
            interval: default_tracker_interval(),
            peer_ttl: default_peer_ttl(),
            max_torrents: default_max_torrents(),
            max_peers_per_torrent: default_max_peers(),
            max_numwant: default_max_numwant(),
        }
    }
}

fn default_tracker_interval() -> u64 {
    900
}

fn default_peer_ttl() -> u64 {
    2 * 900 + 60
}

fn default_max_torrents() -> usize {
    100_000
}

fn default_max_peers() -> usize {
    1000
}

fn default_max_numwant() -> usize {
    200
}

fn default_max_object_size() -> u64 {
    5_368_709_120
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Upper bound on the bytes of cached torrents.
    #[serde(default = "default_cache_bytes")]
    pub max_bytes: u64,
    /// Seconds a caller's successful authorization probe (and the ETag it saw) is reused
    /// before the backend is asked again. 0 (default): ask on every request, so an overwrite
    /// or a revoked permission shows at once.
    #[serde(default)]
    pub revalidate_after: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: default_cache_bytes(),
            revalidate_after: 0,
        }
    }
}

fn default_cache_bytes() -> u64 {
    64 * 1024 * 1024
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Torrent generations (object reads) running at once.
    #[serde(default = "default_max_generations")]
    pub max_concurrent_generations: usize,
    /// Generations allowed to wait for a slot; past that, 503 SlowDown.
    #[serde(default = "default_max_queued")]
    pub max_queued_generations: usize,
    /// Ranged GETs, aligned to piece boundaries, used to read one large object.
    #[serde(default = "default_fetch_streams")]
    pub fetch_streams: usize,
    /// Objects smaller than this are read with one GET.
    #[serde(default = "default_parallel_fetch_min_bytes")]
    pub parallel_fetch_min_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_concurrent_generations: default_max_generations(),
            max_queued_generations: default_max_queued(),
            fetch_streams: default_fetch_streams(),
            parallel_fetch_min_bytes: default_parallel_fetch_min_bytes(),
        }
    }
}

fn default_max_generations() -> usize {
    8
}

fn default_max_queued() -> usize {
    64
}

fn default_fetch_streams() -> usize {
    4
}

fn default_parallel_fetch_min_bytes() -> u64 {
    64 * 1024 * 1024
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `warn,s3torrent=debug`); `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: default_log_level(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_string()
}

/// The embedded filesystem-backed S3 backend (cargo feature `demo`), for trying the sidecar
/// with no external service. It listens on `[upstream] endpoint`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub root: Option<PathBuf>,
}

/// A base domain for virtual-hosted-style addressing, stored lower-case without a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain(pub String);

impl Serialize for Domain {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && !s.starts_with('.')
            && !s.ends_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            return Err(serde::de::Error::custom(format!(
                "invalid domain {s:?}: expected a host name such as \"s3.example.com\" (no scheme, port or path)"
            )));
        }
        Ok(Domain(s.to_ascii_lowercase()))
    }
}

/// The backend's base URL: scheme, host and port only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// The `Host` header value the backend expects for the sidecar's own requests.
    pub fn authority(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.authority()
        )
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.url())
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_endpoint(&s).map_err(serde::de::Error::custom)
    }
}

fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let bad = |why: &str| format!("invalid endpoint {s:?}: {why}");
    let uri: http::Uri = s.parse().map_err(|_| bad("not a URL"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(bad("the scheme must be http:// or https://")),
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad(
            "a path prefix is not supported; give scheme, host and port",
        ));
    }
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok(Endpoint { tls, host, port })
}

/// An announce URL (http, https or udp).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackerUrl(pub String);

impl Serialize for TrackerUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TrackerUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = ["http://", "https://", "udp://"]
            .iter()
            .any(|p| s.starts_with(p) && s.len() > p.len())
            && !s.chars().any(char::is_whitespace);
        if !ok {
            return Err(serde::de::Error::custom(format!(
                "invalid tracker URL {s:?}: expected http://, https:// or udp://"
            )));
        }
        Ok(TrackerUrl(s))
    }
}

fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.parse::<http::Uri>().is_ok_and(|u| u.host().is_some());
    if ok {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "key `{key}`: {url:?} is not an http(s) URL"
        )))
    }
}

fn read_secret_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("key `{key}`: cannot read {}: {e}", path.display())))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text, |k| std::env::var(k).ok())
            .map_err(|ConfigError(m)| ConfigError(format!("{}: {m}", path.display())))
    }

    /// Parses and validates; `env` supplies secret overrides (a closure so tests stay hermetic).
    pub fn from_toml(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
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
        for (i, c) in self.auth.credentials.iter_mut().enumerate() {
            if let Some(path) = &c.secret_access_key_file {
                let key = format!("auth.credentials[{i}].secret_access_key_file");
                c.secret_access_key = Secret::new(read_secret_file(&key, path)?);
            }
            if let Some(name) = &c.secret_access_key_env {
                let v = env(name).ok_or_else(|| {
                    ConfigError(format!(
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
        let missing = |key: &str, env: &str| {
            ConfigError(format!(
                "missing key `upstream.{key}` (or set the environment variable {env})"
            ))
        };
        if self.upstream.access_key_id.is_empty() {
            return Err(missing("access_key_id", ENV_UPSTREAM_ACCESS_KEY_ID));
        }
        if self.upstream.secret_access_key.is_empty() {
            return Err(missing("secret_access_key", ENV_UPSTREAM_SECRET_ACCESS_KEY));
        }
        if self.upstream.region.is_empty() {
            return Err(ConfigError(
                "key `upstream.region` must not be empty".into(),
            ));
        }
        if self.upstream.timeout_secs == 0 {
            return Err(ConfigError(
                "key `upstream.timeout_secs` must be at least 1".into(),
            ));
        }
        if self.torrent.max_object_size == 0 {
            return Err(ConfigError(
                "key `torrent.max_object_size` must be at least 1".into(),
            ));
        }
        if self.limits.max_concurrent_generations == 0 {
            return Err(ConfigError(
                "key `limits.max_concurrent_generations` must be at least 1".into(),
            ));
        }
        if self.limits.fetch_streams == 0 {
            return Err(ConfigError(
                "key `limits.fetch_streams` must be at least 1".into(),
            ));
        }
        if self.server.listen == self.admin.listen {
            return Err(ConfigError(
                "keys `server.listen` and `admin.listen` must differ".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.auth.credentials.iter().enumerate() {
            if c.access_key_id.is_empty() || c.secret_access_key.is_empty() {
                return Err(ConfigError(format!(
                    "`auth.credentials[{i}]`: access_key_id and secret_access_key must not be empty"
                )));
            }
            if !seen.insert(&c.access_key_id) {
                return Err(ConfigError(format!(
                    "`auth.credentials[{i}]`: access_key_id {:?} is listed twice",
                    c.access_key_id
                )));
            }
        }
        let t = &self.torrent;
        if t.webseed != WebseedMode::None && t.public_base_url.is_none() {
            return Err(ConfigError(
                "key `torrent.public_base_url` is required when `torrent.webseed` is public or presigned".into(),
            ));
        }
        if let Some(url) = &t.public_base_url {
            check_url("torrent.public_base_url", url)?;
        }
        if t.presign_expiry == 0 || t.presign_expiry > crate::sigv4::MAX_PRESIGN_EXPIRES {
            return Err(ConfigError(format!(
                "key `torrent.presign_expiry` must be from 1 to {} seconds (7 days)",
                crate::sigv4::MAX_PRESIGN_EXPIRES
            )));
        }
        let tr = &self.tracker;
        if tr.enabled {
            let url = tr.public_url.as_deref().ok_or_else(|| {
                ConfigError(
                    "key `tracker.public_url` is required when `tracker.enabled` is true".into(),
                )
            })?;
            check_url("tracker.public_url", url)?;
        }
        if tr.interval == 0
            || tr.peer_ttl < tr.interval
            || tr.max_torrents == 0
            || tr.max_peers_per_torrent == 0
        {
            return Err(ConfigError(
                "keys `tracker.*`: interval ≥ 1, peer_ttl ≥ interval, max_torrents and max_peers_per_torrent ≥ 1".into(),
            ));
        }
        if self.torrent.announce.iter().any(Vec::is_empty) {
            return Err(ConfigError(
                "key `torrent.announce`: a tier must not be empty".into(),
            ));
        }
        if self.demo.enabled && !cfg!(feature = "demo") {
            return Err(ConfigError(
                "key `demo.enabled`: this binary was built without the `demo` feature".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[upstream]
endpoint = "http://127.0.0.1:9000"
access_key_id = "AK"
secret_access_key = "SK"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, |_| None)
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(c.upstream.region, "us-east-1");
        assert_eq!(c.torrent.piece_length, PieceLength::Auto);
        assert_eq!(c.torrent.max_object_size, 5_368_709_120);
        assert_eq!(c.upstream.endpoint.authority(), "127.0.0.1:9000");
    }

    #[test]
    fn shipped_config_is_valid() {
        let text = include_str!("../config/s3torrent.toml");
        parse(text).unwrap();
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let text = format!("{MINIMAL}\n[torrent]\npiece_length = 1000\n");
        let e = parse(&text).unwrap_err().0;
        assert!(e.contains("line 8"), "{e}");
        assert!(e.contains("piece_length"), "{e}");

        let e = parse(&format!("{MINIMAL}\n[server]\nlisten = \"nope\"\n"))
            .unwrap_err()
            .0;
        assert!(e.contains("line 8") && e.contains("listen"), "{e}");

        let e = parse(&format!("{MINIMAL}\n[server]\nlisten_addr = 1\n"))
            .unwrap_err()
            .0;
        assert!(e.contains("unknown field `listen_addr`"), "{e}");

        let e = parse(&MINIMAL.replace("http://", "ftp://")).unwrap_err().0;
        assert!(e.contains("endpoint") && e.contains("line 3"), "{e}");
    }

    #[test]
    fn secrets_from_env_override_and_missing_ones_are_named() {
        let text = "[upstream]\nendpoint = \"http://h:1\"\n";
        let e = parse(text).unwrap_err().0;
        assert!(e.contains("upstream.access_key_id"), "{e}");
        let c = Config::from_toml(text, |k| Some(format!("from-env-{k}"))).unwrap();
        assert_eq!(
            c.upstream.secret_access_key.expose(),
            format!("from-env-{ENV_UPSTREAM_SECRET_ACCESS_KEY}")
        );
    }

    #[test]
    fn secrets_from_files_and_env() {
        let dir = std::env::temp_dir().join(format!("s3t-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("sk"), "from-file\n").unwrap();
        let text = format!(
            "[upstream]\nendpoint = \"http://h:1\"\naccess_key_id = \"AK\"\nsecret_access_key_file = \"{0}/sk\"\n\
             [[auth.credentials]]\naccess_key_id = \"C1\"\nsecret_access_key_file = \"{0}/sk\"\n\
             [[auth.credentials]]\naccess_key_id = \"C2\"\nsecret_access_key_env = \"C2_SECRET\"\n",
            dir.display()
        );
        let env = |k: &str| (k == "C2_SECRET").then(|| "from-env".to_string());
        let c = Config::from_toml(&text, env).unwrap();
        assert_eq!(c.upstream.secret_access_key.expose(), "from-file");
        assert_eq!(
            c.auth.credentials[0].secret_access_key.expose(),
            "from-file"
        );
        assert_eq!(c.auth.credentials[1].secret_access_key.expose(), "from-env");

        let e = Config::from_toml(&text, |_| None).unwrap_err().0;
        assert!(
            e.contains("auth.credentials[1].secret_access_key_env"),
            "{e}"
        );
        let e = parse(&text.replace("/sk", "/missing")).unwrap_err().0;
        assert!(
            e.contains("upstream.secret_access_key_file") && e.contains("missing"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn endpoint_forms() {
        assert_eq!(
            parse_endpoint("https://s3.example.com").unwrap(),
            Endpoint {
                tls: true,
                host: "s3.example.com".into(),
                port: 443
            }
        );
        assert_eq!(
            parse_endpoint("https://s3.example.com")
                .unwrap()
                .authority(),
            "s3.example.com"
        );
        assert!(parse_endpoint("http://h:9000/prefix").is_err());
        assert!(parse_endpoint("h:9000").is_err());
    }

    #[test]
    fn rejects_bad_domains_trackers_and_duplicate_keys() {
        assert!(parse(&format!("{MINIMAL}[server]\ndomains = [\"http://x\"]\n")).is_err());
        assert!(parse(&format!("{MINIMAL}[torrent]\nannounce = [[\"ftp://x\"]]\n")).is_err());
        assert!(parse(&format!("{MINIMAL}[torrent]\nannounce = [[]]\n")).is_err());
        let dup = "[[auth.credentials]]\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n";
        assert!(parse(&format!("{MINIMAL}{dup}{dup}")).is_err());
    }

    #[test]
    fn effective_config_round_trips_and_redacts_secrets() {
        let c = parse(&format!(
            "{MINIMAL}[[auth.credentials]]\naccess_key_id = \"a\"\nsecret_access_key = \"hunter2\"\n[torrent]\npiece_length = 65536\nannounce = [[\"udp://t:1\"]]\n"
        ))
        .unwrap();
        let shown = c.effective_toml();
        assert!(
            !shown.contains("hunter2") && !shown.contains("\"SK\""),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"));
        // Everything else reads back as the same configuration.
        let back = Config::from_toml(&shown, |_| None).unwrap();
        assert_eq!(back.torrent, c.torrent);
        assert_eq!(back.upstream.endpoint, c.upstream.endpoint);
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let c = parse(&format!(
            "{MINIMAL}[[auth.credentials]]\naccess_key_id = \"a\"\nsecret_access_key = \"hunter2\"\n"
        ))
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{c:?}").contains("\"SK\""));
    }
}
