//! Multipart parts' hashes, shared: a part hashed by one replica is left in the store so that
//! whichever replica sees `CompleteMultipartUpload` can assemble the object (a load balancer
//! spreads an upload's parts over replicas). Kept under
//! `{prefix}.parts/{sha256(bucket, key, uploadId)}/{part number}` until the completion that
//! uses them deletes them; an upload that is never completed leaves its parts behind (an
//! expiry rule on `{prefix}.parts/` clears them, as for the backend's own unfinished
//! uploads).

use sha2::{Digest, Sha256};

use super::{Entry, Store};
use crate::s3::ObjectRef;

/// Which upload a part belongs to.
pub struct UploadRef<'a> {
    pub object: &'a ObjectRef,
    pub upload_id: &'a str,
}

impl UploadRef<'_> {
    fn digest(&self) -> String {
        let mut h = Sha256::new();
        for field in [&self.object.bucket, &self.object.key, self.upload_id] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

impl Store {
    fn part_object(&self, upload: &UploadRef<'_>, number: u32) -> ObjectRef {
        self.object(format!(
            "{}.parts/{}/{number}",
            self.config.prefix,
            upload.digest()
        ))
    }

    /// Leaves a part's hashes for the replica that will see the completion (a failure is
    /// counted: that completion then generates lazily).
    pub async fn put_part(&self, upload: &UploadRef<'_>, number: u32, part: &Entry) {
        let _ = self.put_at(&self.part_object(upload, number), part).await;
    }

    /// A part another replica left: the entry, whatever it says it is for (the caller checks
    /// its ETag against the completion's list).
    pub async fn get_part(&self, upload: &UploadRef<'_>, number: u32) -> Option<Entry> {
        match self.fetch(&self.part_object(upload, number)).await {
            Ok(body) => Entry::parse(&body?),
            Err(e) => {
                self.failed("get", &e);
                None
            }
        }
    }

    /// Forgets an upload's parts once its completion used (or could not use) them.
    pub async fn delete_parts(&self, upload: &UploadRef<'_>, numbers: &[u32]) {
        for &n in numbers {
            if let Err(e) = self.delete(&self.part_object(upload, n)).await {
                self.failed("delete", &e);
            }
        }
    }
}
