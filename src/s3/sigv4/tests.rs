//! Verification against AWS's published SigV4 test suite, AWS's S3 documentation examples,
//! and requests signed by `aws-sigv4` (the signer S3 clients in Rust use).

use std::path::Path;
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::*;
use crate::config::Credential;
use crate::s3::uri::query_pairs;
use crate::s3::S3Error;

struct ParsedRequest {
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Reads the suite's raw HTTP request text: `METHOD TARGET HTTP/1.1`, `Name:value` lines,
/// a blank line, the body. Targets may contain spaces and raw UTF-8.
fn parse_request(text: &str) -> ParsedRequest {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let (method, target) = request_line
        .trim_end_matches(" HTTP/1.1")
        .split_once(' ')
        .unwrap();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':').unwrap();
        headers.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    ParsedRequest {
        method: method.to_string(),
        path,
        query,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn credential(ak: &str, sk: &str) -> Credential {
    Credential::new(ak, sk)
}

fn verify_with_payload(
    v: &Verifier<'_>,
    req: &ParsedRequest,
    payload_hash: Option<&str>,
) -> Result<Caller, S3Error> {
    let signed = SignedRequest {
        method: &req.method,
        path: &req.path,
        query: req.query.as_deref(),
        headers: &req.headers,
    };
    let pairs = req
        .query
        .as_deref()
        .map(|q| query_pairs(q).unwrap())
        .unwrap_or_default();
    let sig = parse::signature(&req.headers, &pairs)?.expect("signed");
    v.verify(&signed, &pairs, &sig, payload_hash)
}

#[test]
fn aws_sigv4_test_suite() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sigv4-test-suite");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let case = entry.unwrap().path();
        if !case.is_dir() {
            continue;
        }
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let ctx: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("context.json")).unwrap())
                .unwrap();
        let creds = [credential(
            ctx["credentials"]["access_key_id"].as_str().unwrap(),
            ctx["credentials"]["secret_access_key"].as_str().unwrap(),
        )];
        let now: SystemTime = time::OffsetDateTime::parse(
            ctx["timestamp"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .into();
        let verifier = Verifier {
            bucket_in_host: None,
            credentials: &creds,
            region: ctx["region"].as_str().unwrap(),
            service: ctx["service"].as_str().unwrap(),
            now,
        };
        for form in ["header", "query"] {
            let text =
                std::fs::read_to_string(case.join(format!("{form}-signed-request.txt"))).unwrap();
            let req = parse_request(&text);
            let payload = hex::encode(Sha256::digest(&req.body));
            let caller = verify_with_payload(&verifier, &req, Some(&payload))
                .unwrap_or_else(|e| panic!("{name} ({form}): {e}"));
            assert!(matches!(caller, Caller::Signed { .. }));

            // The same request with one byte of the secret changed must fail.
            let wrong = [credential(&creds[0].access_key_id, "wrong-secret")];
            let v2 = Verifier {
                bucket_in_host: None,
                credentials: &wrong,
                ..verifier
            };
            let e = verify_with_payload(&v2, &req, Some(&payload)).unwrap_err();
            assert_eq!(e.code.as_str(), "SignatureDoesNotMatch", "{name} ({form})");
            checked += 1;
        }
    }
    assert!(checked >= 50, "only {checked} vectors found");
}

const DOC_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn doc_verifier<'a>(creds: &'a [Credential], now: &str) -> Verifier<'a> {
    Verifier {
        bucket_in_host: None,
        credentials: creds,
        region: "us-east-1",
        service: "s3",
        now: parse::parse_amz_date(now).unwrap(),
    }
}

