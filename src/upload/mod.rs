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
//! `GET`, as for a caller) has that ETag and that length; a multipart object only if the
//! completion's parts check out against the backend's own ETags (`parts`). Anything else
//! (SSE-C, unknown lengths, malformed aws-chunked framing, parts through another replica,
//! parts that are not whole pieces, or `piece_length = "auto"` for multipart, whose piece
//! length depends on a total not known until completion) is left to lazy generation,
//! counted by reason.
//!
//! Uploads are watched before the backend has said anything, so watching costs nothing an
//! attacker could hold: only callers whose signature the sidecar verifies get a hasher, at
//! most `uploads.max_hashers` at once (never waited for), hashers hold no thread while idle
//! and never slow the upload, and a tap ends the moment the backend refuses.

mod aws_chunked;
mod hasher;
mod parts;

use std::sync::Arc;

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use tokio::sync::Semaphore;

use crate::catalog::{Catalog, Upload};
use crate::config::{Config, Domain};
use crate::s3::route::bucket_and_key;
use crate::s3::sigv4::{Caller, SignedRequest, Verifier};
use crate::s3::uri::query_pairs;
use crate::s3::ObjectRef;
use crate::store::parts::UploadRef;
use crate::store::{Entry, EntryKey};
use crate::telemetry::metrics::Metrics;
use crate::torrent::{Layout, PieceHashes, PieceLength};

use aws_chunked::{Decoder, Malformed};
use hasher::BodyHasher;
use parts::{assemble, completed_etag, listed_parts, same_etag, Part, PendingParts};

/// `CompleteMultipartUpload` bodies: ≤ 10,000 parts of ~100 bytes; answers are smaller.
const COMPLETION_BODY_LIMIT: usize = 2 << 20;

pub struct Uploads {
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    catalog: Arc<Catalog>,
    parts: PendingParts,
    /// One permit per upload being hashed (`uploads.max_hashers`).
    hashers: Arc<Semaphore>,
}

/// An upload being watched, from its request head to the end of its response.
pub struct Tap {
    object: ObjectRef,
    kind: Kind,
    /// The response's status, ETag, and (for completion) body.
    status: u16,
    etag: Option<String>,
    body: Vec<u8>,
    /// A completion's request or response outgrew what is kept: nothing is adopted.
    overflowed: bool,
    /// Accepted, and on its way to adoption: `?torrent` for the object waits for it.
    adopting: Option<crate::catalog::Adopting>,
}

/// The body on its way to the hashing thread: as it is, or with `aws-chunked` framing
/// taken off. No hasher once hashing was given up.
struct Feed {
    hasher: Option<BodyHasher>,
    chunked: Option<Decoder>,
    /// Given up because hashing fell behind the upload.
    behind: bool,
}

enum Kind {
    Put {
        feed: Feed,
        length: u64,
        piece_length: u64,
    },
    /// A part: hashed (`feed`), or replaced at the backend by a body not hashed (`None`),
    /// so whatever hashes were kept for that part no longer describe it.
    Part {
        feed: Option<Feed>,
        length: u64,
        upload_id: String,
        number: u32,
    },
    /// The request body (the parts list) is kept to be read at the end.
    Complete { upload_id: String, request: Vec<u8> },
}

