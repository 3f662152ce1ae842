//! Caller request headers that travel with the sidecar's own requests on the caller's behalf
//! (the probe as the caller, the fetch as the sidecar), so the backend applies the same
//! request-payer and bucket-owner rules it would have applied to the caller; and, on the
//! probe, the client's address (`client_addr`), for `aws:SourceIp`-style policies.

use http::HeaderMap;

use super::sigv4::Caller;

/// The headers that are forwarded, lower-case.
pub const NAMES: [&str; 2] = ["x-amz-request-payer", "x-amz-expected-bucket-owner"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Forwarded {
    caller: Vec<(&'static str, String)>,
    /// `X-Forwarded-For` and `Forwarded` naming the client, for requests made as the caller.
    client: Vec<(&'static str, String)>,
}

impl Forwarded {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let caller = NAMES
            .iter()
            .filter_map(|&name| {
                let value = headers.get(name)?.to_str().ok()?;
                Some((name, value.to_string()))
            })
            .collect();
        Forwarded {
            caller,
            client: Vec::new(),
        }
    }

    /// Only what the caller's own signature covered: the sidecar re-signs these as the
    /// caller, and must not vouch for a header someone else added on the way.
    pub fn covered_by(mut self, caller: &Caller) -> Self {
        self.caller.retain(|(n, _)| caller.covers(n));
        self
    }

    /// Names the client (see `client_addr`) on the requests made as the caller.
    pub fn with_client(mut self, x_forwarded_for: String, forwarded: String) -> Self {
        self.client = vec![
            ("x-forwarded-for", x_forwarded_for),
            ("forwarded", forwarded),
        ];
        self
    }

    /// The caller's headers: for the sidecar's own fetch, which serves every waiter.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.caller.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    /// The caller's headers and the client's address: for the READ check made as the caller.
    pub fn probe_pairs(&self) -> Vec<(&str, &str)> {
        let client = self.client.iter().map(|(k, v)| (*k, v.as_str()));
        self.pairs().into_iter().chain(client).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_headers_of_a_signed_caller_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert("x-amz-request-payer", "requester".parse().unwrap());
        h.insert(
            "x-amz-expected-bucket-owner",
            "123456789012".parse().unwrap(),
        );
        let caller = Caller::Signed {
            access_key_id: "A".into(),
            secret_access_key: crate::config::Secret::new("s"),
            signed_headers: vec!["host".into(), "x-amz-request-payer".into()],
            valid_until: None,
        };
        let f = Forwarded::from_headers(&h).covered_by(&caller);
        assert_eq!(f.pairs(), vec![("x-amz-request-payer", "requester")]);
        let anonymous = Forwarded::from_headers(&h).covered_by(&Caller::Anonymous);
        assert_eq!(anonymous.pairs().len(), 2);
    }

    #[test]
    fn only_the_named_headers_travel() {
        let mut h = HeaderMap::new();
        h.insert("x-amz-request-payer", "requester".parse().unwrap());
        h.insert("x-amz-date", "20130524T000000Z".parse().unwrap());
        let f = Forwarded::from_headers(&h);
        assert_eq!(f.pairs(), vec![("x-amz-request-payer", "requester")]);
    }
}