/// The GET Object example from AWS's "Signature Calculations for the Authorization Header".
#[test]
fn s3_documentation_get_object_example() {
    let creds = [credential("AKIAIOSFODNN7EXAMPLE", DOC_SECRET)];
    let req = parse_request(
        "GET /test.txt HTTP/1.1\n\
         Host:examplebucket.s3.amazonaws.com\n\
         Range:bytes=0-9\n\
         x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
         x-amz-date:20130524T000000Z\n\
         Authorization:AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41\n",
    );
    let v = doc_verifier(&creds, "20130524T000500Z");
    assert!(verify_with_payload(&v, &req, None).is_ok());

    // An hour later the same request is replayed: too skewed.
    let late = doc_verifier(&creds, "20130524T010000Z");
    assert_eq!(
        verify_with_payload(&late, &req, None)
            .unwrap_err()
            .code
            .as_str(),
        "RequestTimeTooSkewed"
    );
}

/// The presigned URL example from AWS's "Authenticating Requests: Using Query Parameters".
#[test]
fn s3_documentation_presigned_example() {
    let creds = [credential("AKIAIOSFODNN7EXAMPLE", DOC_SECRET)];
    let req = parse_request(
        "GET /test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404 HTTP/1.1\n\
         Host:examplebucket.s3.amazonaws.com\n",
    );
    assert!(verify_with_payload(&doc_verifier(&creds, "20130524T120000Z"), &req, None).is_ok());
    let e = verify_with_payload(&doc_verifier(&creds, "20130525T000001Z"), &req, None).unwrap_err();
    assert_eq!(
        (e.status, e.code.as_str(), e.message.as_str()),
        (403, "AccessDenied", "Request has expired")
    );
}

const AK: &str = "AKIDCALLER";
const SK: &str = "caller/secret+key";

fn signed_by_aws_sigv4(key_path: &str, query: &str, host: &str, time: SystemTime) -> ParsedRequest {
    let url = format!("http://{host}{key_path}{query}");
    let headers = vec![
        ("host".to_string(), host.to_string()),
        ("x-amz-content-sha256".to_string(), EMPTY_SHA256.to_string()),
    ];
    let key = SigningKey {
        access_key_id: AK,
        secret_access_key: SK,
        region: "us-east-1",
    };
    let added = sign_headers(&key, "GET", &url, &headers, time).unwrap();
    let mut map = HeaderMap::new();
    for (k, v) in headers.iter().chain(added.iter()) {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    ParsedRequest {
        method: "GET".into(),
        path: key_path.to_string(),
        query: query.strip_prefix('?').map(str::to_string),
        headers: map,
        body: Vec::new(),
    }
}

fn verifier_at(creds: &[Credential], now: SystemTime) -> Verifier<'_> {
    Verifier {
        bucket_in_host: None,
        credentials: creds,
        region: "us-east-1",
        service: "s3",
        now,
    }
}

#[test]
fn accepts_what_aws_sigv4_signs_for_awkward_keys() {
    let creds = [credential(AK, SK)];
    let now = SystemTime::now();
    let keys = [
        "/b/plain.txt",
        "/b/with%20space%2Bplus",
        "/b/dir/%C3%BC%E6%97%A5.bin",
        "/b/100%25",
        "/b/a/../b",
        "/b//double",
        "/b/%21%27%28%29%2A",
    ];
    for path in keys {
        for query in ["?torrent", "?torrent=", "?versionId=v%2B1&torrent"] {
            let req = signed_by_aws_sigv4(path, query, "127.0.0.1:8080", now);
            let caller = verify_with_payload(&verifier_at(&creds, now), &req, None)
                .unwrap_or_else(|e| panic!("{path}{query}: {e}"));
            let Caller::Signed {
                access_key_id,
                secret_access_key,
                signed_headers,
                ..
            } = caller
            else {
                panic!("{path}{query}: anonymous");
            };
            assert_eq!(
                (access_key_id.as_str(), secret_access_key.expose()),
                (AK, SK)
            );
            assert!(
                signed_headers.iter().any(|h| h == "host"),
                "{signed_headers:?}"
            );
        }
    }
}

