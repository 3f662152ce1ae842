//! Fetch → hash → encode: streams the object from the backend with the sidecar's own
//! credentials and `If-Match` on the ETag the caller was authorized against, through piece
//! hashing off the async runtime (SHA-1 and/or the BEP 52 SHA-256 block tree, in one pass).
//!
//! Large objects are read as several ranged GETs aligned to piece boundaries, each hashed
//! on its own blocking thread: pieces are independent, so the ranges' hash lists simply
//! concatenate (the v2 root is then built over the joined piece layer). Memory per
//! generation is bounded by `streams × HASH_QUEUE_CHUNKS` chunks, one piece's block leaves
//! per stream, plus 20 + 32 bytes per piece, whatever the object's size.

use std::ops::Range;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::TorrentConfig;
use crate::s3::forwarded::Forwarded;
use crate::s3::upstream::{Identity, Purpose, Upstream};
use crate::s3::{Code, ObjectRef, S3Error};
use crate::telemetry::metrics::GenerationMetrics;
use crate::torrent::{Layout, PieceHasher, PieceHashes};

use super::facts::ObjectFacts;

/// Chunks (≤ 64 KiB each) in flight between one network reader and its hashing thread.
const HASH_QUEUE_CHUNKS: usize = 16;

/// How an object is read: how many ranged GETs at most, and from what size on.
#[derive(Debug, Clone, Copy)]
pub struct FetchPlan {
    pub streams: usize,
    pub min_parallel_bytes: u64,
}

pub struct Generation<'a> {
    pub upstream: &'a Upstream,
    pub config: &'a TorrentConfig,
    pub plan: FetchPlan,
    pub object: &'a ObjectRef,
    pub facts: &'a ObjectFacts,
    pub forwarded: &'a Forwarded,
    pub metrics: &'a GenerationMetrics,
}

impl Generation<'_> {
    /// The object's piece hashes, laid out as `layout`.
    pub async fn run(&self, layout: &Layout) -> Result<PieceHashes, S3Error> {
        let plan = self.plan;
        let ranges = layout.stretches(plan.streams, plan.min_parallel_bytes);
        let whole = ranges.len() == 1;
        let hashed = futures_util::future::try_join_all(
            ranges
                .into_iter()
                .map(|r| self.fetch_and_hash(r, layout, whole)),
        )
        .await?;
        Ok(PieceHashes::concat(hashed))
    }

    async fn fetch_and_hash(
        &self,
        range: Range<u64>,
        layout: &Layout,
        whole: bool,
    ) -> Result<PieceHashes, S3Error> {
        let range_header = format!("bytes={}-{}", range.start, range.end - 1);
        let mut headers: Vec<(&str, &str)> = vec![("if-match", self.facts.etag.as_str())];
        if !whole {
            headers.push(("range", range_header.as_str()));
        }
        headers.extend(self.forwarded.pairs());
        let mut response = self
            .upstream
            .send(
                Purpose::Fetch,
                "GET",
                self.object,
                &Identity::Sidecar,
                &headers,
            )
            .await?;
        let expected_status = if whole { 200 } else { 206 };
        if response.status() != expected_status {
            let status = response.status();
            response.finish().await;
            match status {
                412 => self.upstream.count_error("changed"),
                400 | 401 | 403 => self.upstream.warn_once(
                    &format!("fetch {status}"),
                    &format!("the backend refused the sidecar's own read of an object ({status}): check [upstream] credentials and their permissions"),
                ),
                _ => {}
            }
            return Err(fetch_refused(status));
        }
        // Backends that ignore If-Match still report the ETag of what they send.
        if response
            .header_str("etag")
            .is_some_and(|e| e != self.facts.etag)
        {
            response.finish().await;
            self.upstream.count_error("changed");
            return Err(changed());
        }

        let expected = range.end - range.start;
        let (tx, mut rx) = mpsc::channel::<Bytes>(HASH_QUEUE_CHUNKS);
        let format = self.config.format;
        let layout = layout.clone();
        let hasher = tokio::task::spawn_blocking(move || {
            let mut h = PieceHasher::new(&layout, expected, format);
            while let Some(chunk) = rx.blocking_recv() {
                h.update(&chunk);
            }
            (h.total(), h.finish())
        });
        let mut received: u64 = 0;
        let read: Result<(), S3Error> = async {
            while let Some(chunk) = response.chunk().await? {
                received += chunk.len() as u64;
                self.metrics.bytes_hashed.inc_by(chunk.len() as u64);
                if received > expected {
                    return Err(S3Error::upstream_broke(
                        "The backend sent more bytes than the object's length.",
                    ));
                }
                tx.send(chunk)
                    .await
                    .map_err(|_| S3Error::internal("the hashing thread stopped"))?;
            }
            Ok(())
        }
        .await;
        drop(tx);
        let (total, pieces) = hasher.await.map_err(|e| {
            tracing::error!(error = %e, "a hashing thread failed");
            S3Error::internal("We encountered an internal error. Please try again.")
        })?;
        read?;
        response.finish().await;
        if total != expected {
            return Err(S3Error::upstream_broke(format!(
                "The backend sent {total} of {expected} bytes. Please retry."
            )));
        }
        Ok(pieces)
    }
}

fn fetch_refused(status: u16) -> S3Error {
    match status {
        // The object was overwritten between the authorization probe and this fetch.
        412 => changed(),
        s if s >= 500 => S3Error::service_unavailable(format!(
            "The backend answered {s} while the object was fetched. Please retry."
        )),
        404 => S3Error::of(Code::NoSuchKey),
        s => S3Error::upstream_broke(format!(
            "The backend refused the sidecar's own read of the object ({s}); check [upstream] credentials."
        )),
    }
}

fn changed() -> S3Error {
    S3Error::service_unavailable(
        "The object changed while its torrent was being generated. Please retry.",
    )
}
