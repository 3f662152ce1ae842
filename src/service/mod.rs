//! The `?torrent` service: one request, after routing and signature verification, goes
//! authorize (ask the backend as the caller) → the catalog (cache, store, generation) →
//! tracker and seeder → render (per-response web seeds) → respond.
//!
//! - [`authorize`] — the READ check; yields the [`ObjectFacts`] the torrent is built on.
//! - [`directory`] — `?torrent&prefix=`: the listing as the caller, a READ check of every
//!   object, then the catalog as for one object.
//! - [`directory_checks`] — a caller's READ checks of a directory's objects, reused briefly
//!   for the same listing.
//! - [`probe_cache`] — optional short reuse of a caller's READ check.
//! - [`response`] — the torrent response's headers, `If-None-Match`, the magnet link.

mod authorize;
mod directory;
mod directory_checks;
mod probe_cache;
pub mod response;

use std::sync::Arc;
use std::time::SystemTime;

use crate::catalog::directory::DirectoryFacts;
use crate::catalog::{CacheStatus, Catalog, ObjectFacts};
use crate::config::{Config, SeedObjects, WebseedMode};
use crate::s3::forwarded::Forwarded;
use crate::s3::route::TorrentRequest;
use crate::s3::sigv4::{presign_url, Caller, SigningKey};
use crate::s3::upstream::Upstream;
use crate::s3::{ObjectRef, S3Error};
use crate::seeder::public::readable_by_anyone;
use crate::seeder::SeedFile;
use crate::swarm::Swarm;
use crate::torrent::Torrent;

use authorize::Authorizer;
use directory_checks::DirectoryChecks;
use probe_cache::ProbeCache;
use response::{magnet_link, reply, Rendered, Reply};

pub struct TorrentService {
    config: Arc<Config>,
    catalog: Arc<Catalog>,
    swarm: Swarm,
    upstream: Arc<Upstream>,
    probes: ProbeCache,
    /// Callers' READ checks of a directory's objects, reused briefly.
    directory_checks: DirectoryChecks,
    /// Directory requests being handled (`limits.max_concurrent_directories`).
    directories: tokio::sync::Semaphore,
}

impl TorrentService {
    pub fn new(
        config: Arc<Config>,
        catalog: Arc<Catalog>,
        upstream: Arc<Upstream>,
        swarm: Swarm,
    ) -> Self {
        TorrentService {
            swarm,
            upstream,
            catalog,
            probes: ProbeCache::new(config.cache.revalidate_after.get()),
            directory_checks: DirectoryChecks::new(
                config.cache.directory_checks_window.get(),
                config.cache.max_directory_checks_bytes,
            ),
            directories: tokio::sync::Semaphore::new(config.limits.max_concurrent_directories),
            config,
        }
    }

    pub async fn handle(
        self: &Arc<Self>,
        request: &TorrentRequest,
        caller: &Caller,
        forwarded: &Forwarded,
        if_none_match: Option<&str>,
        cache_status: &mut CacheStatus,
    ) -> Result<Reply, S3Error> {
        let object = &request.object;
        let authorizer = Authorizer {
            upstream: &self.upstream,
            probes: &self.probes,
        };
        let facts = authorizer.authorize(object, caller, forwarded).await?;
        let torrent = self
            .catalog
            .get_or_make(object, &facts, forwarded, cache_status)
            .await?;
        self.swarm.served(&torrent);
        self.offer_to_seeder(object, &torrent, &facts, caller).await;
        let rendered = self.render(object, &torrent, caller, &facts)?;
        let charged = facts.request_charged;
        Ok(reply(object, &torrent, rendered, charged, if_none_match))
    }

