//! Requests exactly as a test means them: a minimal HTTP/1.1 client, and SigV4 headers
//! signed by `aws-sigv4`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

/// The servers (by port) that sign for a region other than `us-east-1`: Garage and the
/// sidecars in front of it. Every client here signs for the region of the port it talks to.
static REGIONS: Mutex<Vec<(u16, &'static str)>> = Mutex::new(Vec::new());

pub fn register_region(port: u16, region: &'static str) {
    if region != "us-east-1" {
        REGIONS.lock().unwrap().push((port, region));
    }
}

/// The region to sign for at `authority` (`host:port`, or a URL naming one).
pub fn region_of(authority: &str) -> &'static str {
    let rest = authority.split_once("://").map_or(authority, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    let port = host
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok());
    REGIONS
        .lock()
        .unwrap()
        .iter()
        .find(|(p, _)| Some(*p) == port)
        .map_or("us-east-1", |(_, r)| r)
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `<Code>` of an S3 XML error body.
    pub fn s3_code(&self) -> Option<String> {
        let t = self.text();
        let start = t.find("<Code>")? + 6;
        let end = t[start..].find("</Code>")? + start;
        Some(t[start..end].to_string())
    }
}

/// A minimal HTTP/1.1 client: sends exactly the bytes asked for (any method, target and
/// Host), reads the response up to Content-Length or close. Tests need that precision for
/// raw targets such as `/b/a%2Fb?torrent` that higher-level clients would rewrite.
pub fn request(port: u16, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    request_with_body(port, method, target, headers, &[])
}

/// As [`request`], sending `body` with a matching `Content-Length` when it is not empty.
pub fn request_with_body(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let has_host = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host"));
    let mut req = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
    if !has_host {
        req.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = &raw[split + 4..];
    Response {
        status,
        body: if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        },
        headers,
    }
}

/// Decodes a `Transfer-Encoding: chunked` body (SeaweedFS's metrics come so; a chunk
/// boundary can fall inside a metric line).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return body;
        };
        let size_line = String::from_utf8_lossy(&raw[..eol]);
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).expect("a chunk size");
        raw = &raw[eol + 2..];
        if size == 0 || raw.len() < size {
            body.extend_from_slice(&raw[..size.min(raw.len())]);
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or_default();
    }
}

/// Owned headers (as the signing helpers return them) as the pairs [`request`] takes.
pub fn header_refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Headers for a request signed with SigV4 by `aws-sigv4` as `creds`, for `host` and `target`
/// (path and query, already encoded), with the body's SHA-256 (empty body by default).
pub fn signed_headers(
    creds: (&str, &str),
    method: &str,
    host: &str,
    target: &str,
    payload_hash: Option<&str>,
    time: std::time::SystemTime,
) -> Vec<(String, String)> {
    signed_headers_with(creds, method, host, target, payload_hash, &[], time)
}

/// As [`signed_headers`], with `extra` headers covered by the signature too.
pub fn signed_headers_with(
    (ak, sk): (&str, &str),
    method: &str,
    host: &str,
    target: &str,
    payload_hash: Option<&str>,
    extra: &[(&str, &str)],
    time: std::time::SystemTime,
) -> Vec<(String, String)> {
    let hash = payload_hash.unwrap_or(s3torrent::s3::sigv4::EMPTY_SHA256);
    let mut headers = vec![
        ("host".to_string(), host.to_string()),
        ("x-amz-content-sha256".to_string(), hash.to_string()),
    ];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let key = s3torrent::s3::sigv4::SigningKey {
        access_key_id: ak,
        secret_access_key: sk,
        region: region_of(host),
    };
    let url = format!("http://{host}{target}");
    let mut all = headers.clone();
    all.extend(
        s3torrent::s3::sigv4::sign_headers_with_payload(&key, method, &url, &headers, hash, time)
            .unwrap(),
    );
    all
}
