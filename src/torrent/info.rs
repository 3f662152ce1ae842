//! The `info` dictionary, v1, v2 or hybrid, of one file or of many; its encoded bytes define
//! the infohash (SHA-1 for v1, SHA-256 for v2). Many files are laid out as libtorrent 2.0.8's
//! `create_torrent` lays them: v1 files end to end with no pad files; hybrid with a BEP 47
//! pad file (`attr` `p`, path `.pad/N`) after every file, the last one too, that does not
//! end on a piece boundary; v2 (and hybrid) with a `file tree` whose empty files have no
//! root.

use std::collections::BTreeMap;

use super::bencode::Value;
use super::{FileTree, Format, Layout};

/// One file of a multi-file torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoFile {
    /// Path segments under the torrent's `name`, each already safe.
    pub path: Vec<String>,
    pub length: u64,
    /// v2: its Merkle root and piece layer; `None` for v1, and for an empty file.
    pub tree: Option<FileTree>,
}

/// The `info` dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub name: String,
    pub length: u64,
    pub piece_length: u64,
    /// v1: 20-byte SHA-1 per piece; empty in a v2-only torrent.
    pub pieces: Vec<u8>,
    /// v2: the file's Merkle root (and its piece layer, which travels outside `info`).
    pub file_tree: Option<FileTree>,
    pub private: bool,
    /// `x-amz-bucket` / `x-amz-key`, as Amazon S3 put them (opt-in: changes the infohash).
    pub s3_location: Option<(String, String)>,
    /// Many files (a directory): then `length` is their layout's and `file_tree` is unused.
    pub files: Vec<InfoFile>,
}

impl Info {
    /// The file name a client will save to: the key's last non-empty segment (the bucket's
    /// name for a key of slashes only), made safe to create on Linux, macOS and Windows by
    /// [`Info::safe_file_name`].
    pub fn name_for_key(bucket: &str, key: &str) -> String {
        let base = key.rsplit('/').find(|s| !s.is_empty()).unwrap_or(bucket);
        Self::safe_file_name(base)
    }

    /// A deterministic mapping, documented in the README: control characters and
    /// `\ / < > : " | ? *` become `_`, as do trailing dots and spaces (so `.` and `..` are
    /// `_` and `__`); a Windows device name (`CON`, `PRN`, `AUX`, `NUL`, `COM1`–`COM9`,
    /// `LPT1`–`LPT9`, with any extension, any case) gets a leading `_`; empty becomes `_`.
    pub fn safe_file_name(raw: &str) -> String {
        let mut name: String = raw
            .chars()
            .map(|c| match c {
                '\u{0}'..='\u{1f}' | '\u{7f}' => '_',
                '\\' | '/' | '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
                c => c,
            })
            .collect();
        let kept = name.trim_end_matches(['.', ' ']).len();
        let trailing = name.len() - kept;
        name.truncate(kept);
        name.extend(std::iter::repeat_n('_', trailing));
        let stem = name
            .split('.')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let device = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
            || (stem.len() == 4
                && (stem.starts_with("COM") || stem.starts_with("LPT"))
                && matches!(stem.as_bytes()[3], b'1'..=b'9'));
        if device {
            name.insert(0, '_');
        }
        if name.is_empty() {
            name.push('_');
        }
        name
    }

    pub fn format(&self) -> Format {
        let v2 = match self.files.is_empty() {
            true => self.file_tree.is_some(),
            false => self.files.iter().any(|f| f.tree.is_some()),
        };
        match (v2, self.pieces.is_empty()) {
            (false, _) => Format::V1,
            (true, false) => Format::Hybrid,
            (true, true) => Format::V2,
        }
    }

    /// The piece layout of the files (one file: the object) as peers see it. A v2-only
    /// torrent's one file is padded to a whole last piece, as libtorrent (2.0.8 on) pads
    /// every v2 file; a hybrid's is not (its v1 `length` says where it ends).
    pub fn layout(&self) -> Layout {
        let v2_only = self.format() == Format::V2;
        match self.files.is_empty() {
            true => Layout::of_files(&[self.length], self.piece_length, v2_only),
            false => {
                let lengths: Vec<u64> = self.files.iter().map(|f| f.length).collect();
                Layout::of_files(&lengths, self.piece_length, self.format().has_v2())
            }
        }
    }

    pub fn to_value(&self) -> Value {
        if !self.files.is_empty() {
            return self.multi_file_value();
        }
        let mut d = BTreeMap::new();
        let format = self.format();
        if format.has_v1() {
            d.insert(b"length".to_vec(), Value::Int(self.length as i64));
            d.insert(b"pieces".to_vec(), Value::bytes(self.pieces.clone()));
        }
        if let Some(tree) = &self.file_tree {
            // A single file: `{name: {"": {length, pieces root}}}`.
            let mut file = BTreeMap::new();
            file.insert(b"length".to_vec(), Value::Int(self.length as i64));
            file.insert(
                b"pieces root".to_vec(),
                Value::bytes(tree.pieces_root.to_vec()),
            );
            let leaf = BTreeMap::from([(Vec::new(), Value::Dict(file))]);
            let root = BTreeMap::from([(self.name.as_bytes().to_vec(), Value::Dict(leaf))]);
            d.insert(b"file tree".to_vec(), Value::Dict(root));
            d.insert(b"meta version".to_vec(), Value::Int(2));
        }
        self.put_common(&mut d);
        if let Some((bucket, key)) = &self.s3_location {
            d.insert(b"x-amz-bucket".to_vec(), Value::bytes(bucket.as_bytes()));
            d.insert(b"x-amz-key".to_vec(), Value::bytes(key.as_bytes()));
        }
        Value::Dict(d)
    }
}

