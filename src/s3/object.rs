//! Which object a request names, and how to name it again to the backend or in a web seed.

use super::uri::{encode, encode_path};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

impl ObjectRef {
    /// The object at the version the backend reported, when the request named none: what the
    /// caller was authorized for, so nothing built on it can later reach other bytes.
    pub fn pinned_to(&self, reported: Option<&str>) -> ObjectRef {
        ObjectRef {
            version_id: self.version_id.clone().or(reported.map(str::to_string)),
            ..self.clone()
        }
    }

    /// `/{bucket}/{key}[?versionId=…]`, path-style and byte-exact: keys such as `a/../b`
    /// reach the backend as the key they are.
    pub fn path_and_query(&self) -> String {
        let mut path = format!("/{}/{}", encode(&self.bucket), encode_path(&self.key));
        if let Some(v) = &self.version_id {
            path.push_str("?versionId=");
            path.push_str(&encode(v));
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_byte_exact_and_versions_travel() {
        let o = ObjectRef {
            bucket: "b".into(),
            key: "a/../b c+ü".into(),
            version_id: Some("v+1".into()),
        };
        assert_eq!(o.path_and_query(), "/b/a/../b%20c%2B%C3%BC?versionId=v%2B1");
        assert_eq!(
            o.pinned_to(Some("other")).version_id.as_deref(),
            Some("v+1")
        );
        let current = ObjectRef {
            version_id: None,
            ..o
        };
        assert_eq!(
            current.pinned_to(Some("v7")).version_id.as_deref(),
            Some("v7")
        );
    }
}
