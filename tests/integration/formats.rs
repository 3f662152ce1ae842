//! BitTorrent v2 and hybrid torrents (BEP 52): byte-identical to libtorrent's own
//! `create_torrent` for the same bytes, name and piece length, and usable by real clients.

use std::path::Path;
use std::process::Command;

use s3torrent::torrent::bencode::{self, Value};

use crate::harness::*;

const FORMATS: [&str; 3] = ["v1", "hybrid", "v2"];

/// libtorrent's `info` and `piece layers` (bencoded) for `data` saved as `name`.
fn libtorrent_create(
    data: &[u8],
    name: &str,
    piece_length: u64,
    format: &str,
    dir: &Path,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let sub = dir.join(format!("lt-{format}-{piece_length}-{}", data.len()));
    std::fs::create_dir_all(&sub).unwrap();
    let file = sub.join(name);
    std::fs::write(&file, data).unwrap();
    libtorrent_create_path(&file, piece_length, format)
}

/// The sidecar's `info` and `piece layers`, re-encoded by our strict decoder (which accepts
/// only canonical bencode, so re-encoding is byte-exact).
fn sidecar_parts(torrent: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let v = bencode::decode(torrent).expect("canonical bencode");
    let part = |k: &str| v.get(k).map(Value::encode);
    (part("info").unwrap(), part("piece layers"))
}

/// A sidecar making `format` torrents; objects from 1 MiB on are read as 3 piece-aligned
/// ranged GETs, so the per-range hashes are joined as they are for large objects.
fn one_format_sidecar(format: &str, piece_length: &str) -> u16 {
    // A number, or "auto" (quoted, as it was TOML).
    let piece: toml::Value = piece_length
        .parse::<i64>()
        .map_or(piece_length.trim_matches('"').into(), Into::into);
    sidecar(&format!("format-{format}-{piece_length}"))
        .set("torrent.format", format)
        .set("torrent.piece_length", piece)
        .set("limits.fetch_streams", 3)
        .set("limits.parallel_fetch_min_bytes", 1048576)
        .start()
        .port
}

#[test]
fn info_and_piece_layers_are_byte_identical_to_libtorrent() {
    let env = env();
    let dir = env.scratch("formats-oracle");
    // Sizes around block and piece edges, a few MiB (16 KiB pieces, deep trees) and tens of
    // MiB (64 KiB pieces, several parallel ranged fetches), one with a non-ASCII name.
    let cases: [(usize, &str); 6] = [
        (1, "one.bin"),
        (16_384, "block.bin"),
        (16_385, "block+1.bin"),
        (40_000, "three blocks ü.bin"),
        (3 * 1024 * 1024 + 123, "few-mib.bin"),
        (40 * 1024 * 1024 + 5, "Grüße 日本.iso"),
    ];
    for (size, name) in cases {
        put_object(
            "public",
            &format!("formats/{name}"),
            &test_data(size, size as u64 + 7),
            &dir,
        );
    }
    // `auto` (the piece length libtorrent is then given is the one the sidecar chose), and a
    // fixed piece far larger than the small objects: one piece whose tree is narrower than it.
    for piece_length in ["\"auto\"", "262144"] {
        for format in FORMATS {
            let port = one_format_sidecar(format, piece_length);
            for (size, name) in cases {
                let data = test_data(size, size as u64 + 7);
                let r = request(
                    port,
                    "GET",
                    &format!(
                        "/public/formats/{}?torrent",
                        s3torrent::s3::uri::encode_path(name)
                    ),
                    &[],
                );
                assert_eq!(r.status, 200, "{format} {name}: {}", r.text());
                let torrent = bencode::decode(&r.body).unwrap();
                let chosen = torrent
                    .get("info")
                    .unwrap()
                    .get("piece length")
                    .unwrap()
                    .as_int()
                    .unwrap() as u64;
                let (info, layers) = sidecar_parts(&r.body);
                let (lt_info, lt_layers) = libtorrent_create(&data, name, chosen, format, &dir);
                assert!(
                    info == lt_info,
                    "{format} {name} (piece {chosen}): info differs\n ours: {}\n  lt: {}",
                    String::from_utf8_lossy(&info),
                    String::from_utf8_lossy(&lt_info)
                );
                assert_eq!(
                    layers, lt_layers,
                    "{format} {name} (piece {chosen}): piece layers differ"
                );
            }
        }
    }
}

