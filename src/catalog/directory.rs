//! A directory torrent's subject, in two steps: the objects under a prefix as the listing
//! names them ([`DirectoryPlan`]: which files, their paths and order, within the limits —
//! all checked before anything is read), then as the READ checks found them
//! ([`DirectoryFacts`]: ETags, versions, the identity of the whole).

use sha2::{Digest, Sha256};

use crate::config::TorrentConfig;
use crate::s3::listing::{list_page_as, Asked, Listed};
use crate::s3::upstream::Upstream;
use crate::s3::{ObjectRef, S3Error};
use crate::store::EntryFile;
use crate::torrent::paths::{canonical_cmp, conflict, file_path, sort_files};
use crate::torrent::{Format, Info};

use super::facts::ObjectFacts;

/// Keys per listing page (S3's maximum).
const PAGE_SIZE: u16 = 1000;

/// Every object under the prefix as `asked` may list it, folder markers left out, counted
/// against the limits page by page (a prefix of millions is refused at the first page past
/// them, before anything is read).
pub async fn list_directory(
    upstream: &Upstream,
    asked: &Asked<'_>,
    config: &TorrentConfig,
) -> Result<Vec<Listed>, S3Error> {
    let mut tally = Tally::default();
    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = list_page_as(upstream, asked, token.as_deref(), PAGE_SIZE).await?;
        for object in page.objects {
            if is_folder_marker(&object.key) {
                continue;
            }
            tally.count(&object, config)?;
            listed.push(object);
        }
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(listed),
        }
    }
}

/// The files of a directory torrent, from the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryPlan {
    pub bucket: String,
    /// Empty (the whole bucket) or ending in `/`.
    pub prefix: String,
    /// The torrent's `name`: the prefix's last segment (the bucket's for the whole bucket).
    pub name: String,
    /// Some name or path segment was changed to be safe: a web-seed client's
    /// `{name}/{path}` no longer spells the key.
    pub renamed: bool,
    /// In the torrent's order.
    pub files: Vec<PlannedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub key: String,
    pub size: u64,
    pub path: Vec<String>,
}

/// What the limits have seen so far of a listing.
#[derive(Debug, Default)]
pub struct Tally {
    files: usize,
    bytes: u64,
}

impl Tally {
    /// Counts one listed object against `[torrent]`'s limits: a clear refusal naming the
    /// limit as soon as one is passed (before anything is read).
    pub fn count(&mut self, listed: &Listed, config: &TorrentConfig) -> Result<(), S3Error> {
        self.files += 1;
        self.bytes = self.bytes.saturating_add(listed.size);
        if self.files > config.max_files {
            return Err(S3Error::invalid_request(format!(
                "The prefix holds more than {} objects (torrent.max_files).",
                config.max_files
            )));
        }
        if listed.size > config.max_object_size {
            return Err(S3Error::invalid_request(format!(
                "{:?} is larger than {} bytes (torrent.max_object_size).",
                listed.key, config.max_object_size
            )));
        }
        if self.bytes > config.max_directory_size {
            return Err(S3Error::invalid_request(format!(
                "The objects under the prefix add up to more than {} bytes (torrent.max_directory_size).",
                config.max_directory_size
            )));
        }
        Ok(())
    }
}

/// Keys ending in `/` are folder markers, not files.
pub fn is_folder_marker(key: &str) -> bool {
    key.ends_with('/')
}

