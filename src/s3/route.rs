//! Request → route: is this a `?torrent` request for an object (and which), something to
//! refuse outright, or ordinary S3 traffic to pass through untouched?

use http::Method;

pub use crate::config::is_bucket_name;
use crate::config::Domain;

use super::error::{Code, S3Error};
use super::object::ObjectRef;
use super::uri::{decode_utf8, query_pairs};

/// S3's own limit on key length, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Torrent(TorrentRequest),
    /// `?torrent&prefix=…` on a bucket: one torrent for every object under the prefix.
    Directory(DirectoryRequest),
    PassThrough,
    Reject(S3Error),
}

/// A directory `?torrent` (`GET` or `HEAD`): the objects of `bucket` under `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryRequest {
    pub bucket: String,
    /// Empty (the whole bucket) or ending in `/`: `prefix=data` and `prefix=data/` both name
    /// the folder `data/`, never `data2/`.
    pub prefix: String,
    pub virtual_hosted: bool,
}

enum Routed {
    Object(TorrentRequest),
    Directory(DirectoryRequest),
}

/// A `?torrent` request (`GET` or `HEAD`: the proxy sends no body for `HEAD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentRequest {
    pub object: ObjectRef,
    /// The bucket came from a virtual-hosted `Host` (SigV2 signs it in front of the path).
    pub virtual_hosted: bool,
}

pub fn route(
    method: &Method,
    path: &str,
    query: Option<&str>,
    host: Option<&str>,
    domains: &[Domain],
) -> Route {
    let Some(query) = query.filter(|q| has_torrent_param(q)) else {
        return Route::PassThrough;
    };
    match route_torrent(method, path, query, host, domains) {
        Ok(Some(Routed::Object(t))) => Route::Torrent(t),
        Ok(Some(Routed::Directory(d))) => Route::Directory(d),
        Ok(None) => Route::PassThrough,
        Err(e) => Route::Reject(e),
    }
}

/// Cheap pre-check on the hot path: only requests naming the `torrent` subresource go on to
/// full parsing. `?torrents` and `?x=torrent` are not it.
fn has_torrent_param(query: &str) -> bool {
    query.split('&').any(|p| {
        let name = p.split_once('=').map_or(p, |(n, _)| n);
        name == "torrent" || (name.contains('%') && decode_utf8(name).is_ok_and(|n| n == "torrent"))
    })
}

fn route_torrent(
    method: &Method,
    path: &str,
    query: &str,
    host: Option<&str>,
    domains: &[Domain],
) -> Result<Option<Routed>, S3Error> {
    match *method {
        Method::GET | Method::HEAD => {}
        // CORS preflight is harmless and belongs to the backend.
        Method::OPTIONS => return Ok(None),
        _ => return Err(S3Error::method_not_allowed()),
    }
    let params = query_pairs(query).map_err(|_| S3Error::invalid_uri())?;
    if params.iter().filter(|(n, _)| n == "torrent").count() > 1 {
        return Err(S3Error::new(
            Code::InvalidArgument,
            "The torrent subresource was given more than once.",
        ));
    }
    let version_id = params
        .iter()
        .find(|(n, _)| n == "versionId")
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty());

    let (bucket, key, vhost) = bucket_and_key(path, host, domains)?;
    if bucket.is_empty() {
        return Err(S3Error::invalid_request(
            "The torrent subresource applies to an object, or to a bucket with a prefix: name a bucket.",
        ));
    }
    if key.is_empty() {
        let prefix = params.iter().find(|(n, _)| n == "prefix").map(|(_, v)| v);
        let prefix = prefix.ok_or_else(|| {
            S3Error::invalid_request(
                "The torrent subresource applies to an object, or to a bucket with a prefix (?torrent&prefix=folder/).",
            )
        })?;
        return Ok(Some(Routed::Directory(directory(bucket, prefix, vhost)?)));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(S3Error::new(Code::KeyTooLongError, "Your key is too long"));
    }
    Ok(Some(Routed::Object(TorrentRequest {
        object: ObjectRef {
            bucket,
            key,
            version_id,
        },
        virtual_hosted: vhost,
    })))
}

fn directory(bucket: String, prefix: &str, vhost: bool) -> Result<DirectoryRequest, S3Error> {
    if prefix.len() > MAX_KEY_BYTES {
        return Err(S3Error::new(
            Code::KeyTooLongError,
            "Your prefix is too long",
        ));
    }
    let mut prefix = prefix.to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    // The folder's last segment names the torrent; an empty one names nothing.
    if prefix.starts_with('/') || prefix.contains("//") {
        return Err(S3Error::invalid_request(format!(
            "The prefix {prefix:?} has an empty segment: a directory torrent is named by the prefix's last segment."
        )));
    }
    Ok(DirectoryRequest {
        bucket,
        prefix,
        virtual_hosted: vhost,
    })
}

