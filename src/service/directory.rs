//! `?torrent&prefix=`: one torrent for the objects under a prefix. The caller must be
//! allowed to list the prefix (the listing is made as the caller) and to READ every object
//! (the same one-byte check as for one object, run concurrently, bounded, through the probe
//! cache); the first refusal is the answer, and no torrent is made. Limits and paths are
//! checked on the listing, before anything is read. The same caller asking again for the
//! same listing within `cache.directory_checks_window` reuses its checks (see
//! `directory_checks`).

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};

use crate::catalog::directory::{list_directory, DirectoryFacts, DirectoryPlan};
use crate::catalog::CacheStatus;
use crate::s3::forwarded::Forwarded;
use crate::s3::listing::{Asked, Listed};
use crate::s3::route::DirectoryRequest;
use crate::s3::sigv4::Caller;
use crate::s3::{ObjectRef, S3Error};

use super::authorize::{identity_of, Authorizer};
use super::directory_checks::ChecksKey;
use super::response::{magnet_link, reply, Rendered, Reply};
use super::TorrentService;

impl TorrentService {
    pub async fn handle_directory(
        self: &Arc<Self>,
        request: &DirectoryRequest,
        caller: &Caller,
        forwarded: &Forwarded,
        if_none_match: Option<&str>,
        cache_status: &mut CacheStatus,
    ) -> Result<Reply, S3Error> {
        // Before anything is asked of the backend: a refused request costs it nothing.
        let _slot = self.directories.try_acquire().map_err(|_| {
            let mut e = S3Error::slow_down();
            e.message = "Too many directory torrents are being checked at once (limits.max_concurrent_directories). Please retry.".into();
            e
        })?;
        let listed = self.list_as(request, caller, forwarded).await?;
        let checks_key =
            ChecksKey::new(caller, forwarded, &request.bucket, &request.prefix, &listed);
        let format = self.config.torrent.format;
        let plan = DirectoryPlan::new(&request.bucket, &request.prefix, listed, format)?;
        let facts = match self.directory_checks.get(&checks_key) {
            Some(facts) => facts.as_ref().clone(),
            None => {
                let facts = self.authorize_all(&plan, caller, forwarded).await?;
                let kept = Arc::new(facts.clone());
                self.directory_checks.insert(checks_key, kept);
                facts
            }
        };
        let charged = facts.iter().any(|f| f.request_charged);
        let directory = Arc::new(DirectoryFacts::of(plan, facts)?);
        let torrent = self
            .catalog
            .get_or_make_directory(directory.clone(), forwarded, cache_status)
            .await?;
        self.swarm.served(&torrent);
        self.offer_directory(&torrent, &directory);
        let rendered = Rendered {
            bytes: torrent.bytes.clone(),
            etag: torrent.etag.clone(),
            magnet: magnet_link(&torrent, &torrent.meta.url_list, self.seed_addr()),
        };
        let named = ObjectRef {
            bucket: request.bucket.clone(),
            key: request.prefix.clone(),
            version_id: None,
        };
        Ok(reply(&named, &torrent, rendered, charged, if_none_match))
    }

    /// Every object under the prefix, listed as the caller.
    async fn list_as(
        &self,
        request: &DirectoryRequest,
        caller: &Caller,
        forwarded: &Forwarded,
    ) -> Result<Vec<Listed>, S3Error> {
        let identity = identity_of(caller);
        let headers = forwarded.probe_pairs();
        let asked = Asked {
            identity: &identity,
            headers: &headers,
            bucket: &request.bucket,
            prefix: &request.prefix,
        };
        list_directory(&self.upstream, &asked, &self.config.torrent).await
    }

    /// The READ check of every file, `limits.directory_probes` at a time, in order; the
    /// backend's refusal of any one is the answer, naming its key.
    async fn authorize_all(
        &self,
        plan: &DirectoryPlan,
        caller: &Caller,
        forwarded: &Forwarded,
    ) -> Result<Vec<crate::catalog::ObjectFacts>, S3Error> {
        let authorizer = Authorizer {
            upstream: &self.upstream,
            probes: &self.probes,
        };
        let authorizer = &authorizer;
        futures_util::stream::iter(plan.objects())
            .map(|object| async move {
                authorizer
                    .authorize(&object, caller, forwarded)
                    .await
                    .map_err(|mut e| {
                        e.message = format!("{} (key {:?})", e.message, object.key);
                        e
                    })
            })
            .buffered(self.config.limits.directory_probes)
            .try_collect()
            .await
    }
}