impl DirectoryPlan {
    /// The torrent's files: every listed object under `prefix` but folder markers, each
    /// path made safe, in the format's order; a key that cannot be a path, or two that
    /// land on one, refused by name.
    pub fn new(
        bucket: &str,
        prefix: &str,
        listed: Vec<Listed>,
        format: Format,
    ) -> Result<DirectoryPlan, S3Error> {
        let (name, mut renamed) = directory_name(bucket, prefix);
        let mut files = Vec::with_capacity(listed.len());
        for l in listed.into_iter().filter(|l| !is_folder_marker(&l.key)) {
            let rest = l.key.strip_prefix(prefix).ok_or_else(|| {
                S3Error::upstream_broke("The backend listed a key outside the prefix.")
            })?;
            let (path, changed) = file_path(rest).map_err(|why| {
                S3Error::invalid_request(format!(
                    "The key {:?} {}: it cannot be a file of a directory torrent.",
                    l.key,
                    why.as_str()
                ))
            })?;
            renamed |= changed;
            files.push(PlannedFile {
                key: l.key,
                size: l.size,
                path,
            });
        }
        if files.is_empty() {
            return Err(S3Error::new(
                crate::s3::Code::NoSuchKey,
                "No objects under the prefix.",
            ));
        }
        // Conflicts are neighbours in BEP 52's order: check there, whatever the format.
        let mut canonical: Vec<usize> = (0..files.len()).collect();
        canonical.sort_by(|&a, &b| canonical_cmp(&files[a].path, &files[b].path));
        for pair in canonical.windows(2) {
            let (a, b) = (&files[pair[0]], &files[pair[1]]);
            if conflict(&a.path, &b.path) {
                return Err(S3Error::invalid_request(format!(
                    "The keys {:?} and {:?} map to the same path, or one to a folder of the other ({:?}).",
                    a.key,
                    b.key,
                    a.path.join("/")
                )));
            }
        }
        sort_files(format, &mut files, |f| &f.key, |f| &f.path);
        Ok(DirectoryPlan {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            name,
            renamed,
            files,
        })
    }

    /// The objects to check, in the torrent's order.
    pub fn objects(&self) -> impl Iterator<Item = ObjectRef> + '_ {
        self.files.iter().map(|f| ObjectRef {
            bucket: self.bucket.clone(),
            key: f.key.clone(),
            version_id: None,
        })
    }
}

/// The torrent's name for a prefix, made safe, and whether that changed it.
pub fn directory_name(bucket: &str, prefix: &str) -> (String, bool) {
    // The same rule as an object's name: the last non-empty segment, else the bucket.
    let safe = Info::name_for_key(bucket, prefix);
    let raw = prefix.rsplit('/').find(|s| !s.is_empty()).unwrap_or(bucket);
    let renamed = safe != raw;
    (safe, renamed)
}

/// A directory as the caller was authorized for it: every file's ETag and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryFacts {
    pub bucket: String,
    pub prefix: String,
    pub name: String,
    pub renamed: bool,
    /// In the torrent's order, not hashed yet.
    pub files: Vec<EntryFile>,
    /// The latest of the files' (the torrent's `creation date`).
    pub last_modified: Option<String>,
}

impl DirectoryFacts {
    /// `facts[i]` is what the READ check of `plan.files[i]` found; an object that changed
    /// size since it was listed is a changed directory (retryable).
    pub fn of(plan: DirectoryPlan, facts: Vec<ObjectFacts>) -> Result<DirectoryFacts, S3Error> {
        let mut latest: Option<(std::time::SystemTime, String)> = None;
        let mut files = Vec::with_capacity(plan.files.len());
        for (planned, f) in plan.files.into_iter().zip(facts) {
            if planned.size != f.length {
                return Err(S3Error::service_unavailable(format!(
                    "{:?} changed while the prefix was listed. Please retry.",
                    planned.key
                )));
            }
            if let Some(lm) = &f.last_modified {
                if let Ok(t) = httpdate::parse_http_date(lm) {
                    if latest.as_ref().is_none_or(|(l, _)| t > *l) {
                        latest = Some((t, lm.clone()));
                    }
                }
            }
            files.push(EntryFile {
                key: planned.key,
                version_id: f.version_id,
                etag: f.etag,
                length: f.length,
                path: planned.path,
                tree: None,
            });
        }
        Ok(DirectoryFacts {
            bucket: plan.bucket,
            prefix: plan.prefix,
            name: plan.name,
            renamed: plan.renamed,
            files,
            last_modified: latest.map(|(_, lm)| lm),
        })
    }

    /// Bytes of all files.
    pub fn length(&self) -> u64 {
        self.files.iter().map(|f| f.length).sum()
    }

