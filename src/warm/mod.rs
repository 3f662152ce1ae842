//! `s3torrent warm --config PATH s3://bucket/prefix [--concurrency N]`: fills the shared
//! store ahead of the first `?torrent`, so no caller waits for a large object to be read.
//!
//! Lists the prefix (ListObjectsV2, paginated) and, `--concurrency` objects at a time, asks
//! the same catalog the sidecar runs to make sure the store holds each object's torrent for
//! its current ETag: stored ones are skipped, so a rerun resumes where an interrupted run
//! stopped. Replicas serving meanwhile take part through the same leases.
//!
//! With `--directory`, the prefix's directory torrent (`?torrent&prefix=`) is stored
//! instead: one entry for every object under it, as a caller's request would name it.

mod progress;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::catalog::{Catalog, Warmed};
use crate::config::Config;
use crate::s3::upstream::Upstream;
use crate::s3::ObjectRef;
use crate::telemetry::metrics::Metrics;

use crate::s3::listing::{self, Listed};
use progress::{Counts, Progress};

/// What to warm: `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub bucket: String,
    pub prefix: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?}: expected s3://bucket/prefix"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if !crate::s3::route::is_bucket_name(bucket) {
            return Err(format!("{url:?}: {bucket:?} is not a bucket name"));
        }
        Ok(Target {
            bucket: bucket.into(),
            prefix: prefix.into(),
        })
    }
}

/// How a warm runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Objects read and hashed at a time.
    pub concurrency: usize,
    /// Keys per listing page (S3's maximum is 1000).
    pub page_size: u16,
    /// Where to keep the run's Prometheus metrics (rewritten every few seconds and at the
    /// end), for a node exporter's textfile collector: a batch job has no port to scrape.
    pub metrics_file: Option<PathBuf>,
    /// Store the prefix's directory torrent (`?torrent&prefix=`) instead of its objects'.
    pub directory: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            // Enough to overlap the backend's latency with hashing on every core.
            concurrency: 4,
            page_size: 1000,
            metrics_file: None,
            directory: false,
        }
    }
}

