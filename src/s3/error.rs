//! S3-style errors: every failure the sidecar itself answers is an [`S3Error`], rendered as
//! `<Error><Code/><Message/><Resource/><RequestId/></Error>` with the matching status. Codes
//! are a closed enum, so a typo cannot reach a client and each code has one usual status.

use std::fmt;

macro_rules! codes {
    ($($code:ident = $status:literal),* $(,)?) => {
        /// The S3 error codes the sidecar answers with, each with the status S3 gives it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum Code {
            $($code),*
        }

        impl Code {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$code => stringify!($code)),*
                }
            }

            /// The status S3 answers with this code.
            pub fn status(self) -> u16 {
                match self {
                    $(Code::$code => $status),*
                }
            }

            /// A code reported by the backend, if it is one we know.
            pub fn parse(s: &str) -> Option<Code> {
                match s {
                    $(stringify!($code) => Some(Code::$code),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    AccessDenied = 403,
    AuthorizationHeaderMalformed = 400,
    AuthorizationQueryParametersError = 400,
    InternalError = 500,
    InvalidAccessKeyId = 403,
    InvalidArgument = 400,
    InvalidObjectState = 403,
    InvalidRequest = 400,
    InvalidURI = 400,
    KeyTooLongError = 400,
    MethodNotAllowed = 405,
    NoSuchBucket = 404,
    NoSuchKey = 404,
    NoSuchVersion = 404,
    NotImplemented = 501,
    PermanentRedirect = 301,
    RequestTimeTooSkewed = 403,
    ServiceUnavailable = 503,
    SignatureDoesNotMatch = 403,
    SlowDown = 503,
}

impl Code {
    /// The code S3 uses for a bare status, when the backend gave none we know.
    pub fn for_status(status: u16) -> Code {
        match status {
            301 | 307 => Code::PermanentRedirect,
            403 => Code::AccessDenied,
            404 => Code::NoSuchKey,
            405 => Code::MethodNotAllowed,
            s if s >= 500 => Code::ServiceUnavailable,
            _ => Code::InvalidRequest,
        }
    }

    /// S3's own wording, for when the backend said nothing more.
    pub fn default_message(self) -> &'static str {
        match self {
            Code::AccessDenied => "Access Denied",
            Code::NoSuchKey => "The specified key does not exist.",
            Code::NoSuchBucket => "The specified bucket does not exist",
            Code::NoSuchVersion => "The specified version does not exist.",
            Code::PermanentRedirect => {
                "The bucket must be addressed using the specified endpoint."
            }
            Code::InvalidURI => "Couldn't parse the specified URI.",
            Code::MethodNotAllowed => "The specified method is not allowed against this resource.",
            Code::SignatureDoesNotMatch => "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
            Code::InvalidAccessKeyId => "The AWS Access Key Id you provided does not exist in our records.",
            Code::SlowDown => "Please reduce your request rate.",
            Code::ServiceUnavailable => "The service is unavailable. Please retry.",
            _ => "The request could not be handled.",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    pub status: u16,
    pub code: Code,
    pub message: String,
    /// Extra headers a client needs to act on the error (e.g. `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
}

impl S3Error {
    /// An error with the code's usual status.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        S3Error {
            status: code.status(),
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// An error in S3's own words for the code.
    pub fn of(code: Code) -> Self {
        Self::new(code, code.default_message())
    }

    /// The same error under another status (a backend's verdict keeps the backend's status).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidRequest, message)
    }

    pub fn invalid_uri() -> Self {
        Self::of(Code::InvalidURI)
    }

    pub fn method_not_allowed() -> Self {
        Self::of(Code::MethodNotAllowed)
    }

    /// The sidecar is at its limit: retryable after a second.
    pub fn slow_down() -> Self {
        Self::of(Code::SlowDown).with_header("retry-after", "1")
    }

    /// The backend could not be reached or answered 5xx: retryable.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(Code::ServiceUnavailable, message)
    }

    /// The backend broke the exchange (reset, short body, missing headers): a 502 under S3's
    /// retryable `InternalError` code, so SDKs retry it.
    pub fn upstream_broke(message: impl Into<String>) -> Self {
        Self::new(Code::InternalError, message).with_status(502)
    }

    /// A fault of the sidecar's own.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::InternalError, message)
    }

    /// The backend's verdict on a request made as a caller, under our request id: its code
    /// (when we know it; otherwise the status names it, never a guess), message and status;
    /// a 5xx is retryable.
    pub fn backend_refusal(status: u16, body: &[u8]) -> Self {
        if status >= 500 {
            return S3Error::service_unavailable(format!(
                "The backend answered {status}. Please retry."
            ));
        }
        let detail = parse_upstream_error(body);
        let code = detail
            .as_ref()
            .and_then(|(code, _)| Code::parse(code))
            .unwrap_or_else(|| Code::for_status(status));
        let message = match detail {
            Some((_, message)) if !message.is_empty() => message,
            _ if code == Code::InvalidRequest => {
                format!("The backend refused the request ({status}).")
            }
            _ => code.default_message().to_string(),
        };
        S3Error::new(code, message).with_status(status)
    }

    pub fn authorization_malformed(why: impl fmt::Display) -> Self {
        Self::new(
            Code::AuthorizationHeaderMalformed,
            format!("The authorization header is malformed; {why}"),
        )
    }
    /// The XML body. `resource` is the request path as the caller sent it.
    pub fn to_xml(&self, resource: &str, request_id: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
            self.code,
            xml_escape(&self.message),
            xml_escape(resource),
            xml_escape(request_id)
        )
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for S3Error {}

/// A single flight's task that ended without a result (a panic) fails its waiters so.
impl From<crate::common::flight::Ended> for S3Error {
    fn from(_: crate::common::flight::Ended) -> Self {
        S3Error::internal("the generation task ended without a result")
    }
}

pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry most control characters even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Pulls `<Code>` and `<Message>` out of an S3 error body from the backend, so its verdict
/// reaches the caller under our request id. Tolerant: S3 error bodies are flat and small.
pub fn parse_upstream_error(body: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let code = element(text, "Code")?;
    let message = element(text, "Message").unwrap_or_default();
    Some((code, message))
}

fn element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    Some(xml_unescape(&text[start..end]))
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_escaped_xml() {
        let e = S3Error::new(Code::NoSuchKey, "The <key> & more");
        assert_eq!(
            e.to_xml("/b/a&b", "REQ1"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The &lt;key&gt; &amp; more</Message><Resource>/b/a&amp;b</Resource><RequestId>REQ1</RequestId></Error>"
        );
    }

    #[test]
    fn codes_know_their_status_and_name() {
        assert_eq!(Code::parse("NoSuchBucket"), Some(Code::NoSuchBucket));
        assert_eq!(Code::NoSuchBucket.status(), 404);
        assert_eq!(Code::parse("Nonsense"), None);
        assert_eq!(Code::for_status(404), Code::NoSuchKey);
        assert_eq!(Code::for_status(400), Code::InvalidRequest);
        let e = S3Error::upstream_broke("x");
        assert_eq!((e.status, e.code.as_str()), (502, "InternalError"));
    }

    #[test]
    fn parses_backend_errors() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>x</BucketName></Error>";
        assert_eq!(
            parse_upstream_error(body),
            Some((
                "NoSuchBucket".into(),
                "The specified bucket does not exist".into()
            ))
        );
        assert_eq!(parse_upstream_error(b"<html>oops</html>"), None);
    }
}
