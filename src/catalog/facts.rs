//! What the backend says an object is: the one-byte `GET` (`Range: bytes=0-0`) a torrent's
//! facts come from — as a caller for the READ check, as the sidecar for `warm` and uploads —
//! and the facts it yields: ETag, length, Last-Modified, version.
//!
//! A `GET` of one byte, not a `HEAD`: piece hashes describe the content, so the question
//! must be "may this identity read the bytes?", and some backends allow `HEAD` where they
//! refuse `GET` (e.g. SSE-KMS objects without decrypt permission). A refusal comes with the
//! backend's own error document, passed on.

use crate::s3::forwarded::Forwarded;
use crate::s3::upstream::{Identity, Purpose, Upstream, UpstreamResponse};
use crate::s3::{Code, ObjectRef, S3Error};

/// Error documents are small; a larger body is not one.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFacts {
    pub etag: String,
    pub length: u64,
    pub last_modified: Option<String>,
    /// The version the backend served (`x-amz-version-id`), when it keeps versions.
    pub version_id: Option<String>,
    /// The backend charged the caller (request payer): say so in the response.
    pub request_charged: bool,
}

impl ObjectFacts {
    /// The object's facts as the sidecar sees them (`warm`, uploads): the same one-byte
    /// `GET` as a caller's check, so they match what it reports.
    pub async fn of_sidecar(upstream: &Upstream, object: &ObjectRef) -> Result<Self, S3Error> {
        Self::probe(upstream, object, &Identity::Sidecar, &Forwarded::default()).await
    }

    /// The one-byte `GET` as `identity`: the facts, or the backend's refusal as it gave it.
    pub async fn probe(
        upstream: &Upstream,
        object: &ObjectRef,
        identity: &Identity<'_>,
        forwarded: &Forwarded,
    ) -> Result<Self, S3Error> {
        let mut headers = forwarded.probe_pairs();
        headers.push(("range", "bytes=0-0"));
        let probe = upstream
            .send(Purpose::Probe, "GET", object, identity, &headers)
            .await?;
        let facts = match probe.status() {
            200 | 206 | 416 => facts_from(&probe),
            status => {
                let body = probe.small_body(ERROR_BODY_LIMIT).await;
                return Err(refusal(status, &body));
            }
        };
        // Read the one byte so the connection is reused; from a backend that ignored the
        // range, the whole object follows: not read, the connection is dropped.
        match probe.status() {
            200 => probe.finish().await,
            _ => drop(probe.small_body(16).await),
        }
        facts.and_then(|f| served_as_asked(object, f))
    }
}

/// The facts, if they are of the version asked for. A backend that keeps no versions
/// (Garage) ignores `versionId` and serves the current object without a word about
/// versions: a torrent of it would be labelled with a version it never described.
fn served_as_asked(object: &ObjectRef, facts: ObjectFacts) -> Result<ObjectFacts, S3Error> {
    let Some(asked) = object.version_id.as_deref() else {
        return Ok(facts);
    };
    match facts.version_id.as_deref() {
        Some(served) if served == asked => Ok(facts),
        // `null` is the version of an object written while versioning was off.
        None if asked == "null" => Ok(facts),
        None => Err(S3Error::new(
            Code::NotImplemented,
            "The backend ignored versionId: it keeps no object versions, so the version asked for cannot be described.",
        )),
        Some(_) => Err(S3Error::upstream_broke(
            "The backend served another version than the one asked for.",
        )),
    }
}

/// The backend's verdict, with S3's own words for an SSE-C object read without its key.
fn refusal(status: u16, body: &[u8]) -> S3Error {
    let sse_c = status == 400
        && crate::s3::error::parse_upstream_error(body).is_some_and(|(_, m)| mentions_sse_c(&m));
    match sse_c {
        true => sse_c_error(),
        false => S3Error::backend_refusal(status, body),
    }
}

