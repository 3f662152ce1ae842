//! Hash on upload: a `PutObject` (or a multipart part) passing through the sidecar is hashed
//! while it streams to the backend — the bytes and the caller's signature untouched, nothing
//! buffered — so when the backend takes it, the object's torrent is stored and cached and
//! its first `?torrent` reads nothing.
//!
//! - [`hasher`] — the body, chunk by chunk, to a hashing thread.
//! - [`aws_chunked`] — streaming-SigV4 framing taken off, so the object's bytes are hashed.
//! - [`parts`] — multipart parts' hashes until `CompleteMultipartUpload` assembles them.
//!
//! Never a wrong torrent: what was hashed is adopted only if the backend answered 2xx with
//! an ETag, every byte announced was hashed, and the object the sidecar then sees (one-byte
//! `GET`, as for a caller) has that ETag and that length. Anything else (SSE-C, unknown
//! lengths, malformed aws-chunked framing, parts through another replica, parts that are not whole
//! pieces, or `piece_length = "auto"` for multipart, whose piece length depends on a total
//! not known until completion) is left to lazy generation, counted by reason.

mod aws_chunked;
mod hasher;
mod parts;

use std::sync::Arc;

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};

use crate::config::{Config, Domain};
use crate::metrics::Metrics;
use crate::s3::route::bucket_and_key;
use crate::s3::uri::query_pairs;
use crate::s3::ObjectRef;
use crate::service::TorrentService;
use crate::store::parts::UploadRef;
use crate::store::{Entry, EntryKey};
use crate::torrent::{PieceHashes, PieceLength};

use aws_chunked::{Decoder, Malformed};
use hasher::BodyHasher;
use parts::{assemble, completed_etag, listed_parts, same_etag, NotAssembled, Part, PendingParts};

/// `CompleteMultipartUpload` bodies: ≤ 10,000 parts of ~100 bytes; answers are smaller.
const COMPLETION_BODY_LIMIT: usize = 2 << 20;

pub struct Uploads {
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    service: Arc<TorrentService>,
    parts: PendingParts,
}

/// An upload being watched, from its request head to the end of its response.
pub struct Tap {
    object: ObjectRef,
    kind: Kind,
    /// The response's status, ETag, and (for completion) body.
    status: u16,
    etag: Option<String>,
    body: Vec<u8>,
}

/// The body on its way to the hashing thread: as it is, or with `aws-chunked` framing
/// taken off. No hasher once hashing was given up.
struct Feed {
    hasher: Option<BodyHasher>,
    chunked: Option<Decoder>,
}

enum Kind {
    Put {
        feed: Feed,
        length: u64,
        piece_length: u64,
    },
    Part {
        feed: Feed,
        length: u64,
        upload_id: String,
        number: u32,
    },
    /// The request body (the parts list) is kept to be read at the end.
    Complete { upload_id: String, request: Vec<u8> },
}

