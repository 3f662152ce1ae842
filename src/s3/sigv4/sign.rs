//! Signing the sidecar's own requests with `aws-sigv4`, S3 style (single URI encoding,
//! no path normalization): as the sidecar when it fetches an object, or as a verified
//! caller when it asks the backend whether that caller may read.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
    SignatureLocation, SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;

/// SHA-256 of the empty body: what S3 expects in `x-amz-content-sha256` for GET/HEAD.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[derive(Debug)]
pub struct SigningError(pub String);

impl std::fmt::Display for SigningError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "signing failed: {}", self.0)
    }
}

pub struct SigningKey<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
}

fn settings() -> SigningSettings {
    let mut s = SigningSettings::default();
    s.percent_encoding_mode = PercentEncodingMode::Single;
    s.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    s
}

/// Signs a body-less request in the `Authorization` header. `url` is absolute and already
/// percent-encoded; `headers` must include `host` and `x-amz-content-sha256`. Returns the
/// headers to add (`authorization`, `x-amz-date`).
pub fn sign_headers(
    key: &SigningKey<'_>,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    time: SystemTime,
) -> Result<Vec<(String, String)>, SigningError> {
    sign_headers_with_payload(key, method, url, headers, EMPTY_SHA256, time)
}

/// As [`sign_headers`], for a request whose body has this SHA-256 (hex), or
/// `UNSIGNED-PAYLOAD`; `headers` must carry the same value in `x-amz-content-sha256`.
pub fn sign_headers_with_payload(
    key: &SigningKey<'_>,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    payload_hash: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, SigningError> {
    let mut settings = settings();
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    let mut request = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let mut request = request.body(()).map_err(|e| SigningError(e.to_string()))?;
    apply(
        key,
        &mut request,
        settings,
        SignableBody::Precomputed(payload_hash.into()),
        time,
    )?;
    Ok(request
        .headers()
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "authorization" | "x-amz-date" | "x-amz-security-token"
            )
        })
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect())
}

/// A presigned GET URL, valid for `expires` (at most 7 days).
pub fn presign_url(
    key: &SigningKey<'_>,
    method: &str,
    url: &str,
    time: SystemTime,
    expires: Duration,
) -> Result<String, SigningError> {
    let mut settings = settings();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    let mut request = http::Request::builder()
        .method(method)
        .uri(url)
        .body(())
        .map_err(|e| SigningError(e.to_string()))?;
    apply(
        key,
        &mut request,
        settings,
        SignableBody::UnsignedPayload,
        time,
    )?;
    Ok(request.uri().to_string())
}

fn apply(
    key: &SigningKey<'_>,
    request: &mut http::Request<()>,
    settings: SigningSettings,
    body: SignableBody<'_>,
    time: SystemTime,
) -> Result<(), SigningError> {
    let identity = Credentials::new(
        key.access_key_id,
        key.secret_access_key,
        None,
        None,
        "s3torrent",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(key.region)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| SigningError(e.to_string()))?
        .into();
    let uri = request.uri().to_string();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let signable = SignableRequest::new(
        request.method().as_str(),
        uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        body,
    )
    .map_err(|e| SigningError(e.to_string()))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| SigningError(e.to_string()))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}
