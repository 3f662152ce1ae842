//! Verifying callers' AWS Signature Version 2, which boto3 still uses for presigned URLs by
//! default: the header form `Authorization: AWS AKID:signature` and the query form
//! `?AWSAccessKeyId=…&Expires=…&Signature=…`. The string to sign is S3's:
//!
//! ```text
//! VERB \n Content-MD5 \n Content-Type \n Date (or Expires) \n
//! CanonicalizedAmzHeaders CanonicalizedResource
//! ```
//!
//! signed with HMAC-SHA1 and compared in constant time. The canonicalized resource is the path
//! as received (with `/bucket` in front for a virtual-hosted request) and the sub-resources
//! (`torrent`, `versionId`, …) sorted by name, written as the client wrote them (`torrent` and
//! `torrent=` differ), values decoded — as botocore signs them.

use std::time::{Duration, SystemTime};

use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::config::Credential;

use super::error::{Code, S3Error};
use super::sigv4::{Caller, SignedRequest, MAX_SKEW};
use super::uri::decode_utf8;

/// Query parameters that are part of the resource a SigV2 signature covers (botocore's list).
const SUB_RESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "retention",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Whether a request carries a SigV2 signature (header or query form).
pub fn is_sigv2(headers: &HeaderMap, query: Option<&str>) -> bool {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS ") && !v.starts_with("AWS4-"));
    let in_query = query.is_some_and(|q| raw_pairs(q).iter().any(|(n, _)| n == "AWSAccessKeyId"));
    header || in_query
}

/// Verifies a SigV2 request; `bucket_in_host` is the bucket of a virtual-hosted request.
pub fn verify(
    credentials: &[Credential],
    now: SystemTime,
    req: &SignedRequest<'_>,
    bucket_in_host: Option<&str>,
) -> Result<Caller, S3Error> {
    let pairs = raw_pairs(req.query.unwrap_or(""));
    let param = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let header = req
        .headers
        .get(http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default());
    let in_query = param("AWSAccessKeyId").is_some();
    let (access_key_id, signature, date_line, valid_until) = match (header, in_query) {
        (Some(_), true) => {
            return Err(S3Error::new(
                Code::InvalidArgument,
                "Only one auth mechanism allowed; only the AWSAccessKeyId query parameter or the Authorization header should be specified",
            ))
        }
        (Some(h), false) => {
            let (akid, sig) = h
                .strip_prefix("AWS ")
                .and_then(|rest| rest.rsplit_once(':'))
                .filter(|(akid, sig)| !akid.is_empty() && !sig.is_empty())
                .ok_or_else(|| {
                    S3Error::new(
                        Code::InvalidArgument,
                        "AWS authorization header is invalid. Expected AwsAccessKeyId:signature",
                    )
                })?;
            let date_line = request_date(req.headers, now)?;
            (akid.to_string(), sig.to_string(), date_line, None)
        }
        (None, _) => {
            let get = |name: &str| {
                param(name).and_then(|v| v.clone()).ok_or_else(|| {
                    S3Error::new(
                        Code::AccessDenied,
                        "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters",
                    )
                })
            };
            let (akid, sig, expires) = (get("AWSAccessKeyId")?, get("Signature")?, get("Expires")?);
            let at: u64 = expires.parse().map_err(|_| {
                S3Error::new(Code::AccessDenied, "Invalid date (should be seconds since epoch)")
            })?;
            let until = SystemTime::UNIX_EPOCH + Duration::from_secs(at);
            if until < now {
                return Err(S3Error::new(Code::AccessDenied, "Request has expired"));
            }
            (akid, sig, expires, Some(until))
        }
    };
    let credential = credentials
        .iter()
        .find(|c| c.access_key_id == access_key_id)
        .ok_or_else(|| S3Error::of(Code::InvalidAccessKeyId))?;
    let string_to_sign = string_to_sign(req, &pairs, &date_line, bucket_in_host);
    let mut mac = Hmac::<Sha1>::new_from_slice(credential.secret_access_key.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(string_to_sign.as_bytes());
    let expected = mac.finalize().into_bytes();
    let given = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .unwrap_or_default();
    if !bool::from(expected.as_slice().ct_eq(&given)) {
        return Err(S3Error::of(Code::SignatureDoesNotMatch));
    }
    Ok(Caller::Signed {
        access_key_id: credential.access_key_id.clone(),
        secret_access_key: credential.secret_access_key.clone(),
        // Every x-amz-* header is in the string to sign.
        signed_headers: req
            .headers
            .keys()
            .map(|k| k.as_str().to_string())
            .filter(|k| k.starts_with("x-amz-"))
            .collect(),
        valid_until,
    })
}

/// The header form's date line: `Date`, or empty when `x-amz-date` stands in for it (it is
/// then signed among the amz headers). Either must be within S3's skew of now.
fn request_date(headers: &HeaderMap, now: SystemTime) -> Result<String, S3Error> {
    let missing = || {
        S3Error::new(
            Code::AccessDenied,
            "AWS authentication requires a valid Date or x-amz-date header",
        )
    };
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (text, line) = match (value("x-amz-date"), value("date")) {
        (Some(amz), _) => (amz, String::new()),
        (None, Some(date)) => (date, date.to_string()),
        (None, None) => return Err(missing()),
    };
    // RFC 1123 with `GMT`, or with the numeric zone `+0000` that AWS's own examples use.
    let text = text.trim();
    let text = text
        .strip_suffix("+0000")
        .map_or(text.to_string(), |t| format!("{t}GMT"));
    let at = httpdate::parse_http_date(&text).map_err(|_| missing())?;
    let skew = at
        .duration_since(now)
        .or_else(|_| now.duration_since(at))
        .unwrap_or_default();
    if skew > MAX_SKEW {
        return Err(S3Error::new(
            Code::RequestTimeTooSkewed,
            "The difference between the request time and the current time is too large.",
        ));
    }
    Ok(line)
}

fn string_to_sign(
    req: &SignedRequest<'_>,
    pairs: &[(String, Option<String>)],
    date_line: &str,
    bucket_in_host: Option<&str>,
) -> String {
    let header = |name: &str| {
        req.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
            .unwrap_or_default()
    };
    format!(
        "{}\n{}\n{}\n{}\n{}{}",
        req.method,
        header("content-md5"),
        header("content-type"),
        date_line,
        amz_headers(req.headers),
        resource(req.path, pairs, bucket_in_host),
    )
}

/// `name:value\n` for every `x-amz-*` header, names lower-case and sorted, repeated values
/// joined by `,`, folded whitespace unfolded.
fn amz_headers(headers: &HeaderMap) -> String {
    let mut names: Vec<&str> = headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| k.starts_with("x-amz-"))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .iter()
        .map(|name| {
            let values: Vec<String> = headers
                .get_all(*name)
                .iter()
                .map(|v| {
                    let v = String::from_utf8_lossy(v.as_bytes());
                    v.split(['\r', '\n'])
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            format!("{name}:{}\n", values.join(","))
        })
        .collect()
}

fn resource(
    path: &str,
    pairs: &[(String, Option<String>)],
    bucket_in_host: Option<&str>,
) -> String {
    let mut out = String::new();
    if let Some(bucket) = bucket_in_host {
        out.push('/');
        out.push_str(bucket);
    }
    out.push_str(if path.is_empty() { "/" } else { path });
    let mut subs: Vec<&(String, Option<String>)> = pairs
        .iter()
        .filter(|(n, _)| SUB_RESOURCES.contains(&n.as_str()))
        .collect();
    subs.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (name, value)) in subs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(name);
        if let Some(v) = value {
            out.push('=');
            out.push_str(v);
        }
    }
    out
}

