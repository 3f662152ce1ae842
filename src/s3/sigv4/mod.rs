//! AWS Signature Version 4, both directions: [`verify`] checks callers' signatures (header
//! and presigned forms; `parse` reads them, `canonical` rebuilds what was signed), [`sign`]
//! signs the sidecar's own requests with `aws-sigv4`.

mod canonical;
mod parse;
pub mod sign;
mod verify;

pub use parse::SignatureForm;
pub use sign::{presign_url, sign_headers, sign_headers_with_payload, SigningKey, EMPTY_SHA256};
pub use verify::{Caller, SignedRequest, Verifier, MAX_PRESIGN_EXPIRES, MAX_SKEW};

#[cfg(test)]
mod tests;
