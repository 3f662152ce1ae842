//! Logs through `tracing`: text or JSON lines on stderr, level from `[log] level` unless
//! `RUST_LOG` is set. pingora logs through the `log` crate; those records are bridged in.
//! Nothing that carries a secret is logged: no query strings (a presigned URL is a bearer
//! token), no authorization headers.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests, embedding) keeps the first subscriber.
    let _ = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