/// Query parameters, decoded, keeping whether a value was written (`torrent` vs `torrent=`).
fn raw_pairs(query: &str) -> Vec<(String, Option<String>)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            };
            let decode = |s: &str| decode_utf8(s).unwrap_or_else(|_| s.to_string());
            (decode(name), value.map(decode))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's S3 documentation example (GET, header form): "Object GET" with
    /// `Authorization: AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=` under the
    /// documented secret and date.
    #[test]
    fn aws_documentation_example_verifies() {
        let creds = [Credential::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )];
        let mut headers = HeaderMap::new();
        headers.insert(
            "host",
            "awsexamplebucket1.s3.us-west-1.amazonaws.com"
                .parse()
                .unwrap(),
        );
        headers.insert("date", "Tue, 27 Mar 2007 19:36:42 +0000".parse().unwrap());
        headers.insert(
            "authorization",
            "AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g="
                .parse()
                .unwrap(),
        );
        let req = SignedRequest {
            method: "GET",
            path: "/photos/puppy.jpg",
            query: None,
            headers: &headers,
        };
        let now = httpdate::parse_http_date("Tue, 27 Mar 2007 19:40:00 GMT").unwrap();
        let caller = verify(&creds, now, &req, Some("awsexamplebucket1"));
        assert!(matches!(caller, Ok(Caller::Signed { .. })), "{caller:?}");
        // The same signature for another key, or an hour later, does not verify.
        let other = SignedRequest {
            path: "/photos/kitten.jpg",
            ..req
        };
        let e = verify(&creds, now, &other, Some("awsexamplebucket1")).unwrap_err();
        assert_eq!(e.code, Code::SignatureDoesNotMatch);
        let late = now + Duration::from_secs(3600);
        let e = verify(&creds, late, &req, Some("awsexamplebucket1")).unwrap_err();
        assert_eq!(e.code, Code::RequestTimeTooSkewed);
    }

    #[test]
    fn resources_keep_sub_resources_sorted_and_as_written() {
        let pairs = raw_pairs("versionId=a%2Bb&torrent&x-id=GetObject&AWSAccessKeyId=K");
        assert_eq!(
            resource("/b/k%20x", &pairs, None),
            "/b/k%20x?torrent&versionId=a+b"
        );
        assert_eq!(
            resource("/k", &raw_pairs("torrent="), Some("b")),
            "/b/k?torrent="
        );
    }

    #[test]
    fn amz_headers_are_sorted_joined_and_unfolded() {
        let mut h = HeaderMap::new();
        h.append("x-amz-meta-b", "two".parse().unwrap());
        h.append("x-amz-meta-a", " one ".parse().unwrap());
        h.append("x-amz-meta-b", "three".parse().unwrap());
        h.append("content-type", "text/plain".parse().unwrap());
        assert_eq!(
            amz_headers(&h),
            "x-amz-meta-a:one\nx-amz-meta-b:two,three\n"
        );
    }
}
