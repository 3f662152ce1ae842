//! Small sealed records of the sidecar's own under `{prefix}{dir}/` (cluster membership):
//! each written whole by one replica, all of them read back together. Whoever else can
//! write the store bucket may leave anything there: every page of the listing is read (junk
//! sorting first pushes nothing out), a record is read with a range of at most
//! [`MAX_RECORD`] bytes (a huge object costs that much), and a record that is too large,
//! unreadable or not sealed by this key is skipped and counted, never fatal to the rest.

use bytes::Bytes;
use futures_util::{stream, StreamExt};

use crate::s3::listing::list_page;

use super::{Store, StoreError};

/// Keys per listing page.
const PAGE: u16 = 1000;
/// Pages read at most: a listing past them is cut short (and logged), not followed forever.
const MAX_PAGES: usize = 100;
/// A record's largest size: a membership record is a few dozen bytes, sealed.
pub const MAX_RECORD: usize = 4096;
/// Records fetched at once.
const FETCHES: usize = 8;

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

    /// Every record in `dir` that this key sealed. `Err` only when the listing itself
    /// fails; a bad record is skipped (counted in `s3torrent_store_errors_total`).
    pub async fn records(&self, dir: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = format!("{}{dir}/", self.config.prefix);
        let mut keys = Vec::new();
        let mut token = None;
        for _ in 0..MAX_PAGES {
            let page = list_page(
                &self.upstream,
                &self.bucket,
                &prefix,
                token.as_deref(),
                PAGE,
            )
            .await
            .map_err(|e| StoreError(e.message))?;
            // Larger than a record can be: not one of ours, and not worth a request.
            let fits = |size: u64| size <= MAX_RECORD as u64;
            let listed = page.objects.into_iter().filter(|o| fits(o.size));
            keys.extend(listed.map(|o| o.key));
            token = page.next;
            if token.is_none() {
                break;
            }
        }
        if token.is_some() {
            self.failed(
                "records",
                &StoreError(format!(
                    "more than {MAX_PAGES} pages under {prefix}; the rest is not read"
                )),
            );
        }
        let fetched: Vec<_> = stream::iter(keys)
            .map(|key| async move { self.fetch_at_most(&self.object(key), MAX_RECORD).await })
            .buffer_unordered(FETCHES)
            .collect()
            .await;
        let mut records = Vec::with_capacity(fetched.len());
        for result in fetched {
            match result {
                Ok(Some(body)) => records.push(body),
                Ok(None) => {}
                Err(e) => self.failed("records", &e),
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
