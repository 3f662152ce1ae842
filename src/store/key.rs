//! A torrent's identity, built in one place from the object's facts ([`EntryKey::of`]) or a
//! directory's listing ([`EntryKey::of_directory`]) and `[torrent]`: the key of the torrent
//! cache, the store and the single-flight alike.

use sha2::{Digest, Sha256};

use crate::config::TorrentConfig;
use crate::s3::ObjectRef;
use crate::torrent::{Format, Layout};

/// What an entry is for: the object (as the request named it), what the backend says it is
/// now, and the settings that change its hashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryKey {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub etag: String,
    pub length: u64,
    pub format: Format,
    pub piece_length: u64,
    /// A directory: `key` is its prefix, `etag` the digest of its files' facts, `length`
    /// their sum.
    pub directory: bool,
}

impl EntryKey {
    /// The one way a torrent's identity is made: `object` (as the request named it) at
    /// `etag` and `length`, as `[torrent]` here hashes it.
    pub fn of(object: &ObjectRef, etag: &str, length: u64, torrent: &TorrentConfig) -> EntryKey {
        EntryKey {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            version_id: object.version_id.clone(),
            etag: etag.to_string(),
            length,
            format: torrent.format,
            piece_length: torrent.piece_length.for_length(length),
            directory: false,
        }
    }

    /// The one way a directory torrent's identity is made: the objects of `bucket` under
    /// `prefix`, `files_digest` naming every file's key, version, ETag and length (so any
    /// change under the prefix is another torrent), `length` bytes in all.
    pub fn of_directory(
        bucket: &str,
        prefix: &str,
        files_digest: String,
        length: u64,
        torrent: &TorrentConfig,
    ) -> EntryKey {
        EntryKey {
            bucket: bucket.to_string(),
            key: prefix.to_string(),
            version_id: None,
            etag: files_digest,
            length,
            format: torrent.format,
            piece_length: torrent.piece_length.for_length(length),
            directory: true,
        }
    }

    /// The piece geometry of the one-object torrent this key names (a directory's comes
    /// from its files: [`super::Entry::layout`]).
    pub fn layout(&self) -> Layout {
        Layout::single(self.length, self.piece_length)
    }

    /// A fixed-length name (the store entry's): keys up to 1024 bytes and ETags would not
    /// fit in one key otherwise. Every field is length-prefixed, so no two keys share a name.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        let version = self.version_id.as_deref().unwrap_or("");
        let length = self.length.to_string();
        let piece_length = self.piece_length.to_string();
        for field in [
            self.bucket.as_str(),
            &self.key,
            version,
            &self.etag,
            &length,
            self.format.as_str(),
            &piece_length,
        ] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
        h.update([self.version_id.is_some() as u8, self.directory as u8]);
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EntryKey {
        EntryKey {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
            etag: "\"e\"".into(),
            length: 10,
            format: Format::V1,
            piece_length: 16384,
            directory: false,
        }
    }

    #[test]
    fn every_field_changes_the_name() {
        let base = key().digest();
        let changes: [fn(&mut EntryKey); 8] = [
            |k| k.directory = true,
            |k| k.bucket = "c".into(),
            |k| k.key = "k2".into(),
            |k| k.version_id = Some(String::new()),
            |k| k.etag = "\"f\"".into(),
            |k| k.length = 11,
            |k| k.format = Format::Hybrid,
            |k| k.piece_length = 32768,
        ];
        for change in changes {
            let mut k = key();
            change(&mut k);
            assert_ne!(k.digest(), base, "{k:?}");
        }
        // Field boundaries are part of the name: "b"+"kk" is not "bk"+"k".
        let (mut a, mut b) = (key(), key());
        (a.bucket, a.key) = ("b".into(), "kk".into());
        (b.bucket, b.key) = ("bk".into(), "k".into());
        assert_ne!(a.digest(), b.digest());
    }
}
