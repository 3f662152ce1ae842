//! The public web seed (BEP 19) on a route of the sidecar's own:
//! `GET /_s3torrent/webseed/{bucket}/{key}[?versionId=…]`, which no S3 request can name
//! (no bucket begins with `_`; on a virtual-hosted `Host` it is an ordinary key and passes
//! through). Torrents with `webseed = "public"` name it, so the sidecar knows for certain
//! which requests are web-seed requests, and only those are shaped (see the seeder):
//! ordinary S3 reads, ranged or not, signed or not, always get the backend's own answer.
//!
//! A web-seed request is proxied as an *unsigned* `GET` (or `HEAD`) of the object: the
//! backend's anonymous policy decides, as for any public URL. Only `Range` and the
//! conditional headers travel; nothing else of the caller's does.

use http::Method;
use pingora::http::RequestHeader;

use crate::config::{Endpoint, DIRECTORY_ROUTE, WEBSEED_PATH};
use crate::s3::route::{is_bucket_name, MAX_KEY_BYTES};
use crate::s3::uri::{decode_utf8, query_pairs};
use crate::s3::{ObjectRef, S3Error};

/// The headers of a web-seed request that reach the backend.
const FORWARDED: [&str; 6] = [
    "range",
    "if-range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebseedRequest {
    pub object: ObjectRef,
    /// Named as a file of a renamed directory (`_dir/{bucket}/{identity}/{name}/{path}`):
    /// `object` is only known once the catalog has looked the path up.
    pub in_directory: Option<DirectoryFile>,
    /// The bytes asked for, `first..=last` (`last` = `u64::MAX` when open-ended or whole).
    pub first: u64,
    pub last: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryFile {
    pub identity: String,
    /// `{name}/{path}`, decoded.
    pub path: String,
}

/// The web-seed request this is, if it names the route; `Err` for a malformed one.
pub fn parse(req: &RequestHeader, virtual_hosted: bool) -> Option<Result<WebseedRequest, S3Error>> {
    let rest = req.uri.path().strip_prefix(WEBSEED_PATH)?;
    if virtual_hosted {
        return None;
    }
    Some(parse_route(req, rest))
}

fn parse_route(req: &RequestHeader, rest: &str) -> Result<WebseedRequest, S3Error> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(S3Error::method_not_allowed());
    }
    // The request is rebuilt for the backend without a body: one must not follow it.
    let has_body = req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|l| l.as_bytes() != b"0");
    if has_body {
        return Err(S3Error::invalid_request("A web-seed request has no body."));
    }
    let not_an_object = || {
        S3Error::invalid_request(
            "A web-seed URL names an object: /_s3torrent/webseed/{bucket}/{key}.",
        )
    };
    let (raw_bucket, raw_key) = rest.split_once('/').ok_or_else(not_an_object)?;
    let (raw_bucket, raw_key, in_directory) = match raw_bucket == DIRECTORY_ROUTE {
        true => directory_file(raw_key)?,
        false => (raw_bucket, raw_key, None),
    };
    let bucket = decode_utf8(raw_bucket).map_err(|_| S3Error::invalid_uri())?;
    let key = decode_utf8(raw_key).map_err(|_| S3Error::invalid_uri())?;
    if !is_bucket_name(&bucket) || key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(not_an_object());
    }
    let in_directory = in_directory.map(|identity| DirectoryFile {
        identity,
        path: key.clone(),
    });
    let query = query_pairs(req.uri.query().unwrap_or("")).map_err(|_| S3Error::invalid_uri())?;
    let version_id = query
        .into_iter()
        .find(|(n, _)| n == "versionId")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty());
    let range = req
        .headers
        .get(http::header::RANGE)
        .and_then(|r| r.to_str().ok());
    let (first, last) = range.and_then(single_range).unwrap_or((0, u64::MAX));
    Ok(WebseedRequest {
        object: ObjectRef {
            bucket,
            key,
            version_id,
        },
        in_directory,
        first,
        last,
    })
}

/// `{bucket}/{identity}/{name}/{path}` (after `_dir/`) → bucket, `{name}/{path}`, identity.
fn directory_file(rest: &str) -> Result<(&str, &str, Option<String>), S3Error> {
    let bad = || {
        S3Error::invalid_request(
            "A directory web-seed URL names a file: /_s3torrent/webseed/_dir/{bucket}/{identity}/{name}/{path}.",
        )
    };
    let mut parts = rest.splitn(3, '/');
    let (bucket, identity, path) = match (parts.next(), parts.next(), parts.next()) {
        (Some(b), Some(i), Some(p)) => (b, i, p),
        _ => return Err(bad()),
    };
    let hex = identity.len() == 64
        && identity
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !hex || !path.contains('/') {
        return Err(bad());
    }
    Ok((bucket, path, Some(identity.to_string())))
}