impl Uploads {
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>, service: Arc<TorrentService>) -> Self {
        Uploads {
            parts: PendingParts::new(config.uploads.max_pending_parts),
            config,
            metrics,
            service,
        }
    }

    /// Whether this pass-through request is an upload to watch, and starts hashing it.
    pub fn tap(&self, req: &RequestHeader, domains: &[Domain]) -> Option<Tap> {
        if !self.config.uploads.hash {
            return None;
        }
        let method = req.method.as_str();
        if method != "PUT" && method != "POST" {
            return None;
        }
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok());
        let (bucket, key, _) = bucket_and_key(req.uri.path(), host, domains).ok()?;
        if bucket.is_empty() || key.is_empty() {
            return None;
        }
        let query = query_pairs(req.uri.query().unwrap_or("")).ok()?;
        let param = |name: &str| {
            query
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let object = ObjectRef {
            bucket,
            key,
            version_id: None,
        };
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        // Whole object or one part; a completion carries only the parts list.
        let whole = match (method, query.len(), param("uploadId"), param("partNumber")) {
            ("PUT", 0, None, None) => true,
            ("PUT", 2, Some(_), Some(_)) => false,
            ("POST", 1, Some(upload_id), None) => {
                return Some(Tap::new(
                    object,
                    Kind::Complete {
                        upload_id,
                        request: Vec::new(),
                    },
                ))
            }
            _ => return None,
        };
        // A copy carries no body to hash.
        if header("x-amz-copy-source").is_some() {
            return None;
        }
        let skip = |reason: &str| {
            self.metrics
                .uploads
                .skipped
                .with_label_values(&[reason])
                .inc();
            None
        };
        if header("x-amz-server-side-encryption-customer-algorithm").is_some() {
            return skip("encrypted");
        }
        // Streaming SigV4: the body is framed; the object's length is announced apart.
        let chunked = header("x-amz-content-sha256").is_some_and(|h| h.starts_with("STREAMING-"))
            || header("content-encoding").is_some_and(|e| e.contains("aws-chunked"));
        let length_header = match chunked {
            true => "x-amz-decoded-content-length",
            false => "content-length",
        };
        let Some(length) = header(length_header).and_then(|l| l.parse::<u64>().ok()) else {
            return skip("unknown_length");
        };
        let torrent = &self.config.torrent;
        if length == 0 {
            return None;
        }
        if length > torrent.max_object_size {
            return skip("too_large");
        }
        // A part's size says nothing about its object's: only whole uploads are too small.
        if whole && length < self.config.uploads.min_bytes {
            return skip("small");
        }
        let feed = |piece_length| Feed {
            hasher: Some(BodyHasher::start(piece_length, length, torrent.format)),
            chunked: chunked.then(Decoder::default),
        };
        let kind = match whole {
            true => {
                let piece_length = torrent.piece_length.for_length(length);
                Kind::Put {
                    feed: feed(piece_length),
                    length,
                    piece_length,
                }
            }
            false => {
                let PieceLength::Fixed(piece_length) = torrent.piece_length else {
                    return skip("piece_length_auto");
                };
                let number = param("partNumber")?.parse().ok()?;
                let upload_id = param("uploadId")?;
                Kind::Part {
                    feed: feed(piece_length),
                    length,
                    upload_id,
                    number,
                }
            }
        };
        Some(Tap::new(object, kind))
    }

    /// A chunk of the request body, on its way to the backend.
    pub async fn request_body(&self, tap: &mut Tap, chunk: &Bytes) {
        match &mut tap.kind {
            Kind::Put { feed, .. } | Kind::Part { feed, .. } => feed.feed(chunk).await,
            Kind::Complete { request, .. } => {
                if request.len() + chunk.len() <= COMPLETION_BODY_LIMIT {
                    request.extend_from_slice(chunk);
                }
            }
        }
    }

    /// The backend's answer (head); the body follows for a completion.
    pub fn response(&self, tap: &mut Tap, response: &ResponseHeader) {
        tap.status = response.status.as_u16();
        tap.etag = response
            .headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
    }

    pub fn response_body(&self, tap: &mut Tap, chunk: &Bytes) {
        if matches!(tap.kind, Kind::Complete { .. })
            && tap.body.len() + chunk.len() <= COMPLETION_BODY_LIMIT
        {
            tap.body.extend_from_slice(chunk);
        }
    }

    /// After the exchange: adopt what was hashed, in the background.
    pub fn finish(self: &Arc<Self>, tap: Tap) {
        if !(200..300).contains(&tap.status) {
            return;
        }
        let uploads = self.clone();
        tokio::spawn(async move { uploads.adopt(tap).await });
    }

    async fn adopt(&self, tap: Tap) {
        let skipped = |reason: &str| {
            self.metrics
                .uploads
                .skipped
                .with_label_values(&[reason])
                .inc()
        };
        let Tap {
            object,
            kind,
            etag,
            body,
            ..
        } = tap;
        let (kind_label, piece_length, length, hashes, etag) = match kind {
            Kind::Put {
                feed,
                length,
                piece_length,
            } => {
                let Some((hashes, etag)) = feed.whole(length, etag).await else {
                    return skipped("failed");
                };
                ("put", piece_length, length, hashes, etag)
            }
            Kind::Part {
                feed,
                length,
                upload_id,
                number,
            } => {
                let Some((hashes, etag)) = feed.whole(length, etag).await else {
                    return skipped("failed");
                };
                let part = Part {
                    etag,
                    length,
                    hashes,
                };
                if let Some(store) = self.service.store() {
                    let upload = UploadRef {
                        object: &object,
                        upload_id: &upload_id,
                    };
                    store
                        .put_part(&upload, number, &self.part_entry(&object, &part))
                        .await;
                }
                self.parts.insert(&upload_id, number, part);
                return;
            }
            Kind::Complete { upload_id, request } => {
                let (Some(listed), Some(etag)) = (listed_parts(&request), completed_etag(&body))
                else {
                    return skipped("failed");
                };
                let PieceLength::Fixed(piece_length) = self.config.torrent.piece_length else {
                    return;
                };
                let found = self.gather(&object, &upload_id, &listed).await;
                match assemble(&listed, found, piece_length) {
                    Ok((length, hashes)) => ("multipart", piece_length, length, hashes, etag),
                    Err(NotAssembled::Incomplete) => return skipped("incomplete"),
                    Err(NotAssembled::Misaligned) => return skipped("misaligned"),
                }
            }
        };
        let adopted = self
            .service
            .adopt(&object, &etag, length, piece_length, hashes)
            .await;
        match adopted {
            Ok(()) => self
                .metrics
                .uploads
                .hashed
                .with_label_values(&[kind_label])
                .inc(),
            Err(reason) => skipped(reason),
        }
    }
}