impl Uploads {
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>, catalog: Arc<Catalog>) -> Self {
        Uploads {
            parts: PendingParts::new(config.uploads.max_pending_parts),
            hashers: Arc::new(Semaphore::new(config.uploads.max_hashers)),
            config,
            metrics,
            catalog,
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
        let (bucket, key, vhost) = bucket_and_key(req.uri.path(), host, domains).ok()?;
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
        let skip = |reason: &str| {
            self.metrics
                .uploads
                .skipped
                .with_label_values(&[reason])
                .inc();
        };
        // Whole object or one part; a completion carries only the parts list. Any `PUT`
        // naming an upload and a part, whatever else it carries, replaces that part at the
        // backend if it answers 2xx: then only this request's own hashes (if it is hashed)
        // may stand for that part, or none.
        let (upload_id, number) = (param("uploadId"), param("partNumber"));
        let part = match (method, &upload_id, &number) {
            ("PUT", Some(upload_id), Some(number)) => {
                Some((upload_id.clone(), number.parse().ok()?))
            }
            ("PUT", None, None) if query.is_empty() => None,
            ("POST", Some(upload_id), None) if query.len() == 1 => {
                return Some(Tap::new(
                    object,
                    Kind::Complete {
                        upload_id: upload_id.clone(),
                        request: Vec::new(),
                    },
                ))
            }
            _ => return None,
        };
        // Only callers the sidecar can verify get a hasher: uploads are watched before the
        // backend has said anything, and an anonymous or forged one would hold it for free.
        let verifier = Verifier::of(&self.config, vhost.then_some(object.bucket.as_str()));
        let signed = SignedRequest {
            method,
            path: req.uri.path(),
            query: req.uri.query(),
            headers: &req.headers,
        };
        let verified = || matches!(verifier.authenticate(&signed), Ok(Caller::Signed { .. }));
        let tapped = self.tap_body(part.as_ref(), &header, &skip, &verified);
        let kind = match (tapped, part) {
            (Some(kind), _) => kind,
            (None, Some((upload_id, number))) => Kind::Part {
                feed: None,
                length: 0,
                upload_id,
                number,
            },
            (None, None) => return None,
        };
        Some(Tap::new(object, kind))
    }

    /// Starts hashing a `PutObject` (`part` = None) or an `UploadPart` body, if it can be.
    fn tap_body<'h>(
        &self,
        part: Option<&(String, u32)>,
        header: &impl Fn(&str) -> Option<&'h str>,
        skip: &impl Fn(&str),
        verified: &impl Fn() -> bool,
    ) -> Option<Kind> {
        // A copy carries no body to hash.
        if header("x-amz-copy-source").is_some() {
            return None;
        }
        if header("x-amz-server-side-encryption-customer-algorithm").is_some() {
            skip("encrypted");
            return None;
        }
        // Streaming SigV4: the body is framed; the object's length is announced apart.
        let chunked = header("x-amz-content-sha256").is_some_and(|h| h.starts_with("STREAMING-"))
            || header("content-encoding").is_some_and(|e| e.contains("aws-chunked"));
        let length_header = match chunked {
            true => "x-amz-decoded-content-length",
            false => "content-length",
        };
        let Some(length) = header(length_header).and_then(|l| l.parse::<u64>().ok()) else {
            skip("unknown_length");
            return None;
        };
        let torrent = &self.config.torrent;
        if length == 0 {
            return None;
        }
        if length > torrent.max_object_size {
            skip("too_large");
            return None;
        }
        // A part's size says nothing about its object's: only whole uploads are too small.
        if part.is_none() && length < self.config.uploads.min_bytes {
            skip("small");
            return None;
        }
        let piece_length = match (part, torrent.piece_length) {
            (None, p) => p.for_length(length),
            (Some(_), PieceLength::Fixed(p)) => p,
            (Some(_), PieceLength::Auto) => {
                skip("piece_length_auto");
                return None;
            }
        };
        if !verified() {
            skip("unauthenticated");
            return None;
        }
        // Never wait for a hasher: an upload past the cap goes through unhashed.
        let Ok(permit) = self.hashers.clone().try_acquire_owned() else {
            skip("busy");
            return None;
        };
        // A part is a piece-aligned stretch of its object: hashed as a file of its own.
        let layout = Layout::single(length, piece_length);
        let hasher = BodyHasher::start(&layout, torrent.format, permit);
        let feed = Feed::new(hasher, chunked);
        Some(match part {
            None => Kind::Put {
                feed,
                length,
                piece_length,
            },
            Some((upload_id, number)) => Kind::Part {
                feed: Some(feed),
                length,
                upload_id: upload_id.clone(),
                number: *number,
            },
        })
    }

    /// The hashes kept for a part, here and in the store, no longer describe it.
    async fn forget_part(&self, upload: &UploadRef<'_>, number: u32) {
        drop(self.parts.take(upload, number));
        if let Some(store) = self.catalog.store() {
            store.delete_parts(upload, &[number]).await;
        }
    }

    /// A chunk of the request body, on its way to the backend: handed over, never waited on.
    pub fn request_body(&self, tap: &mut Tap, chunk: &Bytes) {
        match &mut tap.kind {
            Kind::Put { feed, .. }
            | Kind::Part {
                feed: Some(feed), ..
            } => feed.feed(chunk),
            Kind::Part { feed: None, .. } => {}
            Kind::Complete { request, .. } => {
                keep(request, chunk, &mut tap.overflowed);
            }
        }
    }

    /// The backend's answer (head); the body follows for a completion. An upload the backend
    /// refused is not hashed any further: its hasher (and permit) go at once, even while the
    /// client is still sending.
    pub fn response(&self, tap: &mut Tap, response: &ResponseHeader) {
        // `100 Continue` (SDKs send `Expect: 100-continue` with bodies) is not the answer.
        if response.status.is_informational() {
            return;
        }
        tap.status = response.status.as_u16();
        tap.etag = response
            .headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // An object is made (a part is not): until it is adopted, `?torrent` waits for it.
        if tap.accepted() && !matches!(tap.kind, Kind::Part { .. }) {
            tap.adopting = Some(self.catalog.adoption_begins(&tap.object));
        }
        if !tap.accepted() {
            if let Kind::Put { feed, .. }
            | Kind::Part {
                feed: Some(feed), ..
            } = &mut tap.kind
            {
                feed.hasher = None;
            }
        }
    }

    pub fn response_body(&self, tap: &mut Tap, chunk: &Bytes) {
        if matches!(tap.kind, Kind::Complete { .. }) {
            keep(&mut tap.body, chunk, &mut tap.overflowed);
        }
    }

    /// After the exchange: adopt what was hashed, in the background. A refused part left
    /// the backend's (and so our) copy of that part as it was.
    pub fn finish(self: &Arc<Self>, tap: Tap) {
        if !tap.accepted() {
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
            overflowed,
            adopting: _adopting,
            ..
        } = tap;
        let (kind_label, piece_length, length, hashes, etag) = match kind {
            Kind::Put {
                feed,
                length,
                piece_length,
            } => {
                let (hashes, etag) = match feed.whole(length, etag).await {
                    Ok(whole) => whole,
                    Err(reason) => return skipped(reason),
                };
                ("put", piece_length, length, hashes, etag)
            }
            Kind::Part {
                feed,
                length,
                upload_id,
                number,
            } => {
                let upload = UploadRef {
                    object: &object,
                    upload_id: &upload_id,
                };
                // Not hashed (counted when it was not tapped), or hashed in vain.
                let Some(feed) = feed else {
                    return self.forget_part(&upload, number).await;
                };
                let (hashes, etag) = match feed.whole(length, etag).await {
                    Ok(whole) => whole,
                    Err(reason) => {
                        self.forget_part(&upload, number).await;
                        return skipped(reason);
                    }
                };
                let part = Part {
                    etag,
                    length,
                    hashes,
                };
                if let Some(store) = self.catalog.store() {
                    store
                        .put_part(&upload, number, &self.part_entry(&object, &part))
                        .await;
                }
                self.parts.insert(&upload, number, part);
                return;
            }
            Kind::Complete { upload_id, request } => {
                if overflowed {
                    return skipped("too_large");
                }
                let (Some(listed), Some(etag)) = (listed_parts(&request), completed_etag(&body))
                else {
                    return skipped("failed");
                };
                let PieceLength::Fixed(piece_length) = self.config.torrent.piece_length else {
                    return;
                };
                let found = self.gather(&object, &upload_id, &listed).await;
                match assemble(&listed, found, piece_length, &etag) {
                    Ok((length, hashes)) => ("multipart", piece_length, length, hashes, etag),
                    Err(why) => return skipped(why.reason()),
                }
            }
        };
        let upload = Upload {
            etag,
            length,
            piece_length,
            hashes,
        };
        let adopted = self.catalog.adopt(&object, upload).await;
        match adopted {
            Ok(()) => self
                .metrics
                .uploads
                .hashed
                .with_label_values(&[kind_label])
                .inc(),
            Err(why) => skipped(why.reason()),
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
        let store = self.catalog.store();
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
                    .take(&upload, *number)
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
        Entry {
            key: EntryKey::of(object, &part.etag, part.length, &self.config.torrent),
            last_modified: None,
            hashes: part.hashes.clone(),
            files: Vec::new(),
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
    fn new(hasher: BodyHasher, chunked: bool) -> Feed {
        Feed {
            hasher: Some(hasher),
            chunked: chunked.then(Decoder::default),
            behind: false,
        }
    }

    /// A hasher that cannot take the chunk at once (behind, or gone) is given up.
    fn feed(&mut self, chunk: &Bytes) {
        let Some(hasher) = &self.hasher else { return };
        let fed = match &mut self.chunked {
            None => hasher.feed(chunk.clone()),
            Some(decoder) => match decoder.decode(chunk) {
                Ok(payload) => payload.into_iter().all(|piece| hasher.feed(piece)),
                Err(Malformed) => {
                    self.hasher = None;
                    return;
                }
            },
        };
        if !fed {
            self.hasher = None;
            self.behind = true;
        }
    }

    /// The body's hashes and the backend's ETag for it — if the backend gave one, and every
    /// one of the `length` bytes announced (no more) was hashed, framing complete; else why
    /// not (a skip reason).
    async fn whole(
        self,
        length: u64,
        etag: Option<String>,
    ) -> Result<(PieceHashes, String), &'static str> {
        if self.behind {
            return Err("behind");
        }
        if self.chunked.as_ref().is_some_and(|d| !d.is_done()) {
            return Err("failed");
        }
        let hashed = match self.hasher {
            Some(hasher) => hasher.finish().await,
            None => None,
        };
        match (hashed, etag) {
            (Some((total, hashes)), Some(etag)) if total == length => Ok((hashes, etag)),
            _ => Err("failed"),
        }
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
            overflowed: false,
            adopting: None,
        }
    }

    /// Whether the backend answered 2xx.
    fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Keeps a completion's document up to [`COMPLETION_BODY_LIMIT`]; past it, nothing more is
/// kept and the tap is spoiled (a document missing a chunk could still parse).
fn keep(into: &mut Vec<u8>, chunk: &Bytes, overflowed: &mut bool) {
    if *overflowed || into.len() + chunk.len() > COMPLETION_BODY_LIMIT {
        *overflowed = true;
        into.clear();
        return;
    }
    into.extend_from_slice(chunk);
}
