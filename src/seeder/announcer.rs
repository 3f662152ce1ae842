//! Announcing the seeder to a torrent's other trackers (`[seeder] announce_external`): plain
//! HTTP announces (BEP 3) at the interval each tracker asks for, until the torrent is retired.
//! The built-in tracker needs none (the seed is listed there directly); `https` and `udp`
//! trackers are not announced to.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::torrent::bencode;

use super::torrents::SeedTorrent;

const TIMEOUT: Duration = Duration::from_secs(15);
const MIN_INTERVAL: u64 = 60;
const MAX_INTERVAL: u64 = 3600;
/// A tracker's answer is small; more is not an answer.
const MAX_ANSWER: usize = 64 * 1024;

/// Announces `torrent` at `url` (http only) as a seed on `port`, forever or until retired.
pub async fn announce_loop(url: String, torrent: Arc<SeedTorrent>, peer_id: [u8; 20], port: u16) {
    let mut event = "&event=started";
    while !torrent.is_retired() {
        let interval = match announce_once(&url, &torrent, &peer_id, port, event).await {
            Ok(interval) => interval.clamp(MIN_INTERVAL, MAX_INTERVAL),
            Err(why) => {
                // The host only: private trackers put a passkey in the announce URL.
                tracing::debug!(target: "s3torrent::seeder", tracker = tracker_host(&url), why, "announce failed");
                MAX_INTERVAL / 4
            }
        };
        event = "";
        tokio::time::sleep(Duration::from_secs(interval)).await;
    }
}

async fn announce_once(
    url: &str,
    torrent: &SeedTorrent,
    peer_id: &[u8; 20],
    port: u16,
    event: &str,
) -> Result<u64, &'static str> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("not an http:// tracker")?;
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let escape = |b: &[u8]| b.iter().map(|b| format!("%{b:02X}")).collect::<String>();
    let sep = if path.contains('?') { '&' } else { '?' };
    let target = format!(
        "/{path}{sep}info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left=0&compact=1{event}",
        escape(&torrent.info_hash),
        escape(peer_id),
    );
    let host = authority;
    let addr = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|_| "cannot connect")?;
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: s3torrent\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|_| "write failed")?;
        let mut answer = Vec::new();
        (&mut stream)
            .take(MAX_ANSWER as u64)
            .read_to_end(&mut answer)
            .await
            .map_err(|_| "read failed")?;
        Ok::<_, &'static str>(answer)
    };
    let answer = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| "timed out")??;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP answer")?;
    let body = bencode::decode(&answer[split + 4..]).map_err(|_| "not bencode")?;
    if body.get("failure reason").is_some() {
        return Err("the tracker refused");
    }
    let interval = body
        .get("interval")
        .and_then(|v| v.as_int())
        .unwrap_or(1800);
    Ok(u64::try_from(interval).unwrap_or(1800))
}

/// `host:port` of an http URL, for logs.
fn tracker_host(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap_or("");
    rest.split(['/', '?']).next().unwrap_or("")
}

/// Whether `url` is a tracker this announcer can reach (http://) and not `own`.
pub fn announceable(url: &str, own: Option<&str>) -> bool {
    url.starts_with("http://") && Some(url) != own
}

#[cfg(test)]
mod tests {
    #[test]
    fn logs_name_the_tracker_host_only() {
        let url = "http://tracker.example:8080/a1b2c3passkey/announce?pk=secret";
        assert_eq!(super::tracker_host(url), "tracker.example:8080");
    }
}