impl Uploads {
    /// The parts a completion lists: hashed here, or by another replica (from the store).
    /// A part's hashes are kept just after its response, and the completion may come right
    /// behind it: one or two missing parts are looked for again for up to a second. The
    /// store's copies are deleted afterwards, used or not.
    async fn gather(
        &self,
        object: &ObjectRef,
        upload_id: &str,
        listed: &[(u32, String)],
    ) -> Vec<Option<Part>> {
        let store = self.service.store();
        let upload = UploadRef { object, upload_id };
        let mut found: Vec<Option<Part>> = vec![None; listed.len()];
        for attempt in 0..PART_LOOKUPS {
            if attempt > 0 {
                tokio::time::sleep(PART_LOOKUP_PAUSE).await;
            }
            for ((number, etag), slot) in listed.iter().zip(found.iter_mut()) {
                if slot.is_some() {
                    continue;
                }
                *slot = self
                    .parts
                    .take(upload_id, *number)
                    .filter(|p| same_etag(&p.etag, etag));
                if let (None, Some(store)) = (&slot, store) {
                    let entry = store.get_part(&upload, *number).await;
                    *slot = entry.and_then(|e| self.part_of(object, e, etag));
                }
            }
            // Only the last part or two can be that close behind; more missing means parts
            // that went around the sidecar (or were dropped): give up at once.
            let missing = found.iter().filter(|p| p.is_none()).count();
            if missing == 0 || missing > 2 {
                break;
            }
        }
        if let Some(store) = store {
            let numbers: Vec<u32> = listed.iter().map(|(n, _)| *n).collect();
            store.delete_parts(&upload, &numbers).await;
        }
        found
    }

    /// A part as the store keeps it: an entry for the part's own bytes.
    fn part_entry(&self, object: &ObjectRef, part: &Part) -> Entry {
        let torrent = &self.config.torrent;
        Entry {
            key: EntryKey {
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                version_id: None,
                etag: part.etag.clone(),
                length: part.length,
                format: torrent.format,
                piece_length: torrent.piece_length.for_length(part.length),
            },
            last_modified: None,
            hashes: part.hashes.clone(),
        }
    }

    /// The stored part, if it is the one listed, of this object, hashed as this replica would.
    fn part_of(&self, object: &ObjectRef, entry: Entry, etag: &str) -> Option<Part> {
        let k = &entry.key;
        let torrent = &self.config.torrent;
        let ours = k.bucket == object.bucket
            && k.key == object.key
            && k.format == torrent.format
            && PieceLength::Fixed(k.piece_length) == torrent.piece_length
            && same_etag(&k.etag, etag);
        ours.then_some(Part {
            etag: entry.key.etag,
            length: entry.key.length,
            hashes: entry.hashes,
        })
    }
}

/// How often, and how far apart, a completion looks for parts not found yet.
const PART_LOOKUPS: u32 = 10;
const PART_LOOKUP_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

impl Feed {
    async fn feed(&mut self, chunk: &Bytes) {
        let Some(hasher) = &self.hasher else { return };
        let fed = match &mut self.chunked {
            None => hasher.feed(chunk.clone()).await,
            Some(decoder) => match decoder.decode(chunk) {
                Ok(payload) => {
                    let mut fed = true;
                    for piece in payload {
                        fed = fed && hasher.feed(piece).await;
                    }
                    fed
                }
                Err(Malformed) => false,
            },
        };
        if !fed {
            self.hasher = None;
        }
    }

    /// The body's hashes and the backend's ETag for it — if the backend gave one, and every
    /// one of the `length` bytes announced (no more) was hashed, framing complete.
    async fn whole(self, length: u64, etag: Option<String>) -> Option<(PieceHashes, String)> {
        if self.chunked.as_ref().is_some_and(|d| !d.is_done()) {
            return None;
        }
        let (total, hashes) = self.hasher?.finish().await?;
        (total == length).then_some((hashes, etag?))
    }
}

impl Tap {
    fn new(object: ObjectRef, kind: Kind) -> Tap {
        Tap {
            object,
            kind,
            status: 0,
            etag: None,
            body: Vec::new(),
        }
    }
}
