//! Fetch → hash → encode: streams the object from the backend with the sidecar's own
//! credentials and `If-Match` on the ETag the caller was authorized against, through piece
//! hashing off the async runtime (SHA-1 and/or the BEP 52 SHA-256 block tree, in one pass).
//!
//! Large objects are read as several ranged GETs aligned to piece boundaries, each hashed
//! on the blocking pool on its own: pieces are independent, so the ranges' hash lists simply
//! concatenate (the v2 root is then built over the joined piece layer). Memory per
//! generation is bounded by `streams × HASH_BEHIND` bytes, one piece's block leaves
//! per stream, plus 20 + 32 bytes per piece, whatever the object's size.

use std::ops::Range;

use crate::common::blocking_feed::BlockingFeed;
use crate::config::TorrentConfig;
use crate::s3::forwarded::Forwarded;
use crate::s3::upstream::{IfMatch, Purpose, Upstream, UpstreamResponse};
use crate::s3::{Code, ObjectRef, S3Error};
use crate::telemetry::metrics::GenerationMetrics;
use crate::torrent::{Layout, PieceHasher, PieceHashes};

use super::facts::ObjectFacts;

/// Bytes read and not hashed yet, per stream: the reader waits past it.
pub(super) const HASH_BEHIND: usize = 1 << 20;
/// Bytes hashed per trip to the blocking pool.
pub(super) const HASH_BATCH: usize = 256 << 10;

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
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if !whole {
            headers.push(("range", range_header.as_str()));
        }
        headers.extend(self.forwarded.pairs());
        let etag = &self.facts.etag;
        let read = self
            .upstream
            .get_if_match(Purpose::Fetch, self.object, etag, &headers);
        // The object was overwritten between the authorization probe and this fetch.
        let IfMatch::Same(mut response) = read.await? else {
            return Err(changed());
        };
        let expected_status = if whole { 200 } else { 206 };
        if response.status() != expected_status {
            return Err(refused_read(self.upstream, response).await);
        }
        let expected = range.end - range.start;
        let hasher = PieceHasher::new(layout, expected, self.config.format);
        let feed = BlockingFeed::spawn(hasher, PieceHasher::update, HASH_BATCH, HASH_BEHIND);
        stream_into(&mut response, &feed, expected, self.metrics).await?;
        let hasher = feed.finish().await.ok_or_else(|| {
            tracing::error!("a hashing task failed");
            S3Error::internal("We encountered an internal error. Please try again.")
        })?;
        let (total, pieces) = (hasher.total(), hasher.finish());
        response.finish().await;
        if total != expected {
            return Err(S3Error::upstream_broke(format!(
                "The backend sent {total} of {expected} bytes. Please retry."
            )));
        }
        Ok(pieces)
    }
}

/// Feeds `response`'s body to `feed`; more than `expected` bytes is the backend's fault.
/// Returns the bytes received.
pub(super) async fn stream_into<S: Send + 'static>(
    response: &mut UpstreamResponse<'_>,
    feed: &BlockingFeed<S>,
    expected: u64,
    metrics: &GenerationMetrics,
) -> Result<u64, S3Error> {
    let mut received: u64 = 0;
    while let Some(chunk) = response.chunk().await? {
        received += chunk.len() as u64;
        metrics.bytes_hashed.inc_by(chunk.len() as u64);
        if received > expected {
            return Err(S3Error::upstream_broke(
                "The backend sent more bytes than the object's length.",
            ));
        }
        if !feed.feed(chunk).await {
            return Err(S3Error::internal("the hashing task stopped"));
        }
    }
    Ok(received)
}

/// A read the backend did not answer as asked: a warning once for a refusal of the
/// sidecar's own credentials, and the error for the caller.
pub(super) async fn refused_read(upstream: &Upstream, response: UpstreamResponse<'_>) -> S3Error {
    let status = response.status();
    response.finish().await;
    if let 400 | 401 | 403 = status {
        upstream.warn_once(
            &format!("fetch {status}"),
            &format!("the backend refused the sidecar's own read of an object ({status}): check [upstream] credentials and their permissions"),
        );
    }
    fetch_refused(status)
}

fn fetch_refused(status: u16) -> S3Error {
    match status {
        s if s >= 500 => S3Error::service_unavailable(format!(
            "The backend answered {s} while the object was fetched. Please retry."
        )),
        404 => S3Error::of(Code::NoSuchKey),
        s => S3Error::upstream_broke(format!(
            "The backend refused the sidecar's own read of the object ({s}); check [upstream] credentials."
        )),
    }
}

pub(super) fn changed() -> S3Error {
    S3Error::service_unavailable(
        "The object changed while its torrent was being generated. Please retry.",
    )
}
