//! Multipart uploads: each part's hashes are kept (bounded, oldest dropped first; and in the
//! store, for other replicas) until `CompleteMultipartUpload` names the parts in order; the
//! object's hashes are theirs, concatenated, when every part but the last is a whole number
//! of pieces.
//!
//! The completion's list is the client's word, not the backend's: parts are taken only in
//! strictly ascending order, each with the ETag the backend gave it, and the backend's own
//! ETag for the completed object (`md5(part md5s)-N`) must be the one those parts give.

use std::sync::Mutex;

use lru::LruCache;
use md5::{Digest, Md5};

use crate::s3::xml::leaves;
use crate::store::parts::UploadRef;
use crate::torrent::PieceHashes;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PartId {
    bucket: String,
    key: String,
    upload_id: String,
    number: u32,
}

impl PartId {
    fn new(upload: &UploadRef<'_>, number: u32) -> PartId {
        PartId {
            bucket: upload.object.bucket.clone(),
            key: upload.object.key.clone(),
            upload_id: upload.upload_id.to_string(),
            number,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Part {
    pub etag: String,
    pub length: u64,
    pub hashes: PieceHashes,
}

pub struct PendingParts {
    parts: Mutex<LruCache<PartId, Part>>,
}

/// Why a completed upload was left to lazy generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAssembled {
    /// A part went through another replica, was dropped, or its ETag differs.
    Incomplete,
    /// A part other than the last is not a whole number of pieces.
    Misaligned,
    /// Part numbers not strictly ascending (repeated, or out of order).
    Order,
    /// The completed object's ETag is not the one the hashed parts give.
    EtagMismatch,
}

impl NotAssembled {
    /// The `s3torrent_uploads_skipped_total` reason.
    pub fn reason(self) -> &'static str {
        match self {
            NotAssembled::Incomplete => "incomplete",
            NotAssembled::Misaligned => "misaligned",
            NotAssembled::Order => "order",
            NotAssembled::EtagMismatch => "etag_mismatch",
        }
    }
}

impl PendingParts {
    pub fn new(max_parts: usize) -> PendingParts {
        let cap = std::num::NonZeroUsize::new(max_parts.max(1)).expect("at least 1");
        PendingParts {
            parts: Mutex::new(LruCache::new(cap)),
        }
    }

    pub fn insert(&self, upload: &UploadRef<'_>, number: u32, part: Part) {
        self.lock().put(PartId::new(upload, number), part);
    }

