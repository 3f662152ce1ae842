//! `[upstream]`: the S3 backend the sidecar fronts, and the sidecar's own credentials.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::auth::Secret;
use super::values::Seconds;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Required; the default is a placeholder that validation refuses.
    pub endpoint: Endpoint,
    pub region: String,
    /// The sidecar's own credentials, used only to fetch objects a caller was allowed to read.
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Alternatives to the inline values: a file (a mounted Kubernetes Secret) whose
    /// content, without a trailing newline, is the value.
    pub access_key_id_file: Option<PathBuf>,
    pub secret_access_key_file: Option<PathBuf>,
    /// How long to wait for the backend to connect, answer, or send the next body chunk.
    #[serde(alias = "timeout_secs")]
    pub timeout: Seconds,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            endpoint: Endpoint {
                tls: false,
                host: String::new(),
                port: 0,
            },
            region: "us-east-1".to_string(),
            access_key_id: String::new(),
            secret_access_key: Secret::default(),
            access_key_id_file: None,
            secret_access_key_file: None,
            timeout: Seconds(30),
        }
    }
}

/// The backend's base URL: scheme, host and port only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
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

impl TryFrom<String> for Endpoint {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        parse_endpoint(&s)
    }
}

impl From<Endpoint> for String {
    fn from(e: Endpoint) -> String {
        e.url()
    }
}

pub(super) fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
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
