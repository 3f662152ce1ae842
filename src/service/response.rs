//! What the proxy writes for a request it answers itself, and the headers of a torrent
//! response: `Content-Disposition`, the torrent's own `ETag` with `If-None-Match`, the magnet
//! `Link`.

use bytes::Bytes;

use crate::s3::uri::encode;
use crate::s3::ObjectRef;
use crate::torrent::Torrent;

/// A response the proxy writes as is (plus `x-amz-request-id`).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// Sent unless the request was `HEAD`; `Content-Length` is always its length.
    pub body: Bytes,
}

/// What one response carries of a torrent: its bytes (with this response's web seeds).
pub struct Rendered {
    pub bytes: Bytes,
    pub etag: String,
    pub magnet: String,
}

pub fn reply(
    object: &ObjectRef,
    torrent: &Torrent,
    rendered: Rendered,
    request_charged: bool,
    if_none_match: Option<&str>,
) -> Reply {
    let mut headers = vec![("etag", rendered.etag.clone())];
    if let Some(lm) = &torrent.last_modified {
        headers.push(("last-modified", lm.clone()));
    }
    if request_charged {
        headers.push(("x-amz-request-charged", "requester".to_string()));
    }
    headers.push(("link", format!("<{}>; rel=\"alternate\"", rendered.magnet)));
    if if_none_match.is_some_and(|inm| etag_matches(inm, &rendered.etag)) {
        return Reply {
            status: 304,
            headers,
            body: Bytes::new(),
        };
    }
    headers.push(("content-type", "application/x-bittorrent".to_string()));
    headers.push((
        "content-disposition",
        content_disposition(&object.bucket, &object.key),
    ));
    Reply {
        status: 200,
        headers,
        body: rendered.bytes,
    }
}

/// `magnet:?xt=urn:btih:…&dn=…&tr=…&ws=…` (BEP 9, with BEP 19 web seeds); v2 and hybrid
/// torrents are named by `xt=urn:btmh:1220…` (a SHA-256 multihash, BEP 52), hybrid by both.
pub fn magnet_link(torrent: &Torrent, webseeds: &[String], peer: Option<String>) -> String {
    let mut topics = Vec::new();
    if torrent.info.format().has_v1() {
        topics.push(format!("xt=urn:btih:{}", hex::encode(torrent.info_hash)));
    }
    if let Some(v2) = torrent.info_hash_v2 {
        topics.push(format!("xt=urn:btmh:1220{}", hex::encode(v2)));
    }
    let mut m = format!(
        "magnet:?{}&dn={}",
        topics.join("&"),
        encode(&torrent.info.name)
    );
    for tr in torrent.meta.announce.iter().flatten() {
        m.push_str("&tr=");
        m.push_str(&encode(tr));
    }
    for ws in webseeds {
        m.push_str("&ws=");
        m.push_str(&encode(ws));
    }
    // A peer to dial directly: the sidecar's own seeder.
    if let Some(peer) = peer {
        m.push_str("&x.pe=");
        m.push_str(&encode(&peer));
    }
    m
}

/// `If-None-Match` per RFC 9110: `*` or a list of (weakly compared) entity tags.
fn etag_matches(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    header
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

/// `attachment; filename="x.torrent"`, plus RFC 6266 `filename*` for non-ASCII names.
fn content_disposition(bucket: &str, key: &str) -> String {
    let name = format!(
        "{}.torrent",
        crate::torrent::Info::name_for_key(bucket, key)
    );
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if ascii == name {
        format!("attachment; filename=\"{name}\"")
    } else {
        format!(
            "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
            encode(&name)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_has_ascii_fallback() {
        assert_eq!(
            content_disposition("b", "dir/Nelson"),
            "attachment; filename=\"Nelson.torrent\""
        );
        assert_eq!(
            content_disposition("b", "dir/ü ß.iso"),
            "attachment; filename=\"_ _.iso.torrent\"; filename*=UTF-8''%C3%BC%20%C3%9F.iso.torrent"
        );
        // Quotes never reach the header: names are file-system safe first.
        assert_eq!(
            content_disposition("b", "a\"b"),
            "attachment; filename=\"a_b.torrent\""
        );
    }

    fn torrent(file_tree: bool, v1: bool) -> Torrent {
        let mut info = crate::torrent::Info::fixture();
        if !v1 {
            info.pieces.clear();
        }
        info.file_tree = file_tree.then(|| crate::torrent::FileTree {
            pieces_root: [7; 32],
            piece_layer: Vec::new(),
        });
        Torrent::new(info, Default::default(), None)
    }

    #[test]
    fn magnet_topics_follow_the_format() {
        let v1 = torrent(false, true);
        let m = magnet_link(&v1, &[], None);
        assert!(
            m.starts_with(&format!(
                "magnet:?xt=urn:btih:{}&dn=a.bin",
                hex::encode(v1.info_hash)
            )),
            "{m}"
        );
        assert!(!m.contains("btmh"), "{m}");

        let hybrid = torrent(true, true);
        let v2 = hex::encode(hybrid.info_hash_v2.unwrap());
        let m = magnet_link(&hybrid, &[], Some("127.0.0.1:6881".into()));
        assert!(
            m.contains("xt=urn:btih:") && m.contains(&format!("&xt=urn:btmh:1220{v2}&")),
            "{m}"
        );

        let only = torrent(true, false);
        let m = magnet_link(&only, &[], None);
        assert!(
            m.starts_with("magnet:?xt=urn:btmh:1220") && !m.contains("btih"),
            "{m}"
        );
    }

    #[test]
    fn swarm_ids_are_the_v1_hash_and_the_truncated_v2_hash() {
        let hybrid = torrent(true, true);
        let v2 = hybrid.info_hash_v2.unwrap();
        assert_eq!(
            hybrid.swarm_ids(),
            vec![hybrid.info_hash, v2[..20].try_into().unwrap()]
        );
        assert_eq!(
            torrent(false, true).swarm_ids(),
            vec![torrent(false, true).info_hash]
        );
        assert_eq!(torrent(true, false).swarm_ids().len(), 1);
    }

    #[test]
    fn if_none_match_forms() {
        let etag = "\"abc\"";
        assert!(etag_matches("\"abc\"", etag));
        assert!(etag_matches("\"x\", \"abc\"", etag));
        assert!(etag_matches("W/\"abc\"", etag));
        assert!(etag_matches("*", etag));
        assert!(!etag_matches("\"abcd\"", etag));
    }
}
