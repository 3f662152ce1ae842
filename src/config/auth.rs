//! `[auth]`: the callers whose signatures the sidecar can verify, and how secrets stay secret.

use std::path::PathBuf;

use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Callers whose SigV4 signatures the sidecar can verify.
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