/// The bucket and key a request names (either may be empty), decoded, and whether the
/// bucket came from a virtual-hosted `Host`.
pub fn bucket_and_key(
    path: &str,
    host: Option<&str>,
    domains: &[Domain],
) -> Result<(String, String, bool), S3Error> {
    let raw_path = path.strip_prefix('/').ok_or_else(S3Error::invalid_uri)?;
    let vhost = virtual_host_bucket(host, domains);
    let (raw_bucket, raw_key) = match vhost {
        Some(bucket) => (bucket, raw_path),
        None => raw_path.split_once('/').unwrap_or((raw_path, "")),
    };
    let bucket = decode_utf8(raw_bucket).map_err(|_| S3Error::invalid_uri())?;
    let key = decode_utf8(raw_key).map_err(|_| S3Error::invalid_uri())?;
    Ok((bucket, key, vhost.is_some()))
}

/// The bucket a request names, decoded, without decoding its key (a check every request
/// pays for).
pub fn bucket_of(path: &str, host: Option<&str>, domains: &[Domain]) -> Option<String> {
    let raw = match virtual_host_bucket(host, domains) {
        Some(bucket) => bucket,
        None => path.strip_prefix('/')?.split('/').next()?,
    };
    decode_utf8(raw).ok()
}

/// Whether `Host` names a bucket under one of the configured base domains.
pub fn is_virtual_hosted(host: Option<&str>, domains: &[Domain]) -> bool {
    virtual_host_bucket(host, domains).is_some()
}