/// Runs a warm to the end; the exit code is 0 only if every object ended stored or skipped.
pub fn main(config: Config, target: Target, options: Options) -> ExitCode {
    if config.store.bucket.is_none() {
        eprintln!("s3torrent warm: the configuration has no [store] bucket to warm");
        return ExitCode::from(64);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let counts = Arc::new(Counts::default());
    let result = runtime.block_on(run(Arc::new(config), target, options, counts.clone()));
    match result {
        Ok(summary) if counts.failed.load(Relaxed) == 0 => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Ok(summary) => {
            println!("{summary}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("s3torrent warm: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(
    config: Arc<Config>,
    target: Target,
    options: Options,
    counts: Arc<Counts>,
) -> Result<String, String> {
    let metrics = Arc::new(Metrics::new());
    let upstream = Arc::new(Upstream::new(&config.upstream, metrics.clone()));
    let catalog = Arc::new(Catalog::new(
        config.clone(),
        metrics.clone(),
        upstream.clone(),
        None,
    ));
    if options.directory {
        let summary = warm_directory(&catalog, &metrics, &target, &counts).await;
        if let Some(path) = &options.metrics_file {
            write_metrics(&metrics, path);
        }
        return summary;
    }
    let exporter = options.metrics_file.clone().map(|path| {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(METRICS_EVERY).await;
                write_metrics(&metrics, &path);
            }
        })
    });
    let progress = Arc::new(Progress::new());
    let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut token: Option<String> = None;
    loop {
        let (bucket, prefix) = (&target.bucket, &target.prefix);
        let page = listing::list_page(
            &upstream,
            bucket,
            prefix,
            token.as_deref(),
            options.page_size,
        )
        .await
        .map_err(|e| e.message)?;
        for listed in page.objects {
            counts.listed.fetch_add(1, Relaxed);
            counts.listed_bytes.fetch_add(listed.size, Relaxed);
            let permit = slots.clone().acquire_owned().await.expect("never closed");
            let (catalog, counts, progress) = (catalog.clone(), counts.clone(), progress.clone());
            let metrics = metrics.clone();
            let bucket = target.bucket.clone();
            tasks.spawn(async move {
                let _permit = permit;
                warm_one(&catalog, &metrics, bucket, listed, &counts).await;
                progress.update(&counts);
            });
            // Reap finished tasks as we go: a prefix may hold millions of objects.
            while tasks.try_join_next().is_some() {}
        }
        progress.update(&counts);
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    while tasks.join_next().await.is_some() {}
    if let (Some(exporter), Some(path)) = (exporter, &options.metrics_file) {
        exporter.abort();
        write_metrics(&metrics, path);
    }
    Ok(progress.finish(&counts))
}

/// `--directory`: one torrent for the prefix, stored once; a rerun finds it stored.
async fn warm_directory(
    catalog: &Arc<Catalog>,
    metrics: &Metrics,
    target: &Target,
    counts: &Counts,
) -> Result<String, String> {
    let url = format!("s3://{}/{}", target.bucket, target.prefix);
    let warmed = catalog
        .ensure_directory_stored(&target.bucket, &target.prefix)
        .await;
    let (label, said) = match warmed {
        Ok(Warmed::Stored { bytes }) => {
            metrics.warm.bytes_hashed.inc_by(bytes);
            ("stored", format!("stored, {bytes} bytes hashed"))
        }
        Ok(Warmed::AlreadyStored) => ("skipped", "already stored".into()),
        Ok(Warmed::Small) => ("skipped", "under store.min_bytes, not stored".into()),
        Err(e) => {
            counts.failed.fetch_add(1, Relaxed);
            ("failed", format!("failed: {}", e.message))
        }
    };
    metrics.warm.objects.with_label_values(&[label]).inc();
    Ok(format!("warm: directory {url}: {said}"))
}

const METRICS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Replaces `path` whole (write, then rename), so a collector never reads half a file.
fn write_metrics(metrics: &Metrics, path: &Path) {
    let tmp = path.with_extension("tmp");
    let written = std::fs::write(&tmp, metrics.render()).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        eprintln!("warm: cannot write metrics to {}: {e}", path.display());
    }
}

async fn warm_one(
    catalog: &Arc<Catalog>,
    metrics: &Metrics,
    bucket: String,
    listed: Listed,
    counts: &Counts,
) {
    let object = ObjectRef {
        bucket,
        key: listed.key,
        version_id: None,
    };
    // Empty objects and folder markers have no torrent (clients reject a length of 0).
    let result = match listed.size {
        0 => Ok(Warmed::AlreadyStored),
        _ => catalog.ensure_stored(&object).await,
    };
    let label = match result {
        Ok(Warmed::Stored { bytes }) => {
            counts.stored.fetch_add(1, Relaxed);
            counts.hashed_bytes.fetch_add(bytes, Relaxed);
            metrics.warm.bytes_hashed.inc_by(bytes);
            "stored"
        }
        Ok(Warmed::AlreadyStored | Warmed::Small) => {
            counts.skipped.fetch_add(1, Relaxed);
            "skipped"
        }
        Err(e) if e.code == crate::s3::Code::InvalidRequest && listed.size > 0 => {
            // Not eligible (too large for `torrent.max_object_size`, SSE-C): not a failure.
            eprintln!(
                "warm: skipped s3://{}/{}: {}",
                object.bucket, object.key, e.message
            );
            counts.skipped.fetch_add(1, Relaxed);
            "skipped"
        }
        Err(e) => {
            eprintln!(
                "warm: failed s3://{}/{}: {}",
                object.bucket, object.key, e.message
            );
            counts.failed.fetch_add(1, Relaxed);
            "failed"
        }
    };
    counts.done_bytes.fetch_add(listed.size, Relaxed);
    metrics.warm.objects.with_label_values(&[label]).inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("s3://bucket/some/prefix/").unwrap();
        assert_eq!(
            (t.bucket.as_str(), t.prefix.as_str()),
            ("bucket", "some/prefix/")
        );
        assert_eq!(Target::parse("s3://bucket").unwrap().prefix, "");
        assert!(Target::parse("bucket/prefix").is_err());
        assert!(Target::parse("s3://Bad_Bucket/x").is_err());
    }
}