impl Info {
    fn multi_file_value(&self) -> Value {
        let mut d = BTreeMap::new();
        let format = self.format();
        if format.has_v1() {
            let layout = self.layout();
            let mut files = Vec::new();
            // In the layout's order: key order for v1, a hybrid's canonical path order.
            for (i, f) in self.files.iter().enumerate() {
                let mut entry = BTreeMap::new();
                entry.insert(b"length".to_vec(), Value::Int(f.length as i64));
                entry.insert(b"path".to_vec(), path_value(&f.path));
                files.push(Value::Dict(entry));
                let pad = layout.pad_after(i);
                if pad > 0 {
                    let mut entry = BTreeMap::new();
                    entry.insert(b"attr".to_vec(), Value::bytes("p"));
                    entry.insert(b"length".to_vec(), Value::Int(pad as i64));
                    let path = [".pad".to_string(), pad.to_string()];
                    entry.insert(b"path".to_vec(), path_value(&path));
                    files.push(Value::Dict(entry));
                }
            }
            d.insert(b"files".to_vec(), Value::List(files));
            d.insert(b"pieces".to_vec(), Value::bytes(self.pieces.clone()));
        }
        if format.has_v2() {
            let mut root = BTreeMap::new();
            for f in &self.files {
                let mut leaf = BTreeMap::new();
                leaf.insert(b"length".to_vec(), Value::Int(f.length as i64));
                if let Some(tree) = &f.tree {
                    leaf.insert(
                        b"pieces root".to_vec(),
                        Value::bytes(tree.pieces_root.to_vec()),
                    );
                }
                insert_path(&mut root, &f.path, Value::Dict(leaf));
            }
            d.insert(b"file tree".to_vec(), Value::Dict(root));
            d.insert(b"meta version".to_vec(), Value::Int(2));
        }
        self.put_common(&mut d);
        Value::Dict(d)
    }

    /// What every `info` has: `name`, `piece length`, and `private` when set.
    fn put_common(&self, d: &mut BTreeMap<Vec<u8>, Value>) {
        d.insert(b"name".to_vec(), Value::bytes(self.name.as_bytes()));
        d.insert(
            b"piece length".to_vec(),
            Value::Int(self.piece_length as i64),
        );
        if self.private {
            d.insert(b"private".to_vec(), Value::Int(1));
        }
    }
}

fn path_value(path: &[String]) -> Value {
    Value::List(path.iter().map(|s| Value::bytes(s.as_bytes())).collect())
}

/// `tree[path…][""] = leaf`, making the folders on the way.
fn insert_path(tree: &mut BTreeMap<Vec<u8>, Value>, path: &[String], leaf: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let node = tree
        .entry(first.as_bytes().to_vec())
        .or_insert_with(|| Value::Dict(BTreeMap::new()));
    if let Value::Dict(children) = node {
        match rest.is_empty() {
            true => {
                children.insert(Vec::new(), leaf);
            }
            false => insert_path(children, rest, leaf),
        }
    }
}

#[cfg(test)]
impl Info {
    /// A small, valid `info` for tests of the types around it.
    pub fn fixture() -> Info {
        Info {
            name: "a.bin".into(),
            length: 5,
            piece_length: 16384,
            pieces: vec![0xab; 20],
            file_tree: None,
            private: false,
            s3_location: None,
            files: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_last_key_segment() {
        assert_eq!(Info::name_for_key("b", "dir/sub/file.iso"), "file.iso");
        assert_eq!(Info::name_for_key("b", "file"), "file");
        assert_eq!(Info::name_for_key("b", "dir/"), "dir");
        assert_eq!(Info::name_for_key("b", "///"), "b");
        assert_eq!(Info::name_for_key("b", "x/.."), "__");
        assert_eq!(Info::name_for_key("b", "x/."), "_");
        assert_eq!(Info::name_for_key("b", "ü ß+%.txt"), "ü ß+%.txt");
    }

    #[test]
    fn names_are_safe_on_every_os() {
        let cases = [
            ("a\u{0}b\u{1f}c\u{7f}", "a_b_c_"),
            ("back\\slash", "back_slash"),
            ("w<i>n:d\"o|w?s*", "w_i_n_d_o_w_s_"),
            ("trailing. .", "trailing___"),
            ("CON", "_CON"),
            ("con.txt", "_con.txt"),
            ("Lpt9.tar.gz", "_Lpt9.tar.gz"),
            ("COM0", "COM0"),
            ("CONSOLE", "CONSOLE"),
            ("nul ", "nul_"),
            ("", "_"),
            ("日本.iso", "日本.iso"),
        ];
        for (raw, safe) in cases {
            assert_eq!(Info::safe_file_name(raw), safe, "{raw:?}");
        }
        // The bucket-name fallback goes through the same mapping.
        assert_eq!(Info::name_for_key("aux", "//"), "_aux");
    }
}