/// `Host: {bucket}.{domain}` → `bucket`, for one of the configured base domains.
fn virtual_host_bucket<'a>(host: Option<&'a str>, domains: &[Domain]) -> Option<&'a str> {
    let host = strip_port(host?);
    domains.iter().find_map(|Domain(d)| {
        // `get` rather than indexing: a non-ASCII host must not split a character.
        let n = host.len().checked_sub(d.len() + 1).filter(|&n| n > 0)?;
        let (prefix, tail) = (host.get(..n)?, host.get(n..)?);
        (tail.starts_with('.') && tail[1..].eq_ignore_ascii_case(d)).then_some(prefix)
    })
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains() -> Vec<Domain> {
        vec![Domain("s3.example.com".into())]
    }

    fn r(method: Method, path: &str, query: Option<&str>, host: &str) -> Route {
        route(&method, path, query, Some(host), &domains())
    }

    fn torrent(bucket: &str, key: &str, version: Option<&str>) -> Route {
        torrent_in(bucket, key, version, false)
    }

    fn torrent_in(bucket: &str, key: &str, version: Option<&str>, vhost: bool) -> Route {
        Route::Torrent(TorrentRequest {
            object: ObjectRef {
                bucket: bucket.into(),
                key: key.into(),
                version_id: version.map(Into::into),
            },
            virtual_hosted: vhost,
        })
    }

    #[test]
    fn the_bucket_alone_is_read_as_bucket_and_key_read_it() {
        let d = domains();
        for (path, host) in [
            ("/%73tore/a%2Fb", "x"),
            ("/store", "x"),
            ("/k/ey", "store.s3.example.com"),
        ] {
            let whole = bucket_and_key(path, Some(host), &d).unwrap().0;
            assert_eq!(
                bucket_of(path, Some(host), &d).as_deref(),
                Some(whole.as_str())
            );
            assert_eq!(whole, "store", "{path} {host}");
        }
        assert_eq!(bucket_of("/", Some("x"), &d).as_deref(), Some(""));
        assert_eq!(bucket_of("/%ff/k", Some("x"), &d), None);
    }

    #[test]
    fn path_style_forms() {
        for q in [
            "torrent",
            "torrent=",
            "versionId=v1&torrent",
            "torrent&versionId=v1",
            "%74orrent",
        ] {
            let v = q.contains("versionId").then_some("v1");
            assert_eq!(
                r(Method::GET, "/b/dir/k.iso", Some(q), "127.0.0.1:8080"),
                torrent("b", "dir/k.iso", v),
                "{q}"
            );
        }
    }

    #[test]
    fn virtual_hosted_forms() {
        assert_eq!(
            r(
                Method::GET,
                "/dir/k",
                Some("torrent"),
                "my.bucket.s3.example.com:8080"
            ),
            torrent_in("my.bucket", "dir/k", None, true)
        );
        assert_eq!(
            r(Method::GET, "/dir/k", Some("torrent"), "B.S3.EXAMPLE.COM"),
            torrent_in("B", "dir/k", None, true)
        );
        // The base domain itself is path-style.
        assert_eq!(
            r(Method::GET, "/b/k", Some("torrent"), "s3.example.com"),
            torrent("b", "k", None)
        );
        // A look-alike domain is not ours.
        assert_eq!(
            r(Method::GET, "/b/k", Some("torrent"), "x.evils3.example.com"),
            torrent("b", "k", None)
        );
    }

    #[test]
    fn keys_decode_as_s3_does() {
        let cases = [
            ("/b/a%20b+c", "a b+c"),
            ("/b/a%2Fb", "a/b"),
            ("/b/%C3%BC%E6%97%A5", "ü日"),
            ("/b/100%25", "100%"),
            ("/b//lead", "/lead"),
            ("/b/a/../c", "a/../c"),
        ];
        for (path, key) in cases {
            assert_eq!(
                r(Method::GET, path, Some("torrent"), "h"),
                torrent("b", key, None)
            );
        }
    }

    #[test]
    fn not_torrent_passes_through() {
        for q in [
            None,
            Some("torrents"),
            Some("x=torrent"),
            Some("torrentx="),
            Some(""),
        ] {
            assert_eq!(r(Method::GET, "/b/k", q, "h"), Route::PassThrough, "{q:?}");
        }
        assert_eq!(
            r(Method::OPTIONS, "/b/k", Some("torrent"), "h"),
            Route::PassThrough
        );
    }

    fn directory(bucket: &str, prefix: &str, vhost: bool) -> Route {
        Route::Directory(DirectoryRequest {
            bucket: bucket.into(),
            prefix: prefix.into(),
            virtual_hosted: vhost,
        })
    }

    #[test]
    fn a_bucket_with_a_prefix_is_a_directory() {
        for (path, query, prefix) in [
            ("/b/", "torrent&prefix=data/set", "data/set/"),
            ("/b", "prefix=data%2Fset%2F&torrent", "data/set/"),
            ("/b/", "torrent&prefix=", ""),
            ("/b", "torrent&prefix=%C3%BC", "ü/"),
        ] {
            assert_eq!(
                r(Method::GET, path, Some(query), "h"),
                directory("b", prefix, false),
                "{path}?{query}"
            );
        }
        assert_eq!(
            r(
                Method::HEAD,
                "/",
                Some("torrent&prefix=x"),
                "b.s3.example.com"
            ),
            directory("b", "x/", true)
        );
        // A key with a prefix parameter is still the object.
        assert_eq!(
            r(Method::GET, "/b/k", Some("torrent&prefix=x"), "h"),
            torrent("b", "k", None)
        );
        // Listing a bucket with a prefix is not ours.
        assert_eq!(
            r(Method::GET, "/b", Some("list-type=2&prefix=x"), "h"),
            Route::PassThrough
        );
    }

    #[test]
    fn head_is_a_torrent_request() {
        assert_eq!(
            r(Method::HEAD, "/b/k", Some("torrent"), "h"),
            torrent("b", "k", None)
        );
    }

    fn code(route: Route) -> (u16, &'static str) {
        match route {
            Route::Reject(e) => (e.status, e.code.as_str()),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn rejections() {
        for m in [Method::PUT, Method::POST, Method::DELETE, Method::PATCH] {
            assert_eq!(
                code(r(m, "/b/k", Some("torrent"), "h")),
                (405, "MethodNotAllowed")
            );
        }
        assert_eq!(code(r(Method::GET, "/b", Some("torrent"), "h")).0, 400);
        assert_eq!(code(r(Method::GET, "/b/", Some("torrent"), "h")).0, 400);
        assert_eq!(
            code(r(Method::GET, "/", Some("torrent&prefix=a"), "h")).0,
            400
        );
        for bad in ["/", "a//b", "/a", "a//"] {
            let q = format!("torrent&prefix={bad}");
            assert_eq!(code(r(Method::GET, "/b", Some(&q), "h")).0, 400, "{bad}");
        }
        let long = format!("torrent&prefix={}", "p".repeat(1025));
        assert_eq!(
            code(r(Method::GET, "/b/", Some(&long), "h")),
            (400, "KeyTooLongError")
        );
        assert_eq!(
            code(r(Method::GET, "/", Some("torrent"), "b.s3.example.com")).0,
            400
        );
        assert_eq!(
            code(r(Method::GET, "/b/%zz", Some("torrent"), "h")),
            (400, "InvalidURI")
        );
        assert_eq!(
            code(r(Method::GET, "/b/%FF", Some("torrent"), "h")),
            (400, "InvalidURI")
        );
        assert_eq!(
            code(r(Method::GET, "/b/k", Some("torrent&torrent"), "h")),
            (400, "InvalidArgument")
        );
        let long = format!("/b/{}", "k".repeat(1025));
        assert_eq!(
            code(r(Method::GET, &long, Some("torrent"), "h")),
            (400, "KeyTooLongError")
        );
        let ok = format!("/b/{}", "k".repeat(1024));
        assert!(matches!(
            r(Method::GET, &ok, Some("torrent"), "h"),
            Route::Torrent(_)
        ));
    }

    #[test]
    fn non_ascii_hosts_do_not_split_characters() {
        // Found by the `route` fuzz target.
        let host = "b.s3.example\u{6dc}\u{410}\u{4d2}";
        // Not under the base domain: path-style, and `/k` names a bucket without a key.
        let r = route(&Method::GET, "/k", Some("torrent"), Some(host), &domains());
        assert_eq!(code(r), (400, "InvalidRequest"));
        let host = "\u{6dc}\u{410}.s3.example.com";
        let r = route(&Method::GET, "/k", Some("torrent"), Some(host), &domains());
        assert!(matches!(r, Route::Torrent(t) if t.object.bucket == "\u{6dc}\u{410}"));
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("a.b"), "a.b");
    }
}
