//! Who gets a torrent: the backend decides, asked as the caller; signatures are verified
//! by the sidecar first.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

fn torrent_as(env: &Env, creds: (&str, &str), bucket: &str, key: &str, name: &str) -> Value {
    let out = env.scratch("authz").join(format!("{name}.torrent"));
    s3client(
        &env.sidecar_url(),
        creds,
        &["torrent", bucket, key, out.to_str().unwrap()],
    )
}

fn error_of(v: &Value) -> (u64, String) {
    let e = v
        .get("error")
        .unwrap_or_else(|| panic!("expected an error, got {v}"));
    assert!(
        e["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "error without request id: {v}"
    );
    (
        e["status"].as_u64().unwrap(),
        e["code"].as_str().unwrap().to_string(),
    )
}

/// The two objects every test here asks for, on `env`'s backend (once per backend).
fn setup(env: &Env) {
    static DONE: std::sync::Mutex<Vec<Backend>> = std::sync::Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap();
    if !done.contains(&env.backend) {
        let dir = env.scratch("authz");
        env.put_object("public", "authz/pub.bin", &test_data(5000, 30), &dir);
        env.put_object("private", "authz/priv.bin", &test_data(5000, 31), &dir);
        done.push(env.backend);
    }
}

fn anonymous_gets_a_torrent_only_where_the_backend_serves_anonymous_reads(env: &Env) {
    setup(env);
    let public = request(env.port, "GET", "/public/authz/pub.bin?torrent", &[]);
    if env.backend.serves_anonymous_reads() {
        assert_eq!(public.status, 200);
    } else {
        // Garage serves no anonymous caller anything: its refusal, in its words.
        assert_eq!(public.status, 403, "{}", public.text());
        assert_eq!(public.s3_code().as_deref(), Some("AccessDenied"));
        assert!(public.text().contains("anonymous"), "{}", public.text());
    }
    let private = request(env.port, "GET", "/private/authz/priv.bin?torrent", &[]);
    assert_eq!(private.status, 403);
    assert_eq!(private.s3_code().as_deref(), Some("AccessDenied"));
    assert_eq!(private.header("content-type"), Some("application/xml"));
    assert!(private.header("x-amz-request-id").is_some());
    // The sidecar's own (admin) credentials could read it: they must not have been used.
    let direct = s3client(
        &env.backend_url(),
        ADMIN,
        &["get", "private", "authz/priv.bin", "/dev/null"],
    );
    assert!(direct.get("error").is_none());
}

fn signed_callers_with_and_without_read(env: &Env) {
    setup(env);
    let ok = torrent_as(env, READER, "private", "authz/priv.bin", "reader");
    assert_eq!(ok["status"], 200, "{ok}");
    let denied = torrent_as(env, NOREAD, "private", "authz/priv.bin", "noread");
    assert_eq!(error_of(&denied), (403, "AccessDenied".into()));
}

fn unknown_key_and_wrong_secret(env: &Env) {
    setup(env);
    let unknown = torrent_as(
        env,
        ("UNKNOWNKEY", "whatever"),
        "public",
        "authz/pub.bin",
        "unknown",
    );
    assert_eq!(error_of(&unknown), (403, "InvalidAccessKeyId".into()));
    let wrong = torrent_as(
        env,
        (READER.0, "not-the-secret"),
        "public",
        "authz/pub.bin",
        "wrong",
    );
    assert_eq!(error_of(&wrong), (403, "SignatureDoesNotMatch".into()));
}

fn presigned_urls_valid_and_expired(env: &Env) {
    setup(env);
    let url = |expires: &str| {
        s3client(
            &env.sidecar_url(),
            READER,
            &["presign-torrent", "private", "authz/priv.bin", expires],
        )["url"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let curl = |url: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(curl(&url("300")), "200");
    let short = url("1");
    std::thread::sleep(Duration::from_millis(2100));
    let target = short.trim_start_matches(&env.sidecar_url()).to_string();
    let r = request(env.port, "GET", &target, &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.s3_code().as_deref(), Some("AccessDenied"));
    assert!(r.text().contains("Request has expired"), "{}", r.text());
    // Tampering with the key of a valid presigned URL breaks its signature.
    let tampered = url("300")
        .replace("authz/priv.bin", "authz/pub.bin")
        .trim_start_matches(&env.sidecar_url())
        .to_string();
    let r = request(env.port, "GET", &tampered, &[]);
    assert_eq!(r.s3_code().as_deref(), Some("SignatureDoesNotMatch"));
}

/// A correctly signed request replayed 20 minutes later (past S3's 15-minute window).
#[test]
fn replayed_signature_past_the_skew_is_refused() {
    setup(env());
    let env = env();
    let host = format!("127.0.0.1:{}", env.port);
    let target = "/private/authz/priv.bin?torrent";
    let sign_at = |when| signed_headers(READER, "GET", &host, target, None, when);
    let send = |headers: Vec<(String, String)>| {
        let h = header_refs(&headers);
        request(env.port, "GET", target, &h)
    };
    assert_eq!(send(sign_at(std::time::SystemTime::now())).status, 200);
    let stale = send(sign_at(
        std::time::SystemTime::now() - Duration::from_secs(20 * 60),
    ));
    assert_eq!(stale.status, 403);
    assert_eq!(stale.s3_code().as_deref(), Some("RequestTimeTooSkewed"));
}

/// Virtual-hosted style: a signature made for one bucket's Host, replayed with another
/// bucket's Host, fails; an anonymous Host switch gets the backend's answer for that bucket.
#[test]
fn host_spoofing_between_buckets_never_yields_a_torrent() {
    setup(env());
    let env = env();
    let host_of = |bucket: &str| format!("{bucket}.{DOMAIN}:{}", env.port);
    let target = "/authz/priv.bin?torrent";
    let signed_for = |host: &str| {
        signed_headers(
            NOREAD,
            "GET",
            host,
            target,
            None,
            std::time::SystemTime::now(),
        )
    };
    // NOREAD signs for the public bucket, then points the same request at the private one.
    let send = |headers: Vec<(String, String)>| {
        let h = header_refs(&headers);
        request(env.port, "GET", target, &h)
    };
    let mut headers = signed_for(&host_of("public"));
    headers[0].1 = host_of("private");
    let r = send(headers);
    assert_eq!(
        (r.status, r.s3_code().as_deref()),
        (403, Some("SignatureDoesNotMatch"))
    );
    // Signed honestly for the private bucket, NOREAD still lacks READ there.
    let r = send(signed_for(&host_of("private")));
    assert_eq!(
        (r.status, r.s3_code().as_deref()),
        (403, Some("AccessDenied"))
    );
    // Anonymous, Host naming the private bucket.
    let r = request(env.port, "GET", target, &[("Host", &host_of("private"))]);
    assert_eq!(
        (r.status, r.s3_code().as_deref()),
        (403, Some("AccessDenied"))
    );
}

/// A backend that lets anyone `HEAD` the object but refuses to serve its bytes to anyone but
/// the sidecar's own key: what S3 does for an SSE-KMS object to a caller without decrypt
/// permission. SeaweedFS cannot be configured so; a fake stands in.
fn head_but_not_get_backend() -> u16 {
    const LEN: usize = 50_000;
    fake_backend(|head, out| {
        let sidecar = head.contains(&format!("Credential={}/", ADMIN.0));
        let ok = format!("HTTP/1.1 200 OK\r\nETag: \"kms\"\r\nContent-Length: {LEN}\r\n\r\n");
        let reply = if head.starts_with("HEAD") {
            ok.into_bytes()
        } else if sidecar {
            let mut r = ok.into_bytes();
            r.extend_from_slice(&test_data(LEN, 9));
            r
        } else {
            let body = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
            format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        };
        out.write_all(&reply).is_ok()
    })
}

#[test]
fn read_means_get_not_head() {
    let fake = head_but_not_get_backend();
    let port = sidecar("head-not-get").backend_port(fake).start().port;
    let r = request(port, "GET", "/b/kms.bin?torrent", &[]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.s3_code().as_deref(), Some("AccessDenied"));
}

#[test]
fn forwarded_headers_travel_only_when_the_caller_signed_them() {
    let (fake, heads) = recording_backend();
    let port = sidecar("forwarded-signed").backend_port(fake).start().port;
    let host = format!("127.0.0.1:{port}");
    let target = "/b/fw.bin?torrent";
    let payer = ("x-amz-request-payer", "requester");
    let mut headers = signed_headers_with(
        READER,
        "GET",
        &host,
        target,
        None,
        &[payer],
        std::time::SystemTime::now(),
    );
    // Added on the way, after the caller signed: not theirs to vouch for.
    headers.push(("x-amz-expected-bucket-owner".into(), "111111111111".into()));
    let refs = header_refs(&headers);
    let r = request(port, "GET", target, &refs);
    assert_eq!(r.status, 200, "{}", r.text());
    let heads = heads.lock().unwrap();
    assert!(heads.len() >= 2, "a probe and a fetch: {heads:?}");
    for head in heads.iter() {
        assert!(
            head.contains("\r\nx-amz-request-payer: requester\r\n"),
            "{head}"
        );
        assert!(!head.contains("x-amz-expected-bucket-owner"), "{head}");
    }
}

/// The `x-forwarded-for` and `forwarded` values of each recorded request head.
fn client_headers(heads: &[String]) -> Vec<(String, String)> {
    let value = |head: &str, name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or("<none>")
            .trim()
            .to_string()
    };
    heads
        .iter()
        .map(|h| (value(h, "x-forwarded-for"), value(h, "forwarded")))
        .collect()
}

#[test]
fn the_backend_learns_the_client_address_from_the_sidecar_not_the_client() {
    let spoof = [("x-forwarded-for", "6.6.6.6"), ("forwarded", "for=6.6.6.6")];
    // Pass-through and the READ check alike; the sidecar's own fetch names nobody.
    let (fake, heads) = recording_backend();
    let port = sidecar("xff-untrusted").backend_port(fake).start().port;
    assert_eq!(request(port, "GET", "/b/plain.bin", &spoof).status, 200);
    assert_eq!(request(port, "GET", "/b/t.bin?torrent", &spoof).status, 200);
    let seen = client_headers(&heads.lock().unwrap());
    let direct = ("127.0.0.1".to_string(), "for=127.0.0.1".to_string());
    assert_eq!(seen[0], direct, "pass-through");
    assert_eq!(seen[1], direct, "READ check");
    assert_eq!(seen[2], ("<none>".into(), "<none>".into()), "fetch");

    // Behind a trusted proxy, its chain is kept and extended.
    let (fake, heads) = recording_backend();
    let port = sidecar("xff-trusted")
        .backend_port(fake)
        .set("server.trusted_proxies", vec!["127.0.0.0/8"])
        .start()
        .port;
    assert_eq!(request(port, "GET", "/b/plain.bin", &spoof).status, 200);
    let seen = client_headers(&heads.lock().unwrap());
    assert_eq!(
        seen[0],
        (
            "6.6.6.6, 127.0.0.1".to_string(),
            "for=6.6.6.6, for=127.0.0.1".to_string()
        )
    );
}

/// SigV2, as boto3 sends it: its default presigned URLs (`?AWSAccessKeyId=…&Signature=…`)
/// and `signature_version="s3"` (`Authorization: AWS …`).
fn sigv2_callers_as_boto3_signs_them(env: &Env) {
    let dir = env.scratch("sigv2");
    let data = test_data(30_000, 44);
    env.put_object("private", "sigv2/x.bin", &data, &dir);
    let base = env.sidecar_url();
    // boto3 presigns with SigV2 by default only in us-east-1; elsewhere (Garage's region)
    // it must be asked for.
    let query_form = match env.region {
        "us-east-1" => "default",
        _ => "s3",
    };
    let presign = |creds, key: &str, expires: &str| {
        let out = s3client_signing(
            &base,
            creds,
            query_form,
            &["presign-torrent", "private", key, expires],
        );
        let url = out["url"].as_str().unwrap().to_string();
        assert!(
            url.contains("AWSAccessKeyId="),
            "boto3 presigned with SigV2: {url}"
        );
        url.trim_start_matches(&base).to_string()
    };
    let get = |target: &str| request(env.port, "GET", target, &[]);

    // Query form: a reader gets the torrent; its bytes describe the object.
    let r = get(&presign(READER, "sigv2/x.bin", "300"));
    assert_eq!(r.status, 200, "{}", r.text());
    let t = dir.join("v2.torrent");
    std::fs::write(&t, &r.body).unwrap();
    let file = dir.join("x.bin");
    std::fs::write(&file, &data).unwrap();
    assert_eq!(
        check_torrent(&t, &file)["bad_pieces"],
        serde_json::json!([])
    );

    // Tampered (another key), expired, unknown key, no READ.
    let tampered = presign(READER, "sigv2/x.bin", "300").replace("x.bin", "y.bin");
    let code = |r: Response| (r.status, r.s3_code().unwrap_or_default());
    assert_eq!(code(get(&tampered)), (403, "SignatureDoesNotMatch".into()));
    let short = presign(READER, "sigv2/x.bin", "1");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(code(get(&short)), (403, "AccessDenied".into()));
    let unknown = presign(("NOBODY", "x"), "sigv2/x.bin", "300");
    assert_eq!(code(get(&unknown)), (403, "InvalidAccessKeyId".into()));
    assert_eq!(
        code(get(&presign(NOREAD, "sigv2/x.bin", "300"))),
        (403, "AccessDenied".into())
    );

    // Header form: boto3 with signature_version="s3".
    let out = dir.join("header.torrent");
    let r = s3client_signing(
        &base,
        READER,
        "s3",
        &["torrent", "private", "sigv2/x.bin", out.to_str().unwrap()],
    );
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&t).unwrap());
    let r = s3client_signing(
        &base,
        NOREAD,
        "s3",
        &["torrent", "private", "sigv2/x.bin", out.to_str().unwrap()],
    );
    assert_eq!(r["error"]["code"], "AccessDenied", "{r}");
}

crate::on_every_backend!(
    anonymous_gets_a_torrent_only_where_the_backend_serves_anonymous_reads,
    signed_callers_with_and_without_read,
    unknown_key_and_wrong_secret,
    presigned_urls_valid_and_expired,
    sigv2_callers_as_boto3_signs_them,
);
