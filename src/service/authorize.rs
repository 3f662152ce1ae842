//! Who may get a torrent: the backend decides, asked as the caller (an unsigned HEAD for
//! anonymous callers, a HEAD re-signed with the caller's own key otherwise). Never the
//! sidecar's credentials. A successful probe also yields the facts the torrent is built on
//! (ETag, length, Last-Modified).

use crate::s3::error::parse_upstream_error;
use crate::s3::forwarded::Forwarded;
use crate::s3::sigv4::Caller;
use crate::s3::upstream::{Identity, Purpose, Upstream, UpstreamResponse};
use crate::s3::{Code, ObjectRef, S3Error};

use super::object_facts::ObjectFacts;
use super::probe_cache::{ProbeCache, ProbeKey};

pub struct Authorizer<'a> {
    pub upstream: &'a Upstream,
    pub probes: &'a ProbeCache,
}

impl Authorizer<'_> {
    /// READ check: the backend decides, asked as this caller (anonymous stays anonymous;
    /// a verified caller is re-signed with their own key). Never the sidecar's credentials.
    pub async fn authorize(
        &self,
        object: &ObjectRef,
        caller: &Caller,
        forwarded: &Forwarded,
    ) -> Result<ObjectFacts, S3Error> {
        let identity = match caller {
            Caller::Anonymous => Identity::Anonymous,
            Caller::Signed {
                access_key_id,
                secret_access_key,
            } => Identity::Caller {
                access_key_id,
                secret_access_key: secret_access_key.expose(),
            },
        };
        let probe_key = ProbeKey::new(object, caller, forwarded);
        let now = std::time::Instant::now();
        if let Some(facts) = self.probes.get(&probe_key, now) {
            return Ok(facts);
        }
        let headers = forwarded.pairs();
        let head = self
            .upstream
            .send(Purpose::Probe, "HEAD", object, &identity, &headers)
            .await?;
        if head.status() != 200 {
            let status = head.status();
            head.finish().await;
            return Err(self
                .explain_refusal(status, object, &identity, &headers)
                .await);
        }
        let facts = facts_from(&head);
        head.finish().await;
        if let Ok(f) = &facts {
            self.probes.put(probe_key, f.clone(), now);
        }
        facts
    }

    /// A refused HEAD has no body to say why; repeat it as a one-byte GET to learn the
    /// backend's error code (`NoSuchKey` vs `NoSuchBucket`, ...), and pass that on.
    async fn explain_refusal(
        &self,
        head_status: u16,
        object: &ObjectRef,
        identity: &Identity<'_>,
        headers: &[(&str, &str)],
    ) -> S3Error {
        if head_status >= 500 {
            return S3Error::service_unavailable(format!(
                "The backend answered {head_status}. Please retry."
            ));
        }
        let mut with_range = headers.to_vec();
        with_range.push(("range", "bytes=0-0"));
        let detail = match self
            .upstream
            .send(Purpose::Explain, "GET", object, identity, &with_range)
            .await
        {
            Ok(resp) if resp.status() == head_status => {
                parse_upstream_error(&resp.small_body(64 * 1024).await)
            }
            Ok(resp) => {
                resp.finish().await;
                None
            }
            Err(_) => None,
        };
        if head_status == 400 && detail.as_ref().is_some_and(|(_, m)| mentions_sse_c(m)) {
            return sse_c_error();
        }
        // A code we do not know is named by the status, never by a guess.
        let code = detail
            .as_ref()
            .and_then(|(code, _)| Code::parse(code))
            .unwrap_or_else(|| Code::for_status(head_status));
        let message = match detail {
            Some((_, message)) if !message.is_empty() => message,
            _ if code == Code::InvalidRequest => {
                format!("The backend refused the request ({head_status}).")
            }
            _ => code.default_message().to_string(),
        };
        S3Error::new(code, message).with_status(head_status)
    }
}

fn facts_from(head: &UpstreamResponse<'_>) -> Result<ObjectFacts, S3Error> {
    if head
        .header_str("x-amz-server-side-encryption-customer-algorithm")
        .is_some()
    {
        return Err(sse_c_error());
    }
    let etag = head
        .header_str("etag")
        .filter(|e| !e.is_empty())
        .ok_or_else(|| S3Error::upstream_broke("The backend did not report the object's ETag."))?;
    let length = head
        .header_str("content-length")
        .and_then(|l| l.parse::<u64>().ok())
        .ok_or_else(|| {
            S3Error::upstream_broke("The backend did not report the object's length.")
        })?;
    Ok(ObjectFacts {
        etag: etag.to_string(),
        length,
        last_modified: head.header_str("last-modified").map(str::to_string),
        request_charged: head.header_str("x-amz-request-charged") == Some("requester"),
    })
}

fn sse_c_error() -> S3Error {
    S3Error::invalid_request(
        "Torrent creation is not supported for objects encrypted with a customer-provided key (SSE-C): the sidecar cannot read them.",
    )
}

/// S3 refuses a HEAD of an SSE-C object without the key (400); its GET error says why.
fn mentions_sse_c(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("customer") || m.contains("server side encryption")
}