impl WebseedRequest {
    /// The request the backend gets: the object, path-style, unsigned, with the caller's
    /// range and conditions and nothing else.
    pub fn upstream_request(
        &self,
        downstream: &RequestHeader,
        endpoint: &Endpoint,
    ) -> pingora::Result<RequestHeader> {
        let target = self.object.path_and_query();
        let mut up = RequestHeader::build(downstream.method.clone(), target.as_bytes(), None)?;
        up.insert_header(http::header::HOST, endpoint.authority())?;
        for name in FORWARDED {
            if let Some(v) = downstream.headers.get(name) {
                up.insert_header(name, v.clone())?;
            }
        }
        Ok(up)
    }
}

/// `bytes=a-b` or `bytes=a-` (what web-seed clients send) → `(a, b)`; anything else (no
/// range, several, a suffix) is treated as the whole object.
fn single_range(value: &str) -> Option<(u64, u64)> {
    let (a, b) = value.strip_prefix("bytes=")?.split_once('-')?;
    let first = a.trim().parse().ok()?;
    let last = match b.trim() {
        "" => u64::MAX,
        b => b.parse().ok()?,
    };
    (first <= last).then_some((first, last))
}

/// Where a `206`'s bytes start (`Content-Range: bytes a-b/n`); a `200` starts at 0.
pub fn delivered_from(status: u16, content_range: Option<&str>) -> Option<u64> {
    match status {
        200 => Some(0),
        206 => content_range?
            .strip_prefix("bytes ")?
            .split_once('-')?
            .0
            .trim()
            .parse()
            .ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, target: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, target.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.insert_header(k.to_string(), v.to_string()).unwrap();
        }
        r
    }

    #[test]
    fn routes_name_an_object_and_its_range() {
        let r = req(
            "GET",
            "/_s3torrent/webseed/b-1/dir/a%20b+c?versionId=v%2B1&x=y",
            &[("range", "bytes=16384-")],
        );
        let w = parse(&r, false).unwrap().unwrap();
        assert_eq!(w.object.bucket, "b-1");
        assert_eq!(w.object.key, "dir/a b+c");
        assert_eq!(w.object.version_id.as_deref(), Some("v+1"));
        assert_eq!((w.first, w.last), (16384, u64::MAX));
        let endpoint = Endpoint::try_from("http://127.0.0.1:9000".to_string()).unwrap();
        let up = w
            .upstream_request(
                &req(
                    "GET",
                    "/x",
                    &[
                        ("range", "bytes=0-9"),
                        ("authorization", "AWS k:s"),
                        ("cookie", "c"),
                    ],
                ),
                &endpoint,
            )
            .unwrap();
        assert_eq!(up.uri.to_string(), "/b-1/dir/a%20b%2Bc?versionId=v%2B1");
        assert_eq!(up.headers["host"], "127.0.0.1:9000");
        assert_eq!(up.headers["range"], "bytes=0-9");
        assert!(up.headers.get("authorization").is_none() && up.headers.get("cookie").is_none());
    }

    #[test]
    fn other_requests_are_not_web_seed_requests_or_are_refused() {
        assert!(parse(&req("GET", "/b/_s3torrent/webseed/b/k", &[]), false).is_none());
        let vhost = req("GET", "/_s3torrent/webseed/b/k", &[]);
        assert!(
            parse(&vhost, true).is_none(),
            "a key on a virtual-hosted bucket"
        );
        for (method, target, headers) in [
            ("PUT", "/_s3torrent/webseed/b-1/k", vec![]),
            ("GET", "/_s3torrent/webseed/b-1", vec![]),
            ("GET", "/_s3torrent/webseed/B_1/k", vec![]),
            ("GET", "/_s3torrent/webseed/b-1/", vec![]),
            (
                "GET",
                "/_s3torrent/webseed/b-1/k",
                vec![("content-length", "5")],
            ),
        ] {
            let r = req(method, target, &headers);
            assert!(parse(&r, false).unwrap().is_err(), "{method} {target}");
        }
        let whole = parse(
            &req("GET", "/_s3torrent/webseed/b-1/k", &[("range", "bytes=-5")]),
            false,
        );
        let whole = whole.unwrap().unwrap();
        assert_eq!((whole.first, whole.last), (0, u64::MAX));
    }

    #[test]
    fn delivered_bytes_start_where_the_backend_says() {
        assert_eq!(delivered_from(206, Some("bytes 100-199/1000")), Some(100));
        assert_eq!(delivered_from(200, None), Some(0));
        assert_eq!(delivered_from(206, None), None);
        assert_eq!(delivered_from(403, None), None);
    }
}
