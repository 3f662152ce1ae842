//! Reading a SigV4 signature out of a request: the `Authorization` header or the presigned
//! `X-Amz-*` query parameters. Nothing is verified here except that the pieces are well formed.

use std::time::SystemTime;

use http::HeaderMap;
use time::macros::format_description;
use time::PrimitiveDateTime;

use crate::s3::error::{Code, S3Error};

use super::MAX_PRESIGN_EXPIRES;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureForm {
    Header,
    Presigned,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

impl Scope {
    pub fn to_string_without_key(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

#[derive(Debug, Clone)]
pub struct Signature {
    pub form: SignatureForm,
    pub scope: Scope,
    /// Lower-case names, in the order signed.
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// The request time as it appears in the string to sign (`20150830T123600Z`).
    pub amz_date: String,
    pub time: SystemTime,
    /// Presigned only: seconds the URL stays valid.
    pub expires: Option<u64>,
}

/// `None` for an anonymous request.
pub fn signature(
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<Option<Signature>, S3Error> {
    let header = headers.get(http::header::AUTHORIZATION);
    let presigned = query.iter().any(|(n, _)| n == "X-Amz-Algorithm");
    let v2_presigned = query.iter().any(|(n, _)| n == "AWSAccessKeyId");
    match (header, presigned || v2_presigned) {
        (None, false) => Ok(None),
        (Some(_), true) => Err(S3Error::new(
            Code::InvalidArgument,
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified",
        )),
        (Some(h), false) => {
            let h = h.to_str().map_err(|_| S3Error::authorization_malformed("not ASCII"))?;
            from_header(h, headers).map(Some)
        }
        (None, true) if v2_presigned => Err(unsupported()),
        (None, true) => from_query(query).map(Some),
    }
}

fn unsupported() -> S3Error {
    S3Error::invalid_request(
        "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
    )
}

fn query_error(why: &str) -> S3Error {
    S3Error::new(Code::AuthorizationQueryParametersError, why)
}

fn from_header(value: &str, headers: &HeaderMap) -> Result<Signature, S3Error> {
    let Some(rest) = value.strip_prefix(ALGORITHM) else {
        return Err(if value.starts_with("AWS ") {
            unsupported()
        } else {
            S3Error::new(Code::InvalidArgument, "Unsupported Authorization Type")
        });
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {
                return Err(S3Error::authorization_malformed(format!(
                    "unexpected element {part:?}"
                )))
            }
        }
    }
    let credential =
        credential.ok_or_else(|| S3Error::authorization_malformed("missing Credential"))?;
    let signed = signed.ok_or_else(|| S3Error::authorization_malformed("missing SignedHeaders"))?;
    let signature =
        signature.ok_or_else(|| S3Error::authorization_malformed("missing Signature"))?;

    let (amz_date, time) = request_time(headers)?;
    let scope =
        scope(credential, &amz_date).map_err(|why| S3Error::authorization_malformed(&why))?;
    Ok(Signature {
        form: SignatureForm::Header,
        scope,
        signed_headers: signed_headers(signed)
            .map_err(|why| S3Error::authorization_malformed(&why))?,
        signature: hex_signature(signature)
            .ok_or_else(|| S3Error::authorization_malformed("bad Signature"))?,
        amz_date,
        time,
        expires: None,
    })
}

fn from_query(query: &[(String, String)]) -> Result<Signature, S3Error> {
    let get = |name: &str| {
        query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| {
                query_error(&format!(
                    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters; {name} is missing."
                ))
            })
    };
    if get("X-Amz-Algorithm")? != ALGORITHM {
        return Err(query_error(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
        ));
    }
    let amz_date = get("X-Amz-Date")?.to_string();
    let time = parse_amz_date(&amz_date).ok_or_else(|| {
        query_error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    })?;
    let expires: u64 = get("X-Amz-Expires")?
        .parse()
        .map_err(|_| query_error("X-Amz-Expires should be a number"))?;
    if expires == 0 || expires > MAX_PRESIGN_EXPIRES {
        return Err(query_error(
            "X-Amz-Expires must be more than 0 and less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds",
        ));
    }
    let scope = scope(get("X-Amz-Credential")?, &amz_date).map_err(|why| query_error(&why))?;
    Ok(Signature {
        form: SignatureForm::Presigned,
        scope,
        signed_headers: signed_headers(get("X-Amz-SignedHeaders")?).map_err(|w| query_error(&w))?,
        signature: hex_signature(get("X-Amz-Signature")?)
            .ok_or_else(|| query_error("bad X-Amz-Signature"))?,
        amz_date,
        time,
        expires: Some(expires),
    })
}

/// `AKID/20150830/us-east-1/s3/aws4_request`; the date must be the request's date.
fn scope(credential: &str, amz_date: &str) -> Result<Scope, String> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = parts[..] else {
        return Err(format!("the Credential {credential:?} is not of the form ACCESSKEY/DATE/REGION/SERVICE/aws4_request"));
    };
    if access_key_id.is_empty() {
        return Err("the Credential has no access key".into());
    }
    if !amz_date.starts_with(date) || date.len() != 8 {
        return Err(format!(
            "Invalid credential date \"{date}\". This date is not the same as X-Amz-Date: \"{}\".",
            &amz_date[..8.min(amz_date.len())]
        ));
    }
    Ok(Scope {
        access_key_id: access_key_id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
    })
}

fn signed_headers(list: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = list.split(';').map(str::to_string).collect();
    let valid = names.iter().all(|n| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase())
    });
    if !valid {
        return Err(format!("invalid SignedHeaders {list:?}"));
    }
    Ok(names)
}

