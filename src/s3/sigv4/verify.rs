//! Verifying callers' SigV4 signatures, in both forms S3 clients send: the `Authorization`
//! header and the presigned `X-Amz-*` query. `aws-sigv4` signs but does not verify, so the
//! canonical request is built here (`canonical`) from the parsed signature (`parse`); the key
//! derivation and HMAC come from `aws-sigv4`. Comparison is constant-time.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::config::{Credential, Secret};
use crate::s3::error::{Code, S3Error};
use crate::s3::uri::query_pairs;

use super::canonical;
use super::parse::{self, SignatureForm};

/// S3 accepts requests whose time is within 15 minutes of its own clock.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
pub use crate::config::MAX_PRESIGN_EXPIRES;

/// Who is asking, once the signature (if any) checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    Signed {
        access_key_id: String,
        secret_access_key: Secret,
        /// Lower-case names of the headers the signature covers.
        signed_headers: Vec<String>,
        /// A presigned URL's end of validity; `None` for a header-signed request.
        valid_until: Option<SystemTime>,
    },
}

impl Caller {
    /// Whether the caller's signature vouches for this header (anonymous callers sign
    /// nothing, so nothing they send needs vouching for).
    pub fn covers(&self, header: &str) -> bool {
        match self {
            Caller::Anonymous => true,
            Caller::Signed { signed_headers, .. } => signed_headers.iter().any(|h| h == header),
        }
    }

    /// Who it is, for keying what is kept per caller: the access key, or empty for an
    /// anonymous caller.
    pub fn key_id(&self) -> &str {
        match self {
            Caller::Anonymous => "",
            Caller::Signed { access_key_id, .. } => access_key_id,
        }
    }
}

/// The parts of a request the signature covers.
#[derive(Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path exactly as received (still percent-encoded).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

pub struct Verifier<'a> {
    pub credentials: &'a [Credential],
    pub region: &'a str,
    pub service: &'a str,
    pub now: SystemTime,
    /// The bucket named by a virtual-hosted `Host` (SigV2 signs it as part of the path).
    pub bucket_in_host: Option<&'a str>,
}

impl<'a> Verifier<'a> {
    /// A verifier of the callers `config` lists (`[[auth.credentials]]`), now, for a request
    /// whose bucket came from a virtual-hosted `Host` (`bucket_in_host`) or not.
    pub fn of(config: &'a crate::config::Config, bucket_in_host: Option<&'a str>) -> Self {
        Verifier {
            bucket_in_host,
            credentials: &config.auth.credentials,
            region: &config.upstream.region,
            service: "s3",
            now: SystemTime::now(),
        }
    }

    /// Returns the caller, or the S3 error a real S3 would give for this signature: SigV4,
    /// or SigV2 (`crate::s3::sigv2`) for the clients that still send it.
    pub fn authenticate(&self, req: &SignedRequest<'_>) -> Result<Caller, S3Error> {
        let v4_presigned = req.query.is_some_and(|q| q.contains("X-Amz-Algorithm="));
        if crate::s3::sigv2::is_sigv2(req.headers, req.query) && !v4_presigned {
            return crate::s3::sigv2::verify(self.credentials, self.now, req, self.bucket_in_host);
        }
        let pairs = match req.query {
            Some(q) => query_pairs(q).map_err(|_| S3Error::invalid_uri())?,
            None => Vec::new(),
        };
        let Some(sig) = parse::signature(req.headers, &pairs)? else {
            return Ok(Caller::Anonymous);
        };
        self.verify(req, &pairs, &sig, None)
    }

    /// `payload_hash` overrides S3's rule (the `x-amz-content-sha256` header, or
    /// `UNSIGNED-PAYLOAD` when presigned); AWS's generic test vectors hash the body instead.
    pub(super) fn verify(
        &self,
        req: &SignedRequest<'_>,
        pairs: &[(String, String)],
        sig: &parse::Signature,
        payload_hash: Option<&str>,
    ) -> Result<Caller, S3Error> {
        let scope = &sig.scope;
        let credential = self
            .credentials
            .iter()
            .find(|c| c.access_key_id == scope.access_key_id)
            .ok_or_else(|| S3Error::of(Code::InvalidAccessKeyId))?;
        if scope.region != self.region {
            return Err(S3Error::authorization_malformed(format!(
                "the region '{}' is wrong; expecting '{}'",
                scope.region, self.region
            )));
        }
        if scope.service != self.service {
            return Err(S3Error::authorization_malformed(format!(
                "the service '{}' is wrong; expecting '{}'",
                scope.service, self.service
            )));
        }
        if !sig.signed_headers.iter().any(|h| h == "host") {
            return Err(S3Error::authorization_malformed(
                "SignedHeaders must include host",
            ));
        }
        self.check_time(sig)?;

        let payload_hash = match (payload_hash, sig.form) {
            (Some(h), _) => h.to_string(),
            (None, SignatureForm::Presigned) => "UNSIGNED-PAYLOAD".to_string(),
            (None, SignatureForm::Header) => req
                .headers
                .get("x-amz-content-sha256")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    S3Error::invalid_request(
                        "Missing required header for this request: x-amz-content-sha256",
                    )
                })?
                .to_string(),
        };
        let canonical = canonical::canonical_request(req, pairs, sig, &payload_hash)
            .ok_or_else(|| S3Error::of(Code::SignatureDoesNotMatch))?;
        let string_to_sign = canonical::string_to_sign(&sig.amz_date, scope, &canonical);
        let key = aws_sigv4::sign::v4::generate_signing_key(
            credential.secret_access_key.expose(),
            sig.time,
            &scope.region,
            &scope.service,
        );
        let expected = aws_sigv4::sign::v4::calculate_signature(key, string_to_sign.as_bytes());
        let matches: bool = expected
            .as_bytes()
            .ct_eq(sig.signature.to_ascii_lowercase().as_bytes())
            .into();
        if !matches {
            return Err(S3Error::of(Code::SignatureDoesNotMatch));
        }
        Ok(Caller::Signed {
            access_key_id: credential.access_key_id.clone(),
            secret_access_key: credential.secret_access_key.clone(),
            signed_headers: sig.signed_headers.clone(),
            valid_until: sig.expires.map(|secs| sig.time + Duration::from_secs(secs)),
        })
    }

    fn check_time(&self, sig: &parse::Signature) -> Result<(), S3Error> {
        let ahead = sig.time.duration_since(self.now).unwrap_or_default();
        let behind = self.now.duration_since(sig.time).unwrap_or_default();
        match sig.form {
            SignatureForm::Header => {
                if ahead > MAX_SKEW || behind > MAX_SKEW {
                    return Err(S3Error::new(
                        Code::RequestTimeTooSkewed,
                        "The difference between the request time and the current time is too large.",
                    ));
                }
            }
            SignatureForm::Presigned => {
                let expires = sig.expires.unwrap_or(0);
                if ahead > MAX_SKEW {
                    return Err(S3Error::new(Code::AccessDenied, "Request is not valid yet"));
                }
                if behind > Duration::from_secs(expires) {
                    return Err(S3Error::new(Code::AccessDenied, "Request has expired"));
                }
            }
        }
        Ok(())
    }
}
