//! Configuration values that can be wrong on their own, each validated by its own
//! `Deserialize` so the TOML error names the key and the line.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// SigV4 presigned URLs live at most 7 days (S3's rule; `torrent.presign_expiry` too).
pub const MAX_PRESIGN_EXPIRES: u64 = 7 * 24 * 3600;

/// S3's bucket naming rules: 3–63 of `a-z 0-9 . -`, starting and ending alphanumeric. (Here,
/// with the other validated values, so configuration and S3 routing share one rule.)
pub fn is_bucket_name(name: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| alnum(b) || b == b'.' || b == b'-')
        && name.bytes().next().is_some_and(alnum)
        && name.bytes().last().is_some_and(alnum)
}

/// A duration, written as whole seconds (`30`) or with a unit (`"30s"`, `"15m"`, `"2h"`,
/// `"7d"`). Every duration in the configuration is one of these, named without a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seconds(pub u64);

impl Seconds {
    pub fn get(self) -> Duration {
        Duration::from_secs(self.0)
    }

    pub fn secs(self) -> u64 {
        self.0
    }

    fn parse(s: &str) -> Option<Seconds> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().ok()?;
        let scale = match unit.trim() {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return None,
        };
        n.checked_mul(scale).map(Seconds)
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d) {
            Ok(Raw::Int(n)) => Ok(Seconds(n)),
            Ok(Raw::Text(t)) => Seconds::parse(&t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid duration {t:?}: expected seconds (30) or a number with a unit: \"30s\", \"15m\", \"2h\", \"7d\""
                ))
            }),
            Err(_) => Err(serde::de::Error::custom(
                "invalid duration: expected seconds (30) or a string such as \"30s\", \"15m\", \"2h\", \"7d\"",
            )),
        }
    }
}

/// An absolute `http://` or `https://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct HttpUrl(String);

impl HttpUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for HttpUrl {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let ok = (s.starts_with("http://") || s.starts_with("https://"))
            && s.parse::<http::Uri>().is_ok_and(|u| u.host().is_some());
        match ok {
            true => Ok(HttpUrl(s)),
            false => Err(format!("{s:?} is not an http(s) URL")),
        }
    }
}

/// A base domain for virtual-hosted-style addressing, stored lower-case without a port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Domain(pub String);

impl TryFrom<String> for Domain {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let ok = !s.is_empty()
            && !s.starts_with('.')
            && !s.ends_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        match ok {
            true => Ok(Domain(s.to_ascii_lowercase())),
            false => Err(format!(
                "invalid domain {s:?}: expected a host name such as \"s3.example.com\" (no scheme, port or path)"
            )),
        }
    }
}

/// An announce URL (http, https or udp).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrackerUrl(pub String);

impl TryFrom<String> for TrackerUrl {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let ok = ["http://", "https://", "udp://"]
            .iter()
            .any(|p| s.starts_with(p) && s.len() > p.len())
            && !s.chars().any(char::is_whitespace);
        match ok {
            true => Ok(TrackerUrl(s)),
            false => Err(format!(
                "invalid tracker URL {s:?}: expected http://, https:// or udp://"
            )),
        }
    }
}

macro_rules! into_string {
    ($($t:ty),*) => {$(
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
    )*};
}

into_string!(HttpUrl, Domain, TrackerUrl);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_units() {
        assert_eq!(Seconds::parse("30"), Some(Seconds(30)));
        assert_eq!(Seconds::parse("30s"), Some(Seconds(30)));
        assert_eq!(Seconds::parse("15m"), Some(Seconds(900)));
        assert_eq!(Seconds::parse("2h"), Some(Seconds(7200)));
        assert_eq!(Seconds::parse("7d"), Some(Seconds(604_800)));
        for bad in ["", "s", "1w", "-1", "1.5h", "99999999999999999999d"] {
            assert_eq!(Seconds::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn urls_need_a_scheme_and_a_host() {
        assert!(HttpUrl::try_from("https://s3.example.com/x".to_string()).is_ok());
        for bad in ["s3.example.com", "ftp://h", "http://", "http:// spaced"] {
            assert!(HttpUrl::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }
}
