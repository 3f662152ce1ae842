//! Which object a renamed directory's web-seed URL names. When a segment of a directory
//! torrent was made safe, `{name}/{path}` no longer spells the key, so its web seed is the
//! directory's own route (`_dir/{bucket}/{identity}/`, see `assemble`) and the file is
//! found here by its path: in memory for the directories this replica served, else from the
//! store entry named by the identity (any replica's, sealed by the store key).

use std::collections::HashMap;
use std::sync::Arc;

use crate::common::byte_lru::ByteLru;
use crate::s3::ObjectRef;
use crate::store::EntryFile;

/// One directory's files by `{name}/{path}` (segments joined by `/`: safe segments hold none).
#[derive(Debug, Default)]
pub struct DirectoryFiles {
    by_path: HashMap<String, (String, Option<String>)>,
    bytes: u64,
}

impl DirectoryFiles {
    pub fn new(name: &str, files: &[EntryFile]) -> DirectoryFiles {
        let mut bytes = 0;
        let by_path = files
            .iter()
            .map(|f| {
                let path = format!("{name}/{}", f.path.join("/"));
                let version = f.version_id.clone();
                bytes += (path.len() + f.key.len() + version.as_ref().map_or(0, String::len)
                    // The map's slot, the strings' headers.
                    + 96) as u64;
                (path, (f.key.clone(), version))
            })
            .collect();
        DirectoryFiles { by_path, bytes }
    }

    /// The object at `{name}/{path}` in `bucket`.
    pub fn object(&self, bucket: &str, path: &str) -> Option<ObjectRef> {
        let (key, version_id) = self.by_path.get(path)?;
        Some(ObjectRef {
            bucket: bucket.to_string(),
            key: key.clone(),
            version_id: version_id.clone(),
        })
    }
}

/// Directories by identity (the store entry's name), bounded in bytes
/// (`cache.max_directory_index_bytes`).
pub struct WebseedIndex(ByteLru<String, Arc<DirectoryFiles>>);

impl WebseedIndex {
    pub fn new(max_bytes: u64) -> WebseedIndex {
        WebseedIndex(ByteLru::new(max_bytes, |identity, files| {
            identity.len() as u64 + files.bytes + 128
        }))
    }

    pub fn get(&self, identity: &str) -> Option<Arc<DirectoryFiles>> {
        self.0.get(&identity.to_string())
    }

    /// Kept unless already known (a directory's identity fixes its files).
    pub fn remember(
        &self,
        identity: &str,
        make: impl FnOnce() -> DirectoryFiles,
    ) -> Arc<DirectoryFiles> {
        if let Some(known) = self.0.get(&identity.to_string()) {
            return known;
        }
        let files = Arc::new(make());
        self.0.insert(identity.to_string(), files.clone());
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(key: &str, path: &[&str]) -> EntryFile {
        EntryFile {
            key: key.into(),
            version_id: None,
            etag: "\"e\"".into(),
            length: 1,
            path: path.iter().map(|s| s.to_string()).collect(),
            tree: None,
        }
    }

    #[test]
    fn a_path_finds_its_key_and_nothing_else_does() {
        let files = DirectoryFiles::new(
            "d_",
            &[file("d:/a\\b", &["a_b"]), file("d:/c/x", &["c", "x"])],
        );
        let found = files.object("bk", "d_/a_b").unwrap();
        assert_eq!(
            (found.bucket.as_str(), found.key.as_str()),
            ("bk", "d:/a\\b")
        );
        assert_eq!(files.object("bk", "d_/c/x").unwrap().key, "d:/c/x");
        for missing in ["d_/c", "a_b", "d_/a_b/", "x/a_b", "d_/../a_b"] {
            assert!(files.object("bk", missing).is_none(), "{missing}");
        }
    }

    #[test]
    fn the_index_is_bounded_in_bytes() {
        let index = WebseedIndex::new(2_000);
        let many: Vec<EntryFile> = (0..100)
            .map(|i| file(&format!("k{i}"), &[&format!("p{i}")]))
            .collect();
        index.remember("big", || DirectoryFiles::new("n", &many));
        assert!(
            index.get("big").is_none(),
            "heavier than the budget: not kept"
        );
        index.remember("small", || DirectoryFiles::new("n", &many[..2]));
        assert!(index.get("small").is_some());
    }
}