/// A directory's torrent (many files: nested folders, an empty file, sizes on and off piece
/// boundaries, files of one piece and of many) is byte-identical to libtorrent's for the same
/// files in key order, in each format and at two piece lengths: `info`, and `piece layers`.
#[test]
fn directory_info_and_piece_layers_are_byte_identical_to_libtorrent() {
    use s3torrent::torrent::paths::{file_path, sort_files};
    use s3torrent::torrent::{
        Format, Info, InfoFile, Layout, Metainfo, MultiHasher, StretchHashes,
    };
    use std::collections::BTreeMap;
    let dir = env().scratch("directory-oracle");
    let root = dir.join("dataset");
    // `b-x.bin` comes before `b/…` in key order, after it in BEP 52's (v2, hybrid).
    let files: [(&str, usize); 8] = [
        ("a.bin", 70_000),
        ("b-x.bin", 20_000),
        ("b/c.bin", 5),
        ("b/d/e.bin", 3 * 16_384),
        ("b/empty.txt", 0),
        ("f.bin", 40_000),
        ("z/0.bin", 16_384),
        ("z/last.bin", 100_001),
    ];
    let mut data = BTreeMap::new();
    for (i, (name, len)) in files.iter().enumerate() {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let bytes = test_data(*len, 2000 + i as u64);
        std::fs::write(&path, &bytes).unwrap();
        data.insert(format!("dataset/{name}"), bytes);
    }
    for piece_length in [16_384u64, 32_768] {
        for (format_name, format) in [
            ("v1", Format::V1),
            ("hybrid", Format::Hybrid),
            ("v2", Format::V2),
        ] {
            // The files as the sidecar orders them, with their paths.
            let mut planned: Vec<(String, Vec<String>, u64)> = files
                .iter()
                .map(|(name, len)| {
                    let (path, _) = file_path(name).unwrap();
                    (format!("dataset/{name}"), path, *len as u64)
                })
                .collect();
            sort_files(format, &mut planned, |f| &f.0, |f| &f.1);
            let lengths: Vec<u64> = planned.iter().map(|f| f.2).collect();
            let layout = Layout::of_files(&lengths, piece_length, format.has_v2());
            let total = layout.length();
            // Two stretches side by side, as a generation reads them.
            let parts = layout
                .stretches(2, 0)
                .into_iter()
                .map(|range| {
                    let mut hasher = MultiHasher::stretch(layout.clone(), range, format);
                    for s in hasher.segments().to_vec() {
                        let bytes = &data[&planned[s.file].0];
                        let bytes = &bytes[s.range.start as usize..s.range.end as usize];
                        for chunk in bytes.chunks(10_000) {
                            hasher.update(chunk);
                        }
                    }
                    hasher.finish().expect("every segment whole")
                })
                .collect();
            let (pieces, trees) = StretchHashes::join(parts, &layout, format);
            let info_files = planned
                .iter()
                .zip(trees)
                .map(|(f, tree)| InfoFile {
                    path: f.1.clone(),
                    length: f.2,
                    tree,
                })
                .collect();
            let info = Info {
                name: "dataset".into(),
                length: total,
                piece_length,
                pieces,
                file_tree: None,
                private: false,
                s3_location: None,
                files: info_files,
            };
            let ours = sidecar_parts(&Metainfo::default().encode(&info).bytes);
            let theirs = libtorrent_create_path(&root, piece_length, format_name);
            assert_eq!(
                ours.0,
                theirs.0,
                "{format_name} at {piece_length}: info differs\n ours {}\ntheirs {}",
                String::from_utf8_lossy(&ours.0),
                String::from_utf8_lossy(&theirs.0)
            );
            assert_eq!(
                ours.1, theirs.1,
                "{format_name} at {piece_length}: piece layers differ"
            );
        }
    }
}

/// libtorrent's `info` and `piece layers` for the file or directory at `path`.
fn libtorrent_create_path(
    path: &Path,
    piece_length: u64,
    format: &str,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/lt_create.py");
    let out = Command::new(libtorrent_python())
        .arg(script)
        .arg(path)
        .arg(piece_length.to_string())
        .arg(format)
        .output()
        .unwrap();
    let v = parse_json(&out, "lt_create.py");
    let hex = |k: &str| v[k].as_str().map(|h| hex::decode(h).unwrap());
    (hex("info").unwrap(), hex("piece_layers"))
}