fn hex_signature(s: &str) -> Option<String> {
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_string())
}

/// The request time from `x-amz-date`, or failing that from `Date` (RFC 1123).
fn request_time(headers: &HeaderMap) -> Result<(String, SystemTime), S3Error> {
    let denied = || {
        S3Error::new(
            Code::AccessDenied,
            "AWS authentication requires a valid Date or x-amz-date header",
        )
    };
    if let Some(v) = headers.get("x-amz-date") {
        let s = v.to_str().map_err(|_| denied())?;
        let t = parse_amz_date(s).ok_or_else(denied)?;
        return Ok((s.to_string(), t));
    }
    let v = headers.get(http::header::DATE).ok_or_else(denied)?;
    let t = httpdate::parse_http_date(v.to_str().map_err(|_| denied())?).map_err(|_| denied())?;
    Ok((format_amz_date(t), t))
}

pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = PrimitiveDateTime::parse(s, fmt).ok()?.assume_utc();
    Some(t.into())
}

pub fn format_amz_date(t: SystemTime) -> String {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::from(t)
        .format(fmt)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    const SIG: &str = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024";

    #[test]
    fn parses_header_form() {
        let h = headers(&[
            ("x-amz-date", "20130524T000000Z"),
            ("authorization", &format!("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-date,Signature={SIG}")),
        ]);
        let s = signature(&h, &[]).unwrap().unwrap();
        assert_eq!(s.form, SignatureForm::Header);
        assert_eq!(s.scope.access_key_id, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(s.scope.region, "us-east-1");
        assert_eq!(s.signed_headers, ["host", "range", "x-amz-date"]);
        assert_eq!(format_amz_date(s.time), "20130524T000000Z");
    }

    #[test]
    fn anonymous_is_none() {
        assert!(
            signature(&HeaderMap::new(), &[("torrent".into(), "".into())])
                .unwrap()
                .is_none()
        );
    }

    fn err(h: &[(&str, &str)], q: &[(&str, &str)]) -> (u16, &'static str) {
        let q: Vec<(String, String)> = q
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let e = signature(&headers(h), &q).unwrap_err();
        (e.status, e.code.as_str())
    }

    #[test]
    fn malformed_signatures_are_4xx() {
        let date = ("x-amz-date", "20130524T000000Z");
        let auth = |v: &str| ("authorization", v.to_string());
        let cases = [
            "AWS AKID:abc",
            "Bearer x",
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request",
            "AWS4-HMAC-SHA256 Credential=AK/20130525/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=00",
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3,SignedHeaders=host,Signature=00",
        ];
        for c in cases {
            let (a, v) = auth(c);
            let (status, _) = err(&[date, (a, &v)], &[]);
            assert_eq!(status, 400, "{c}");
        }
        let no_date = format!("AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,Signature={SIG}");
        assert_eq!(
            err(&[("authorization", &no_date)], &[]),
            (403, "AccessDenied")
        );
        assert_eq!(
            err(
                &[("authorization", &no_date)],
                &[("X-Amz-Algorithm", ALGORITHM)]
            ),
            (400, "InvalidArgument")
        );
        assert_eq!(
            err(&[], &[("X-Amz-Algorithm", ALGORITHM)]),
            (400, "AuthorizationQueryParametersError")
        );
        assert_eq!(
            err(&[], &[("AWSAccessKeyId", "x")]),
            (400, "InvalidRequest")
        );
    }

    #[test]
    fn presign_expiry_is_bounded() {
        let base = [
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", "AK/20130524/us-east-1/s3/aws4_request"),
            ("X-Amz-Date", "20130524T000000Z"),
            ("X-Amz-SignedHeaders", "host"),
            ("X-Amz-Signature", SIG),
        ];
        for bad in ["0", "604801", "-1", "x"] {
            let mut q = base.to_vec();
            q.push(("X-Amz-Expires", bad));
            assert_eq!(
                err(&[], &q),
                (400, "AuthorizationQueryParametersError"),
                "{bad}"
            );
        }
    }
}
