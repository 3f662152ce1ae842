//! Small sealed records of the sidecar's own under `{prefix}{dir}/` (cluster membership):
//! each written whole by one replica, all of them read back together. A record this key did
//! not seal is skipped and counted, like a forged entry.

use bytes::Bytes;

use crate::s3::listing::list_page;

use super::{Store, StoreError};

/// Records read per listing: membership is a handful of replicas.
const MAX_RECORDS: u16 = 1000;

impl Store {
    /// Writes `body` as the record `name` in `dir`.
    pub async fn put_record(&self, dir: &str, name: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let object = self.object(format!("{}{dir}/{name}", self.config.prefix));
        let body = Bytes::from(self.seal.seal(&object.key, body));
        match self.write(&object, body, &[]).await? {
            200..=299 => Ok(()),
            s => Err(StoreError(format!("the backend answered {s}"))),
        }
    }

    /// Every record in `dir` that this key sealed (at most [`MAX_RECORDS`]).
    pub async fn records(&self, dir: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = format!("{}{dir}/", self.config.prefix);
        let page = list_page(&self.upstream, &self.bucket, &prefix, None, MAX_RECORDS)
            .await
            .map_err(|e| StoreError(e.message))?;
        let mut records = Vec::with_capacity(page.objects.len());
        for listed in page.objects {
            if let Some(body) = self.fetch(&self.object(listed.key)).await? {
                records.push(body);
            }
        }
        Ok(records)
    }

    /// A key for `purpose`, derived from the store's: every replica sharing the store's key
    /// shares it, and no other purpose's key opens what it seals.
    pub fn derived_key(&self, purpose: &str) -> [u8; 32] {
        self.seal.derive(purpose)
    }
}