#[test]
fn tampering_is_refused() {
    let creds = [credential(AK, SK)];
    let now = SystemTime::now();
    let v = verifier_at(&creds, now);
    let check =
        |req: &ParsedRequest| verify_with_payload(&v, req, None).map_err(|e| e.code.as_str());

    let mut req = signed_by_aws_sigv4("/b/k", "?torrent", "a.s3.example.com", now);
    req.headers
        .insert("host", "b.s3.example.com".parse().unwrap());
    assert_eq!(
        check(&req),
        Err("SignatureDoesNotMatch"),
        "Host swapped between buckets"
    );

    let mut req = signed_by_aws_sigv4("/b/k", "?torrent", "h", now);
    req.path = "/b/other".into();
    assert_eq!(check(&req), Err("SignatureDoesNotMatch"), "another key");

    let mut req = signed_by_aws_sigv4("/b/k", "?torrent", "h", now);
    req.query = Some("torrent&versionId=x".into());
    assert_eq!(check(&req), Err("SignatureDoesNotMatch"), "added parameter");

    let req = signed_by_aws_sigv4("/b/k", "?torrent", "h", now - Duration::from_secs(16 * 60));
    assert_eq!(check(&req), Err("RequestTimeTooSkewed"), "replayed");

    let req = signed_by_aws_sigv4("/b/k", "?torrent", "h", now + Duration::from_secs(16 * 60));
    assert_eq!(check(&req), Err("RequestTimeTooSkewed"), "from the future");

    let req = signed_by_aws_sigv4("/b/k", "?torrent", "h", now);
    let others = [credential("SOMEONE", SK)];
    assert_eq!(
        verify_with_payload(&verifier_at(&others, now), &req, None).map_err(|e| e.code.as_str()),
        Err("InvalidAccessKeyId")
    );
    let wrong_region = Verifier {
        region: "eu-west-1",
        ..verifier_at(&creds, now)
    };
    assert_eq!(
        verify_with_payload(&wrong_region, &req, None).map_err(|e| e.code.as_str()),
        Err("AuthorizationHeaderMalformed")
    );

    let mut req = signed_by_aws_sigv4("/b/k", "?torrent", "h", now);
    req.headers.remove("x-amz-content-sha256");
    assert_eq!(
        check(&req),
        Err("InvalidRequest"),
        "S3 requires the payload hash header"
    );
}

#[test]
fn presigned_urls_from_aws_sigv4() {
    let creds = [credential(AK, SK)];
    let key = SigningKey {
        access_key_id: AK,
        secret_access_key: SK,
        region: "us-east-1",
    };
    let t0 = SystemTime::now();
    let url = presign_url(
        &key,
        "GET",
        "http://h:1/b/a%20b?torrent",
        t0,
        Duration::from_secs(60),
    )
    .unwrap();
    let (path_query, host) = (url.trim_start_matches("http://h:1"), "h:1");
    let parse = |pq: &str| parse_request(&format!("GET {pq} HTTP/1.1\nHost:{host}\n"));
    let req = parse(path_query);
    assert!(verify_with_payload(&verifier_at(&creds, t0), &req, None).is_ok());
    let expired = verifier_at(&creds, t0 + Duration::from_secs(61));
    assert_eq!(
        verify_with_payload(&expired, &req, None)
            .unwrap_err()
            .message,
        "Request has expired"
    );
    // Lengthening the expiry in the URL breaks the signature.
    let tampered = parse(&path_query.replace("X-Amz-Expires=60", "X-Amz-Expires=6000"));
    assert_eq!(
        verify_with_payload(&verifier_at(&creds, t0), &tampered, None)
            .unwrap_err()
            .code
            .as_str(),
        "SignatureDoesNotMatch"
    );
}

#[test]
fn anonymous_requests_pass_as_anonymous() {
    let creds = [credential(AK, SK)];
    let v = verifier_at(&creds, SystemTime::now());
    let headers = HeaderMap::new();
    let req = SignedRequest {
        method: "GET",
        path: "/b/k",
        query: Some("torrent"),
        headers: &headers,
    };
    assert_eq!(v.authenticate(&req).unwrap(), Caller::Anonymous);
}
