//! A directory torrent's file paths: the rest of each key after the prefix, split on `/`,
//! each segment made safe by [`Info::safe_file_name`]; and the order files take (v1: the
//! keys' byte order; v2 and hybrid: BEP 52's, each path compared segment by segment, as
//! libtorrent 2.0.8 sorts them).

use std::cmp::Ordering;

use super::{Format, Info};

/// Why a key cannot be a file of the torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    /// `a//b`, or a key ending in `/` (a folder marker is skipped before this).
    EmptySegment,
    /// `.` or `..`: a client would leave the torrent's folder, or write to it.
    DotSegment,
}

impl BadPath {
    pub fn as_str(self) -> &'static str {
        match self {
            BadPath::EmptySegment => "has an empty path segment",
            BadPath::DotSegment => "has a `.` or `..` path segment",
        }
    }
}

/// The file's path under the torrent's name, and whether the mapping changed any segment
/// (then the key can no longer be rebuilt from the path).
pub fn file_path(rest: &str) -> Result<(Vec<String>, bool), BadPath> {
    let mut renamed = false;
    let segments = rest
        .split('/')
        .map(|raw| match raw {
            "" => Err(BadPath::EmptySegment),
            "." | ".." => Err(BadPath::DotSegment),
            raw => {
                let safe = Info::safe_file_name(raw);
                renamed |= safe != raw;
                Ok(safe)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((segments, renamed))
}

/// BEP 52's order: segment by segment, each in byte order (`a/b` before `a-c`).
pub fn canonical_cmp(a: &[String], b: &[String]) -> Ordering {
    // Slices compare element by element, and `String`s by their bytes.
    a.cmp(b)
}

/// Puts a directory's files in the order `format` lays them out: the keys' byte order for
/// v1 (libtorrent keeps a v1 torrent's files as given), [`canonical_cmp`] for v2 and hybrid
/// (libtorrent sorts them so).
pub fn sort_files<T>(
    format: Format,
    files: &mut [T],
    key: impl Fn(&T) -> &str,
    path: impl Fn(&T) -> &[String],
) {
    match format {
        Format::V1 => files.sort_by(|a, b| key(a).as_bytes().cmp(key(b).as_bytes())),
        Format::Hybrid | Format::V2 => files.sort_by(|a, b| canonical_cmp(path(a), path(b))),
    }
}

/// Two paths no torrent can hold both of: the same path, or one a folder of the other.
/// Among paths in [`canonical_cmp`] order, a conflict is always between neighbours.
pub fn conflict(a: &[String], b: &[String]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long.starts_with(short)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        s.split('/').map(str::to_string).collect()
    }

    #[test]
    fn keys_become_safe_paths() {
        assert_eq!(file_path("a/b c.txt"), Ok((p("a/b c.txt"), false)));
        assert_eq!(file_path("x:y/CON"), Ok((p("x_y/_CON"), true)));
        assert_eq!(file_path("a//b"), Err(BadPath::EmptySegment));
        assert_eq!(file_path("a/"), Err(BadPath::EmptySegment));
        assert_eq!(file_path("a/../b"), Err(BadPath::DotSegment));
        assert_eq!(file_path("."), Err(BadPath::DotSegment));
        assert_eq!(file_path("..."), Ok((p("___"), true)));
    }

    #[test]
    fn paths_order_segment_by_segment() {
        let mut v = vec![p("a-c"), p("a/b"), p("a"), p("B"), p("a/b/c")];
        v.sort_by(|x, y| canonical_cmp(x, y));
        assert_eq!(v, vec![p("B"), p("a"), p("a/b"), p("a/b/c"), p("a-c")]);
        assert!(conflict(&p("a"), &p("a/b")) && conflict(&p("a/b"), &p("a/b")));
        assert!(!conflict(&p("a"), &p("a-c")) && !conflict(&p("a/b"), &p("a/c")));
    }
}
