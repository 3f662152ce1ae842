//! What the authorization probe learned about an object: the facts a torrent is built on and
//! cached under.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFacts {
    pub etag: String,
    pub length: u64,
    pub last_modified: Option<String>,
    /// The version the backend served (`x-amz-version-id`), when it keeps versions.
    pub version_id: Option<String>,
    /// The backend charged the caller (request payer): say so in the response.
    pub request_charged: bool,
}
