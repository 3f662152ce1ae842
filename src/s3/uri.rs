//! Percent-encoding exactly as S3 and SigV4 define it.
//!
//! S3 keys are arbitrary UTF-8, so both directions must be byte-exact: a key is decoded once
//! from the request path (`+` stays a plus, `%2F` becomes `/`), and re-encoded with the
//! SigV4 "URI encode" rule (everything but `A-Z a-z 0-9 - . _ ~` escaped, upper-case hex).

use percent_encoding::{
    percent_decode, percent_encode, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC,
};

/// SigV4 `UriEncode` set: every byte except the RFC 3986 unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Same, but `/` stays literal: the rule for object paths.
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// Encodes a query-string name or value, or a single path segment.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Encodes an object key for use in a path, keeping `/` literal.
pub fn encode_path(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED_AND_SLASH).to_string()
}

/// Encodes raw path bytes (which need not be UTF-8), keeping `/` literal.
pub fn encode_path_bytes(b: &[u8]) -> String {
    percent_encode(b, UNRESERVED_AND_SLASH).to_string()
}

/// Decodes `%XX` escapes; `+` is left alone (in S3 paths it is a literal plus).
/// Malformed escapes (`%G1`, a trailing `%`) are an error rather than passed through,
/// because two different raw paths must never name the same key.
pub fn decode(s: &str) -> Result<Vec<u8>, InvalidEncoding> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(off) = bytes[i..].iter().position(|&b| b == b'%') {
        let at = i + off;
        let ok = bytes.len() >= at + 3
            && bytes[at + 1].is_ascii_hexdigit()
            && bytes[at + 2].is_ascii_hexdigit();
        if !ok {
            return Err(InvalidEncoding);
        }
        i = at + 3;
    }
    Ok(percent_decode(bytes).collect())
}

/// Decodes to a UTF-8 string (S3 keys, bucket names and query values are UTF-8).
pub fn decode_utf8(s: &str) -> Result<String, InvalidEncoding> {
    String::from_utf8(decode(s)?).map_err(|_| InvalidEncoding)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidEncoding;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_sigv4() {
        assert_eq!(encode("a b+c/d~e"), "a%20b%2Bc%2Fd~e");
        assert_eq!(encode_path("dir/a b+ü.txt"), "dir/a%20b%2B%C3%BC.txt");
        assert_eq!(encode("*"), "%2A");
    }

    #[test]
    fn decodes_plus_literally_and_rejects_bad_escapes() {
        assert_eq!(decode_utf8("a+b%20c%2Fd").unwrap(), "a+b c/d");
        assert_eq!(decode_utf8("%C3%BC").unwrap(), "ü");
        assert_eq!(decode("%G1"), Err(InvalidEncoding));
        assert_eq!(decode("abc%"), Err(InvalidEncoding));
        assert_eq!(decode("%4"), Err(InvalidEncoding));
        assert_eq!(decode_utf8("%FF"), Err(InvalidEncoding));
    }

    #[test]
    fn round_trips() {
        for key in ["a", "with space", "ü/ß/日本", "100%", "a+b", "x/../y"] {
            assert_eq!(decode_utf8(&encode_path(key)).unwrap(), key);
        }
    }
}

/// Splits a raw query string into decoded `(name, value)` pairs, in order. A parameter
/// without `=` has an empty value, as S3 treats `?torrent` and `?torrent=` alike.
pub fn query_pairs(raw: &str) -> Result<Vec<(String, String)>, InvalidEncoding> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode_utf8(name)?, decode_utf8(value)?))
        })
        .collect()
}

#[cfg(test)]
mod query_tests {
    use super::*;

    #[test]
    fn splits_and_decodes() {
        assert_eq!(
            query_pairs("versionId=a%2Bb&torrent&x=").unwrap(),
            vec![
                ("versionId".into(), "a+b".into()),
                ("torrent".into(), "".into()),
                ("x".into(), "".into())
            ]
        );
        assert!(query_pairs("a=%zz").is_err());
        assert_eq!(query_pairs("").unwrap(), vec![]);
    }
}