    /// Hands the torrent to the seeder: always with `objects = "all"`; with `"public"` only
    /// if anyone may read the object: an anonymous check with no caller's context (not this
    /// caller's authorization, which carried its address). For an anonymous caller it is
    /// made before answering, so the seed is there when its client dials; for a signed
    /// one in the background.
    async fn offer_to_seeder(
        self: &Arc<Self>,
        object: &ObjectRef,
        torrent: &Arc<Torrent>,
        facts: &ObjectFacts,
        caller: &Caller,
    ) {
        // Every request for a seeded torrent comes here: once it is seeded, nothing to do
        // (no copy of its pieces, no background probe).
        let Some(seeder) = self
            .swarm
            .seeder
            .clone()
            .filter(|s| !s.seeds(&torrent.swarm_id()))
        else {
            return;
        };
        let pinned = object.pinned_to(facts.version_id.as_deref());
        if seeder.config().objects != SeedObjects::Public {
            seeder.offer(torrent, &pinned, &facts.etag);
            return;
        }
        let (service, torrent, etag) = (self.clone(), torrent.clone(), facts.etag.clone());
        let check = async move {
            if readable_by_anyone(&service.upstream, &pinned, &etag).await == Some(true) {
                seeder.offer(&torrent, &pinned, &etag);
            }
        };
        match caller {
            Caller::Anonymous => check.await,
            Caller::Signed { .. } => drop(tokio::spawn(check)),
        }
    }

    /// This response's bytes: a presigned web seed is signed now, for this response only, so
    /// a cached torrent never carries an expired URL. It never outlives the caller's own
    /// grant (a presigned `?torrent` URL's remaining validity), and it names the version the
    /// caller was authorized for, so it can never serve other bytes.
    fn render(
        &self,
        object: &ObjectRef,
        torrent: &Torrent,
        caller: &Caller,
        facts: &ObjectFacts,
    ) -> Result<Rendered, S3Error> {
        if self.config.torrent.webseed != WebseedMode::Presigned {
            return Ok(Rendered {
                bytes: torrent.bytes.clone(),
                etag: torrent.etag.clone(),
                magnet: magnet_link(torrent, &torrent.meta.url_list, self.seed_addr()),
            });
        }
        let up = &self.config.upstream;
        let key = SigningKey {
            access_key_id: &up.access_key_id,
            secret_access_key: up.secret_access_key.expose(),
            region: &up.region,
        };
        let now = SystemTime::now();
        let mut expiry = self.config.torrent.presign_expiry.get();
        if let Caller::Signed {
            valid_until: Some(until),
            ..
        } = caller
        {
            let remaining = until.duration_since(now).unwrap_or_default();
            expiry = expiry.min(remaining).max(std::time::Duration::from_secs(1));
        }
        let pinned = object.pinned_to(facts.version_id.as_deref());
        let url =
            presign_url(&key, "GET", &self.webseed_url(&pinned), now, expiry).map_err(|e| {
                tracing::error!(error = %e, "presigning a web seed failed");
                S3Error::internal("We encountered an internal error. Please try again.")
            })?;
        let webseeds = vec![url];
        let (bytes, etag) = torrent.with_url_list(webseeds.clone());
        Ok(Rendered {
            bytes,
            etag,
            magnet: magnet_link(torrent, &webseeds, self.seed_addr()),
        })
    }

    /// Hands a directory's torrent to the seeder (`objects = "all"` only: `"public"` would
    /// need every object checked anonymously).
    fn offer_directory(&self, torrent: &Arc<Torrent>, directory: &DirectoryFacts) {
        let Some(seeder) = self
            .swarm
            .seeder
            .as_ref()
            .filter(|s| !s.seeds(&torrent.swarm_id()))
        else {
            return;
        };
        if seeder.config().objects == SeedObjects::All {
            let files = (0..directory.files.len())
                .map(|i| SeedFile {
                    object: directory.object(i),
                    etag: directory.files[i].etag.clone(),
                })
                .collect();
            seeder.offer_files(torrent, files);
        }
    }

    /// Where the seeder takes peers (magnet `x.pe`), when there is one: it seeds every
    /// format (v2 peers get their hashes from it).
    fn seed_addr(&self) -> Option<String> {
        Some(self.swarm.seeder.as_ref()?.public_addr())
    }

    /// `{public_base_url}/{bucket}/{key}`, path-style, without a trailing `/` (so clients use
    /// it as-is for a single-file torrent).
    fn webseed_url(&self, object: &ObjectRef) -> String {
        let base = self.config.torrent.public_base_url.as_ref();
        let base = base.map_or("", |u| u.as_str()).trim_end_matches('/');
        format!("{base}{}", object.path_and_query())
    }
}
