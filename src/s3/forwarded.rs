//! Caller request headers that travel with the sidecar's own requests on the caller's behalf
//! (the probe as the caller, the fetch as the sidecar), so the backend applies the same
//! request-payer and bucket-owner rules it would have applied to the caller.

use http::HeaderMap;

/// The headers that are forwarded, lower-case.
pub const NAMES: [&str; 2] = ["x-amz-request-payer", "x-amz-expected-bucket-owner"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Forwarded(Vec<(&'static str, String)>);

impl Forwarded {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Forwarded(
            NAMES
                .iter()
                .filter_map(|&name| {
                    let value = headers.get(name)?.to_str().ok()?;
                    Some((name, value.to_string()))
                })
                .collect(),
        )
    }

    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_headers_travel() {
        let mut h = HeaderMap::new();
        h.insert("x-amz-request-payer", "requester".parse().unwrap());
        h.insert("x-amz-date", "20130524T000000Z".parse().unwrap());
        let f = Forwarded::from_headers(&h);
        assert_eq!(f.pairs(), vec![("x-amz-request-payer", "requester")]);
    }
}
