//! Logs through `tracing`: text or JSON lines on stderr, level from `[log] level` unless
//! `RUST_LOG` is set. pingora logs through the `log` crate; those records are bridged in,
//! at `info` at most unless pingora's crates are named (its `debug` lines carry request
//! heads). Nothing that carries a secret is logged: no query strings (a presigned URL is a
//! bearer token), no authorization headers.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// pingora's crates: at `debug` they log request heads as sent upstream (`Authorization`,
/// presigned query strings) and raw buffers.
const PINGORA_TARGETS: [&str; 6] = [
    "pingora",
    "pingora_core",
    "pingora_proxy",
    "pingora_http",
    "pingora_pool",
    "pingora_error",
];

/// The filter for `spec`: as given, but pingora's crates at `info` at most unless `spec`
/// names them itself (an operator debugging pingora asks for it by name).
fn filter_for(spec: &str) -> Option<EnvFilter> {
    let mut filter = EnvFilter::try_new(spec).ok()?;
    if !spec.contains("pingora") {
        for target in PINGORA_TARGETS {
            let capped = format!("{target}=info").parse().expect("a valid directive");
            filter = filter.add_directive(capped);
        }
    }
    Some(filter)
}

pub fn init(config: &LogConfig) {
    let from_env = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let filter = from_env
        .as_deref()
        .and_then(filter_for)
        .or_else(|| filter_for(&config.level))
        .unwrap_or_else(|| EnvFilter::new("info"));
    // Colours only for a person at a terminal: escape codes cost more to write than the
    // access line's fields (measured: 10k of the 26k instructions a line took), and a log
    // collector stores them as junk.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // A second init (tests, embedding) keeps the first subscriber.
    let _ = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// A warning logged once per cause: a misconfiguration (the sidecar's own key refused, a
/// store it may not write) repeats on every request, and one line says it; the metrics
/// count every occurrence. Causes come from small fixed sets (statuses, error codes), so
/// the set stays small.
#[derive(Debug, Default)]
pub struct WarnOnce {
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl WarnOnce {
    /// `true` the first time `cause` is seen.
    pub fn first(&self, cause: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        !seen.contains(cause) && seen.insert(cause.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pingora_stays_at_info_unless_named() {
        let debug = filter_for("debug").unwrap().to_string();
        assert!(debug.contains("pingora_proxy=info"), "{debug}");
        let named = filter_for("info,pingora_proxy=debug").unwrap().to_string();
        assert!(!named.contains("pingora_proxy=info"), "{named}");
    }

    #[test]
    fn once_per_cause() {
        let w = WarnOnce::default();
        assert!(w.first("403"));
        assert!(!w.first("403"));
        assert!(w.first("401"));
    }
}