fn facts_from(probe: &UpstreamResponse<'_>) -> Result<ObjectFacts, S3Error> {
    if probe
        .header_str("x-amz-server-side-encryption-customer-algorithm")
        .is_some()
    {
        return Err(sse_c_error());
    }
    let length = object_length(probe).ok_or_else(|| {
        S3Error::upstream_broke("The backend did not report the object's length.")
    })?;
    // An empty object is refused as such later; a 416 for it may carry no ETag.
    let etag = probe
        .header_str("etag")
        .filter(|e| !e.is_empty())
        .or((length == 0).then_some(""))
        .ok_or_else(|| S3Error::upstream_broke("The backend did not report the object's ETag."))?;
    Ok(ObjectFacts {
        etag: etag.to_string(),
        length,
        last_modified: probe.header_str("last-modified").map(str::to_string),
        version_id: probe
            .header_str("x-amz-version-id")
            .filter(|v| !v.is_empty() && *v != "null")
            .map(str::to_string),
        request_charged: probe.header_str("x-amz-request-charged") == Some("requester"),
    })
}

/// The whole object's length: from `Content-Range: bytes 0-0/N` (206), the `Content-Length`
/// of a 200 from a backend that ignored the range, or 0 for a 416 (byte 0 does not exist).
fn object_length(probe: &UpstreamResponse<'_>) -> Option<u64> {
    match probe.status() {
        200 => probe.header_str("content-length")?.parse().ok(),
        416 => Some(0),
        _ => total_of_content_range(probe.header_str("content-range")?),
    }
}

fn total_of_content_range(value: &str) -> Option<u64> {
    value
        .strip_prefix("bytes ")?
        .rsplit_once('/')?
        .1
        .parse()
        .ok()
}

fn sse_c_error() -> S3Error {
    S3Error::invalid_request(
        "Torrent creation is not supported for objects encrypted with a customer-provided key (SSE-C): the sidecar cannot read them.",
    )
}

/// S3 refuses to read an SSE-C object without the key (400), saying why.
fn mentions_sse_c(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    // Garage says only "Object is encrypted".
    m.contains("customer") || m.contains("server side encryption") || m.contains("encrypted")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_totals() {
        assert_eq!(total_of_content_range("bytes 0-0/1234"), Some(1234));
        assert_eq!(total_of_content_range("bytes */0"), Some(0));
        assert_eq!(total_of_content_range("bytes 0-0/*"), None);
        assert_eq!(total_of_content_range("items 0-0/5"), None);
    }

    #[test]
    fn refusals_keep_the_backends_code_and_status() {
        let body = b"<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
        let e = refusal(404, body);
        assert_eq!((e.status, e.code), (404, Code::NoSuchBucket));
        assert_eq!(e.message, "The specified bucket does not exist");
        let e = refusal(
            400,
            b"<Error><Code>SomethingNew</Code><Message>m</Message></Error>",
        );
        assert_eq!((e.status, e.code), (400, Code::InvalidRequest));
        let e = refusal(403, b"");
        assert_eq!((e.status, e.code), (403, Code::AccessDenied));
        assert_eq!(refusal(503, b"").code, Code::ServiceUnavailable);
    }

    #[test]
    fn a_version_asked_for_must_be_the_version_served() {
        let facts = |v: Option<&str>| ObjectFacts {
            etag: "\"e\"".into(),
            length: 1,
            last_modified: None,
            version_id: v.map(str::to_string),
            request_charged: false,
        };
        let object = |v: Option<&str>| ObjectRef {
            bucket: "b".into(),
            key: "k".into(),
            version_id: v.map(str::to_string),
        };
        assert!(served_as_asked(&object(None), facts(Some("v1"))).is_ok());
        assert!(served_as_asked(&object(None), facts(None)).is_ok());
        assert!(served_as_asked(&object(Some("v1")), facts(Some("v1"))).is_ok());
        assert!(served_as_asked(&object(Some("null")), facts(None)).is_ok());
        let ignored = served_as_asked(&object(Some("v1")), facts(None)).unwrap_err();
        assert_eq!((ignored.status, ignored.code), (501, Code::NotImplemented));
        let other = served_as_asked(&object(Some("v1")), facts(Some("v2"))).unwrap_err();
        assert_eq!(other.status, 502);
    }

    #[test]
    fn garage_names_an_sse_c_object_only_as_encrypted() {
        let body = b"<Error><Code>InvalidRequest</Code><Message>Bad request: Object is encrypted</Message></Error>";
        assert!(refusal(400, body).message.contains("SSE-C"));
    }
}
