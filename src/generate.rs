//! Fetch → hash → encode: streams the object from the backend, with the sidecar's own
//! credentials and `If-Match` on the ETag the caller was authorized against, through SHA-1
//! piece hashing on a blocking thread, and encodes the torrent. Memory is a few chunks plus
//! 20 bytes per piece, whatever the object's size.

use bytes::Bytes;
use sha1::{Digest, Sha1};
use tokio::sync::mpsc;

use crate::config::TorrentConfig;
use crate::route::ObjectRef;
use crate::s3_error::S3Error;
use crate::torrent::{Info, Metainfo, PieceHasher};
use crate::upstream::{Identity, Upstream};

/// Chunks in flight between the network reader and the hashing thread.
const HASH_QUEUE_CHUNKS: usize = 16;

/// What the authorization probe learned about the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFacts {
    pub etag: String,
    pub length: u64,
    pub last_modified: Option<String>,
    pub request_charged: bool,
}

/// A generated torrent, immutable and shared between the cache and responses.
#[derive(Debug)]
pub struct Torrent {
    pub bytes: Bytes,
    pub info_hash: [u8; 20],
    /// Strong HTTP validator for the torrent file itself (quoted SHA-1 of its bytes).
    pub etag: String,
    pub last_modified: Option<String>,
}

impl Torrent {
    pub fn new(bytes: Vec<u8>, info_hash: [u8; 20], last_modified: Option<String>) -> Torrent {
        let etag = format!("\"{}\"", hex::encode(Sha1::digest(&bytes)));
        Torrent {
            bytes: Bytes::from(bytes),
            info_hash,
            etag,
            last_modified,
        }
    }
}

pub async fn generate(
    upstream: &Upstream,
    config: &TorrentConfig,
    object: &ObjectRef,
    facts: &ObjectFacts,
    forwarded: &[(&str, &str)],
) -> Result<Torrent, S3Error> {
    let mut headers: Vec<(&str, &str)> = vec![("if-match", facts.etag.as_str())];
    headers.extend_from_slice(forwarded);
    let mut response = upstream
        .send("GET", object, &Identity::Sidecar, &headers)
        .await?;
    match response.status() {
        200 => {}
        // The object was overwritten between the authorization probe and this fetch.
        412 => return Err(changed()),
        s if s >= 500 => {
            return Err(S3Error::service_unavailable(format!(
                "The backend answered {s} while the object was fetched. Please retry."
            )))
        }
        404 => {
            return Err(S3Error::new(404, "NoSuchKey", "The specified key does not exist."))
        }
        s => {
            return Err(S3Error::bad_gateway(format!(
                "The backend refused the sidecar's own read of the object ({s}); check [upstream] credentials."
            )))
        }
    }
    // Backends that ignore If-Match still report the ETag of what they send.
    if response.header_str("etag").is_some_and(|e| e != facts.etag) {
        response.finish().await;
        return Err(changed());
    }

    let piece_length = config.piece_length.for_length(facts.length);
    let (tx, mut rx) = mpsc::channel::<Bytes>(HASH_QUEUE_CHUNKS);
    let expected = facts.length;
    let hasher = tokio::task::spawn_blocking(move || {
        let mut h = PieceHasher::new(piece_length, expected);
        while let Some(chunk) = rx.blocking_recv() {
            h.update(&chunk);
        }
        (h.total(), h.finish())
    });

    let mut received: u64 = 0;
    let read: Result<(), S3Error> = async {
        while let Some(chunk) = response.chunk().await? {
            received += chunk.len() as u64;
            if received > expected {
                return Err(S3Error::bad_gateway(
                    "The backend sent more bytes than the object's length.",
                ));
            }
            if tx.send(chunk).await.is_err() {
                return Err(S3Error::new(
                    500,
                    "InternalError",
                    "The hashing thread stopped.",
                ));
            }
        }
        Ok(())
    }
    .await;
    drop(tx);
    let (total, pieces) = hasher
        .await
        .map_err(|e| S3Error::new(500, "InternalError", format!("hashing failed: {e}")))?;
    read?;
    response.finish().await;
    if total != expected {
        return Err(S3Error::bad_gateway(format!(
            "The backend sent {total} of {expected} bytes. Please retry."
        )));
    }

    let info = Info {
        name: Info::name_for_key(&object.bucket, &object.key),
        length: facts.length,
        piece_length,
        pieces,
        private: config.private,
        s3_location: config
            .s3_info_keys
            .then(|| (object.bucket.clone(), object.key.clone())),
    };
    let meta = Metainfo {
        announce: config
            .announce
            .iter()
            .map(|tier| tier.iter().map(|u| u.0.clone()).collect())
            .collect(),
        url_list: Vec::new(),
        comment: config.comment.clone(),
        created_by: concat!("s3torrent/", env!("CARGO_PKG_VERSION")).to_string(),
        creation_date: facts
            .last_modified
            .as_deref()
            .and_then(|lm| httpdate::parse_http_date(lm).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64),
    };
    let (bytes, info_hash) = meta.encode(&info);
    Ok(Torrent::new(bytes, info_hash, facts.last_modified.clone()))
}

fn changed() -> S3Error {
    S3Error::service_unavailable(
        "The object changed while its torrent was being generated. Please retry.",
    )
}