    /// Names every file's key, version, ETag, length and path, in order: any change under
    /// the prefix is another digest. Every field is length-prefixed.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        for f in &self.files {
            field(f.key.as_bytes());
            field(f.version_id.as_deref().unwrap_or("").as_bytes());
            field(&[f.version_id.is_some() as u8]);
            field(f.etag.as_bytes());
            field(&f.length.to_be_bytes());
            field(f.path.join("/").as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// File `i`'s object, at the version the caller was authorized for.
    pub fn object(&self, i: usize) -> ObjectRef {
        let f = &self.files[i];
        ObjectRef {
            bucket: self.bucket.clone(),
            key: f.key.clone(),
            version_id: f.version_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(keys: &[(&str, u64)]) -> Vec<Listed> {
        keys.iter()
            .map(|(k, size)| Listed {
                key: k.to_string(),
                size: *size,
                etag: "\"e\"".into(),
            })
            .collect()
    }

    fn keys(plan: &DirectoryPlan) -> Vec<&str> {
        plan.files.iter().map(|f| f.key.as_str()).collect()
    }

    #[test]
    fn files_are_the_keys_under_the_prefix_in_the_formats_order() {
        let l = listed(&[
            ("d/a-c", 1),
            ("d/a/b", 2),
            ("d/", 0),
            ("d/a/", 0),
            ("d/e", 0),
        ]);
        let v1 = DirectoryPlan::new("b", "d/", l.clone(), Format::V1).unwrap();
        assert_eq!(keys(&v1), ["d/a-c", "d/a/b", "d/e"], "markers skipped");
        assert_eq!((v1.name.as_str(), v1.renamed), ("d", false));
        let hybrid = DirectoryPlan::new("b", "d/", l, Format::Hybrid).unwrap();
        assert_eq!(keys(&hybrid), ["d/a/b", "d/a-c", "d/e"]);
        assert_eq!(hybrid.files[0].path, ["a", "b"]);
        let whole = DirectoryPlan::new("bk", "", listed(&[("x:y", 1)]), Format::V1).unwrap();
        assert_eq!((whole.name.as_str(), whole.renamed), ("bk", true));
        assert_eq!(whole.files[0].path, ["x_y"]);
    }

    #[test]
    fn bad_and_colliding_paths_are_refused_by_name() {
        for (keys, named) in [
            (vec!["d/a//b"], "d/a//b"),
            (vec!["d/x/../y"], "d/x/../y"),
            (vec!["d/a:b", "d/a_b"], "d/a:b"),
            (vec!["d/a", "d/a/b"], "d/a/b"),
        ] {
            let l = listed(&keys.iter().map(|k| (*k, 1)).collect::<Vec<_>>());
            let e = DirectoryPlan::new("b", "d/", l, Format::V1).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, "InvalidRequest"));
            assert!(e.message.contains(named), "{}", e.message);
        }
        let e = DirectoryPlan::new("b", "d/", listed(&[("d/", 0)]), Format::V1).unwrap_err();
        assert_eq!(e.status, 404);
    }

    #[test]
    fn limits_are_named() {
        let config = TorrentConfig {
            max_files: 2,
            max_object_size: 10,
            max_directory_size: 15,
            ..TorrentConfig::default()
        };
        let mut t = Tally::default();
        let l = listed(&[("a", 8), ("b", 8)]);
        t.count(&l[0], &config).unwrap();
        let e = t.count(&l[1], &config).unwrap_err();
        assert!(e.message.contains("max_directory_size"));
        let mut t = Tally::default();
        let e = t.count(&listed(&[("a", 11)])[0], &config).unwrap_err();
        assert!(e.message.contains("max_object_size"));
        let mut t = Tally::default();
        let small = listed(&[("a", 1)]);
        for _ in 0..2 {
            t.count(&small[0], &config).unwrap();
        }
        assert!(t
            .count(&small[0], &config)
            .unwrap_err()
            .message
            .contains("max_files"));
    }

    #[test]
    fn the_digest_names_every_fact() {
        let plan = DirectoryPlan::new("b", "d/", listed(&[("d/a", 3)]), Format::V1).unwrap();
        let facts = ObjectFacts {
            etag: "\"1\"".into(),
            length: 3,
            last_modified: None,
            version_id: None,
            request_charged: false,
        };
        let base = DirectoryFacts::of(plan.clone(), vec![facts.clone()]).unwrap();
        let other = |f: ObjectFacts| DirectoryFacts::of(plan.clone(), vec![f]).unwrap().digest();
        assert_ne!(
            other(ObjectFacts {
                etag: "\"2\"".into(),
                ..facts.clone()
            }),
            base.digest()
        );
        let versioned = ObjectFacts {
            version_id: Some("v".into()),
            ..facts.clone()
        };
        assert_ne!(other(versioned), base.digest());
        let grown = ObjectFacts { length: 4, ..facts };
        assert_eq!(
            DirectoryFacts::of(plan, vec![grown]).unwrap_err().status,
            503
        );
    }
}