    /// Part `number` of `upload`, if this replica hashed it; forgotten once taken.
    pub fn take(&self, upload: &UploadRef<'_>, number: u32) -> Option<Part> {
        self.lock().pop(&PartId::new(upload, number))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<PartId, Part>> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The object's length and hashes from `parts`, found for the parts `listed` (number, ETag)
/// by a completion, in its order, if the backend's ETag for the result (`completed`) is the
/// one they give.
pub fn assemble(
    listed: &[(u32, String)],
    parts: Vec<Option<Part>>,
    piece_length: u64,
    completed: &str,
) -> Result<(u64, PieceHashes), NotAssembled> {
    if listed.is_empty() || parts.len() != listed.len() {
        return Err(NotAssembled::Incomplete);
    }
    if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(NotAssembled::Order);
    }
    let mut length = 0;
    let mut hashes = Vec::with_capacity(listed.len());
    let mut etags = Vec::with_capacity(listed.len());
    for (i, ((_, etag), part)) in listed.iter().zip(parts).enumerate() {
        let part = part.ok_or(NotAssembled::Incomplete)?;
        if !same_etag(&part.etag, etag) {
            return Err(NotAssembled::Incomplete);
        }
        if i + 1 < listed.len() && part.length % piece_length != 0 {
            return Err(NotAssembled::Misaligned);
        }
        length += part.length;
        etags.push(part.etag);
        hashes.push(part.hashes);
    }
    if multipart_etag(&etags).is_none_or(|e| !same_etag(&e, completed)) {
        return Err(NotAssembled::EtagMismatch);
    }
    Ok((length, PieceHashes::concat(hashes)))
}

/// S3's ETag for an object completed from parts with these ETags: the MD5 of their MD5s,
/// then `-N`. `None` if a part's ETag is not an MD5 (SSE-KMS, or a backend of its own way).
pub fn multipart_etag(part_etags: &[String]) -> Option<String> {
    let mut md5s = Md5::new();
    for etag in part_etags {
        let digest = hex::decode(unquote(etag)).ok().filter(|d| d.len() == 16)?;
        md5s.update(&digest);
    }
    Some(format!(
        "\"{}-{}\"",
        hex::encode(md5s.finalize()),
        part_etags.len()
    ))
}

/// ETags as a completion lists them may come with or without their quotes.
pub fn same_etag(a: &str, b: &str) -> bool {
    unquote(a) == unquote(b)
}

fn unquote(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// The parts a `CompleteMultipartUpload` body names: (PartNumber, ETag), in its order.
pub fn listed_parts(body: &[u8]) -> Option<Vec<(u32, String)>> {
    let mut parts = Vec::new();
    let (mut number, mut etag) = (None, None);
    for (path, text) in leaves(body).ok()? {
        match path.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            [_, "Part", "PartNumber"] => number = Some(text.trim().parse().ok()?),
            [_, "Part", "ETag"] => etag = Some(text),
            _ => continue,
        }
        if let (Some(n), Some(e)) = (number, etag.as_ref()) {
            parts.push((n, e.clone()));
            (number, etag) = (None, None);
        }
    }
    Some(parts)
}

/// The completed object's ETag from a `CompleteMultipartUpload` answer; `None` for an error
/// document (S3 may send one with status 200).
pub fn completed_etag(body: &[u8]) -> Option<String> {
    let leaves = leaves(body).ok()?;
    let (path, etag) = leaves
        .into_iter()
        .find(|(p, _)| p.last().is_some_and(|l| l == "ETag"))?;
    (path.first().map(String::as_str) == Some("CompleteMultipartUploadResult")).then_some(etag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::ObjectRef;

    /// A part's ETag as S3 gives it: the quoted MD5 of its bytes (here, of `name`).
    fn etag(name: &str) -> String {
        format!("\"{}\"", hex::encode(Md5::digest(name.as_bytes())))
    }

    fn part(name: &str, length: u64, byte: u8) -> Part {
        Part {
            etag: etag(name),
            length,
            hashes: PieceHashes {
                v1: vec![byte; 20 * length.div_ceil(16384) as usize],
                ..Default::default()
            },
        }
    }

    fn object(key: &str) -> ObjectRef {
        ObjectRef {
            bucket: "b".into(),
            key: key.into(),
            version_id: None,
        }
    }

    fn take_all(
        parts: &PendingParts,
        up: &UploadRef<'_>,
        listed: &[(u32, String)],
    ) -> Vec<Option<Part>> {
        listed.iter().map(|(n, _)| parts.take(up, *n)).collect()
    }

    fn completed(names: &[&str]) -> String {
        multipart_etag(&names.iter().map(|n| etag(n)).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn parts_assemble_in_the_order_completion_names() {
        let parts = PendingParts::new(100);
        let k = object("k");
        let up = UploadRef {
            object: &k,
            upload_id: "u",
        };
        parts.insert(&up, 2, part("b", 16384, 2));
        parts.insert(&up, 1, part("a", 32768, 1));
        parts.insert(&up, 3, part("c", 100, 3));
        let other_key = object("other");
        let same_id_elsewhere = UploadRef {
            object: &other_key,
            upload_id: "u",
        };
        parts.insert(&same_id_elsewhere, 1, part("a", 16384, 9));
        let listed = vec![
            (1, etag("a").trim_matches('"').to_string()),
            (2, etag("b")),
            (3, etag("c")),
        ];
        let found = take_all(&parts, &up, &listed);
        let (length, hashes) =
            assemble(&listed, found, 16384, &completed(&["a", "b", "c"])).unwrap();
        assert_eq!(length, 32768 + 16384 + 100);
        let want: Vec<u8> = [vec![1; 40], vec![2; 20], vec![3; 20]].concat();
        assert_eq!(hashes.v1, want);
        assert!(parts.take(&up, 1).is_none(), "forgotten once taken");
        assert!(
            parts.take(&same_id_elsewhere, 1).is_some(),
            "the same upload id on another key is another upload"
        );
    }

    #[test]
    fn misaligned_missing_replaced_or_reordered_parts_are_not_assembled() {
        let listed = vec![(1, etag("a")), (2, etag("b"))];
        let (a, b) = (part("a", 16384, 1), part("b", 100, 2));
        let found = |a: &Part, b: Option<&Part>| vec![Some(a.clone()), b.cloned()];
        let done = completed(&["a", "b"]);
        let verdict = |listed: &[(u32, String)], found, done: &str| {
            assemble(listed, found, 16384, done).map(|_| ())
        };
        let short_a = Part {
            length: 20000,
            ..a.clone()
        };
        assert_eq!(
            verdict(&listed, found(&short_a, Some(&b)), &done),
            Err(NotAssembled::Misaligned)
        );
        assert_eq!(
            verdict(&listed, found(&a, None), &done),
            Err(NotAssembled::Incomplete)
        );
        let old_a = part("old", 16384, 1);
        assert_eq!(
            verdict(&listed, found(&old_a, Some(&b)), &done),
            Err(NotAssembled::Incomplete)
        );
        assert_eq!(verdict(&listed, found(&a, Some(&b)), &done), Ok(()));
        // The backend holds other bytes than the parts hashed (its ETag says so).
        assert_eq!(
            verdict(&listed, found(&a, Some(&b)), &completed(&["a", "x"])),
            Err(NotAssembled::EtagMismatch)
        );
        assert_eq!(
            verdict(&listed, found(&a, Some(&b)), "\"opaque\""),
            Err(NotAssembled::EtagMismatch)
        );
        let backwards = vec![(2, etag("b")), (1, etag("a"))];
        let twice = vec![(1, etag("a")), (1, etag("a"))];
        for listed in [backwards, twice] {
            let found = vec![Some(a.clone()), Some(b.clone())];
            assert_eq!(verdict(&listed, found, &done), Err(NotAssembled::Order));
        }
        assert!(assemble(&[], vec![], 16384, &done).is_err());
    }

    #[test]
    fn multipart_etags_are_s3s() {
        // Two parts of 5 MiB of zeros and 1 byte "a": as S3 (and SeaweedFS) compute it.
        let zeros = format!("\"{}\"", hex::encode(Md5::digest(vec![0u8; 5 << 20])));
        let a = format!("\"{}\"", hex::encode(Md5::digest(b"a")));
        let mut cat = Md5::digest(vec![0u8; 5 << 20]).to_vec();
        cat.extend_from_slice(&Md5::digest(b"a"));
        let want = format!("\"{}-2\"", hex::encode(Md5::digest(&cat)));
        assert_eq!(multipart_etag(&[zeros, a]), Some(want));
        assert_eq!(multipart_etag(&["\"not-md5\"".into()]), None);
    }

    #[test]
    fn completion_documents() {
        let request = br#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Part><ETag>&quot;a&quot;</ETag><PartNumber>1</PartNumber></Part>
  <Part><PartNumber>2</PartNumber><ChecksumCRC32>x</ChecksumCRC32><ETag>"b"</ETag></Part>
</CompleteMultipartUpload>"#;
        assert_eq!(
            listed_parts(request).unwrap(),
            vec![(1, "\"a\"".to_string()), (2, "\"b\"".to_string())]
        );
        let ok = br#"<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUploadResult><Location>l</Location><Bucket>b</Bucket><Key>k</Key><ETag>&quot;abc-2&quot;</ETag></CompleteMultipartUploadResult>"#;
        assert_eq!(completed_etag(ok).as_deref(), Some("\"abc-2\""));
        let error = br#"<Error><Code>InternalError</Code><Message>m</Message></Error>"#;
        assert_eq!(completed_etag(error), None);
    }
}
