//! The SigV4 canonical request and string to sign, with S3's rules: the path is
//! URI-encoded once and never normalized (`a/../b` is a key, not a path to resolve).

use sha2::{Digest, Sha256};

use crate::s3::uri::{decode, encode, encode_path_bytes};

use super::parse::{Scope, Signature, SignatureForm};
use super::SignedRequest;

/// `None` when a signed header is absent: the signature cannot match.
pub fn canonical_request(
    req: &SignedRequest<'_>,
    pairs: &[(String, String)],
    sig: &Signature,
    payload_hash: &str,
) -> Option<String> {
    let path = if req.path.is_empty() { "/" } else { req.path };
    let uri = encode_path_bytes(&decode(path).ok()?);

    let mut query: Vec<(String, String)> = pairs
        .iter()
        .filter(|(n, _)| !(sig.form == SignatureForm::Presigned && n == "X-Amz-Signature"))
        .map(|(n, v)| (encode(n), encode(v)))
        .collect();
    query.sort();
    let query: Vec<String> = query.iter().map(|(n, v)| format!("{n}={v}")).collect();

    let mut headers = String::new();
    for name in &sig.signed_headers {
        let values: Vec<String> = req
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        if values.is_empty() {
            return None;
        }
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&values.join(","));
        headers.push('\n');
    }

    Some(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        uri,
        query.join("&"),
        headers,
        sig.signed_headers.join(";"),
        payload_hash
    ))
}

pub fn string_to_sign(amz_date: &str, scope: &Scope, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{}\n{}\n{}",
        amz_date,
        scope.to_string_without_key(),
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// SigV4's "Trimall": trims spaces at both ends and folds runs of spaces to one. Only the
/// space character, as the specification and `aws-sigv4` have it: a tab inside a value is
/// kept (the fuzzer found `split_whitespace` folding it, which no signer here does).
fn collapse_spaces(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, part) in v
        .trim_matches(' ')
        .split(' ')
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::collapse_spaces;

    #[test]
    fn trimall_folds_spaces_only() {
        assert_eq!(collapse_spaces("  a   b  c "), "a b c");
        assert_eq!(collapse_spaces("a\t\tb"), "a\t\tb");
        assert_eq!(collapse_spaces(""), "");
    }
}
