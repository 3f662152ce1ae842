//! With `objects = "public"`, only objects an anonymous caller may read are seeded (knowing
//! an infohash is weaker than a signature). "Anonymous" means no one at all: the check is an
//! unsigned one-byte `GET` that carries no caller's context (no `X-Forwarded-For`), so an
//! object public only to some addresses is not public. It is asked again every
//! `seeder.public_recheck`: an object made private, or changed, stops being seeded.

use std::sync::Arc;

use crate::s3::upstream::{Identity, Purpose, Upstream};
use crate::s3::ObjectRef;

use super::Seeder;

/// Whether an anonymous caller, with no context of any caller's, may read `object` as it is
/// at `etag`; `None` when the backend could not say (unreachable, 5xx).
pub async fn readable_by_anyone(
    upstream: &Upstream,
    object: &ObjectRef,
    etag: &str,
) -> Option<bool> {
    let headers = [("range", "bytes=0-0")];
    let response = upstream
        .send(
            Purpose::Probe,
            "GET",
            object,
            &Identity::Anonymous,
            &headers,
        )
        .await
        .ok()?;
    let status = response.status();
    let readable = matches!(status, 200 | 206) && response.header_str("etag") == Some(etag);
    match status {
        200 => response.finish().await,
        _ => drop(response.small_body(64 * 1024).await),
    }
    (status < 500).then_some(readable)
}

impl Seeder {
    /// Asks again, every `public_recheck`, whether each seeded object is still public, and
    /// retires the torrents of those that are not (a backend that cannot say retires
    /// nothing: an outage is not a revocation).
    pub(super) async fn recheck_public(self: Arc<Self>) {
        let every = self.config.public_recheck.get();
        loop {
            tokio::time::sleep(every).await;
            for torrent in self.registry.all() {
                for file in &torrent.files {
                    let still = readable_by_anyone(&self.upstream, &file.object, &file.etag);
                    if still.await == Some(false) {
                        tracing::info!(target: "s3torrent::seeder", bucket = %file.object.bucket, "an object is no longer public (or changed): no longer seeded");
                        torrent.retire();
                        break;
                    }
                }
            }
        }
    }
}
