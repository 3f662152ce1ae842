//! A directory's generation: the torrent's bytes cut into piece-aligned stretches (as one
//! large object is), hashed side by side; each stretch reads its objects' segments in order,
//! one ranged `GET` per object segment with the sidecar's credentials and `If-Match` on the
//! ETag the caller was authorized against. Memory per stretch is the bytes read ahead of
//! the hasher and 20 + 32 bytes per piece, whatever the number of files.

use std::ops::Range;

use crate::common::blocking_feed::BlockingFeed;
use crate::s3::forwarded::Forwarded;
use crate::s3::upstream::{IfMatch, Purpose, Upstream};
use crate::s3::S3Error;
use crate::telemetry::metrics::GenerationMetrics;
use crate::torrent::{FileTree, Format, Layout, MultiHasher, StretchHashes};

use super::directory::DirectoryFacts;
use super::generate::{changed, refused_read, stream_into, FetchPlan, HASH_BATCH, HASH_BEHIND};

pub struct FilesGeneration<'a> {
    pub upstream: &'a Upstream,
    pub format: Format,
    pub plan: FetchPlan,
    pub directory: &'a DirectoryFacts,
    pub forwarded: &'a Forwarded,
    pub metrics: &'a GenerationMetrics,
}

impl FilesGeneration<'_> {
    /// The v1 pieces and each file's v2 tree, laid out as `layout`.
    pub async fn run(&self, layout: &Layout) -> Result<(Vec<u8>, Vec<Option<FileTree>>), S3Error> {
        let ranges = layout.stretches(self.plan.streams, self.plan.min_parallel_bytes);
        let parts = futures_util::future::try_join_all(
            ranges.into_iter().map(|r| self.hash_stretch(r, layout)),
        )
        .await?;
        Ok(StretchHashes::join(parts, layout, self.format))
    }

    async fn hash_stretch(
        &self,
        range: Range<u64>,
        layout: &Layout,
    ) -> Result<StretchHashes, S3Error> {
        let hasher = MultiHasher::stretch(layout.clone(), range, self.format);
        let segments = hasher.segments().to_vec();
        let feed = BlockingFeed::spawn(hasher, MultiHasher::update, HASH_BATCH, HASH_BEHIND);
        for segment in segments {
            let file = &self.directory.files[segment.file];
            let (start, end) = (segment.range.start, segment.range.end);
            let range_header = format!("bytes={start}-{}", end - 1);
            let mut headers = vec![("range", range_header.as_str())];
            headers.extend(self.forwarded.pairs());
            let object = self.directory.object(segment.file);
            let read = self
                .upstream
                .get_if_match(Purpose::Fetch, &object, &file.etag, &headers);
            let IfMatch::Same(mut response) = read.await? else {
                return Err(changed());
            };
            let whole = start == 0 && end == file.length;
            let status = response.status();
            if status != 206 && !(status == 200 && whole) {
                return Err(refused_read(self.upstream, response).await);
            }
            let expected = end - start;
            let received = stream_into(&mut response, &feed, expected, self.metrics).await?;
            response.finish().await;
            if received != expected {
                return Err(S3Error::upstream_broke(format!(
                    "The backend sent {received} of {expected} bytes of {:?}. Please retry.",
                    file.key
                )));
            }
        }
        let hasher = feed.finish().await.ok_or_else(|| {
            tracing::error!("a hashing task failed");
            S3Error::internal("We encountered an internal error. Please try again.")
        })?;
        hasher
            .finish()
            .ok_or_else(|| S3Error::internal("a stretch was not hashed whole"))
    }
}
