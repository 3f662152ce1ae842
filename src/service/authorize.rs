//! Who may get a torrent: the backend decides, asked as the caller (unsigned for anonymous
//! callers, re-signed with the caller's own key otherwise), never with the sidecar's
//! credentials: the one-byte probe of [`ObjectFacts::probe`], whose success yields the facts
//! the torrent is built on. A caller's answer may be reused for a while ([`ProbeCache`]).

use crate::catalog::ObjectFacts;
use crate::s3::forwarded::Forwarded;
use crate::s3::sigv4::Caller;
use crate::s3::upstream::{Identity, Upstream};
use crate::s3::{ObjectRef, S3Error};

use super::probe_cache::{ProbeCache, ProbeKey};

pub struct Authorizer<'a> {
    pub upstream: &'a Upstream,
    pub probes: &'a ProbeCache,
}

impl Authorizer<'_> {
    /// READ check: the backend decides, asked as this caller (anonymous stays anonymous;
    /// a verified caller is re-signed with their own key). Never the sidecar's credentials.
    pub async fn authorize(
        &self,
        object: &ObjectRef,
        caller: &Caller,
        forwarded: &Forwarded,
    ) -> Result<ObjectFacts, S3Error> {
        let identity = identity_of(caller);
        let probe_key = ProbeKey::new(object, caller, forwarded);
        let now = std::time::Instant::now();
        if let Some(facts) = self.probes.get(&probe_key, now) {
            return Ok(facts);
        }
        let facts = ObjectFacts::probe(self.upstream, object, &identity, forwarded).await;
        if let Ok(f) = &facts {
            self.probes.put(probe_key, f.clone(), now);
        }
        facts
    }
}

/// Whose authority the sidecar's requests on a caller's behalf carry: the caller's own.
pub fn identity_of(caller: &Caller) -> Identity<'_> {
    match caller {
        Caller::Anonymous => Identity::Anonymous,
        Caller::Signed {
            access_key_id,
            secret_access_key,
            ..
        } => Identity::Caller {
            access_key_id,
            secret_access_key: secret_access_key.expose(),
        },
    }
}
