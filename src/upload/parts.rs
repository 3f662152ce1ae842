//! Multipart uploads: each part's hashes are kept (bounded, oldest dropped first; and in the
//! store, for other replicas) until `CompleteMultipartUpload` names the parts in order; the
//! object's hashes are theirs, concatenated, when every part but the last is a whole number
//! of pieces.

use std::sync::Mutex;

use lru::LruCache;

use crate::s3::xml::leaves;
use crate::torrent::PieceHashes;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PartId {
    upload_id: String,
    number: u32,
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
}

impl PendingParts {
    pub fn new(max_parts: usize) -> PendingParts {
        let cap = std::num::NonZeroUsize::new(max_parts.max(1)).expect("at least 1");
        PendingParts {
            parts: Mutex::new(LruCache::new(cap)),
        }
    }

    pub fn insert(&self, upload_id: &str, number: u32, part: Part) {
        let id = PartId {
            upload_id: upload_id.to_string(),
            number,
        };
        self.lock().put(id, part);
    }

    /// Part `number` of `upload_id`, if this replica hashed it; forgotten once taken.
    pub fn take(&self, upload_id: &str, number: u32) -> Option<Part> {
        let id = PartId {
            upload_id: upload_id.to_string(),
            number,
        };
        self.lock().pop(&id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<PartId, Part>> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The object's length and hashes from `parts`, found for the parts `listed` (number, ETag)
/// by a completion, in its order.
pub fn assemble(
    listed: &[(u32, String)],
    parts: Vec<Option<Part>>,
    piece_length: u64,
) -> Result<(u64, PieceHashes), NotAssembled> {
    if listed.is_empty() || parts.len() != listed.len() {
        return Err(NotAssembled::Incomplete);
    }
    let mut length = 0;
    let mut hashes = Vec::with_capacity(listed.len());
    for (i, ((_, etag), part)) in listed.iter().zip(parts).enumerate() {
        let part = part.ok_or(NotAssembled::Incomplete)?;
        if !same_etag(&part.etag, etag) {
            return Err(NotAssembled::Incomplete);
        }
        if i + 1 < listed.len() && part.length % piece_length != 0 {
            return Err(NotAssembled::Misaligned);
        }
        length += part.length;
        hashes.push(part.hashes);
    }
    Ok((length, PieceHashes::concat(hashes)))
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

    fn part(etag: &str, length: u64, byte: u8) -> Part {
        Part {
            etag: etag.into(),
            length,
            hashes: PieceHashes {
                v1: vec![byte; 20 * length.div_ceil(16384) as usize],
                ..Default::default()
            },
        }
    }

    fn take_all(parts: &PendingParts, upload: &str, listed: &[(u32, String)]) -> Vec<Option<Part>> {
        listed.iter().map(|(n, _)| parts.take(upload, *n)).collect()
    }

    #[test]
    fn parts_assemble_in_the_order_completion_names() {
        let parts = PendingParts::new(100);
        parts.insert("u", 2, part("\"b\"", 16384, 2));
        parts.insert("u", 1, part("\"a\"", 32768, 1));
        parts.insert("u", 3, part("\"c\"", 100, 3));
        parts.insert("other", 1, part("\"a\"", 16384, 9));
        let listed = vec![
            (1, "a".to_string()),
            (2, "\"b\"".into()),
            (3, "\"c\"".into()),
        ];
        let (length, hashes) = assemble(&listed, take_all(&parts, "u", &listed), 16384).unwrap();
        assert_eq!(length, 32768 + 16384 + 100);
        let want: Vec<u8> = [vec![1; 40], vec![2; 20], vec![3; 20]].concat();
        assert_eq!(hashes.v1, want);
        assert!(parts.take("u", 1).is_none(), "forgotten once taken");
        assert!(
            parts.take("other", 1).is_some(),
            "another upload's parts stay"
        );
    }

    #[test]
    fn misaligned_missing_or_replaced_parts_are_not_assembled() {
        let listed = vec![(1, "\"a\"".to_string()), (2, "\"b\"".into())];
        let (a, b) = (part("\"a\"", 16384, 1), part("\"b\"", 100, 2));
        let found = |a: &Part, b: Option<&Part>| vec![Some(a.clone()), b.cloned()];
        let short_a = part("\"a\"", 20000, 1);
        let verdict = |found| assemble(&listed, found, 16384).map(|_| ());
        assert_eq!(
            verdict(found(&short_a, Some(&b))),
            Err(NotAssembled::Misaligned)
        );
        assert_eq!(verdict(found(&a, None)), Err(NotAssembled::Incomplete));
        let old_a = part("\"old\"", 16384, 1);
        assert_eq!(
            verdict(found(&old_a, Some(&b))),
            Err(NotAssembled::Incomplete)
        );
        assert_eq!(verdict(found(&a, Some(&b))), Ok(()));
        assert!(assemble(&[], vec![], 16384).is_err());
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
