//! Store objects are authenticated: whoever else can write the store bucket (a tenant who
//! created it first, a pass-through `PUT` from before the sidecar refused those) cannot make
//! a replica serve hashes it did not compute, nor hold a lease it did not take.
//!
//! Every object is its body followed by `HMAC-SHA256(key, name ‖ 0 ‖ body)`, `name` being
//! the object's key in the store bucket (so an object copied under another name is no
//! good either). The key is `store.key`, or derived from the sidecar's own secret: every
//! replica sharing the configuration shares it; rotating it makes old entries misses.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const MAC_LEN: usize = 32;

#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl SealKey {
    /// `store.key` when set, else a key derived from the sidecar's secret access key.
    pub fn new(store_key: &str, sidecar_secret: &str) -> SealKey {
        let (key, label) = match store_key {
            "" => (
                sidecar_secret,
                "s3torrent store key from the sidecar secret, v1",
            ),
            k => (k, "s3torrent store key, v1"),
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
        mac.update(label.as_bytes());
        SealKey(mac.finalize().into_bytes().into())
    }

    /// A key of its own for `purpose`.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(b"derived for: ");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn mac(&self, name: &str, body: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// `body` as stored under `name`.
    pub fn seal(&self, name: &str, mut body: Vec<u8>) -> Vec<u8> {
        let mac = self.mac(name, &body);
        body.extend_from_slice(&mac);
        body
    }

    /// The body of what is stored under `name`, if this key sealed it there.
    pub fn open<'a>(&self, name: &str, stored: &'a [u8]) -> Option<&'a [u8]> {
        let split = stored.len().checked_sub(MAC_LEN)?;
        let (body, mac) = stored.split_at(split);
        bool::from(self.mac(name, body).ct_eq(mac)).then_some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_key_under_this_name_opens_it() {
        let key = SealKey::new("", "sidecar secret");
        let sealed = key.seal("p/b/abc", b"entry".to_vec());
        assert_eq!(key.open("p/b/abc", &sealed), Some(&b"entry"[..]));
        assert_eq!(key.open("p/b/abd", &sealed), None, "another name");
        let mut forged = sealed.clone();
        forged[0] ^= 1;
        assert_eq!(key.open("p/b/abc", &forged), None, "another body");
        assert_eq!(key.open("p/b/abc", &sealed[..10]), None, "truncated");
        assert_eq!(key.open("p/b/abc", b""), None);
        let other = SealKey::new("", "another secret");
        assert_eq!(other.open("p/b/abc", &sealed), None, "another sidecar");
        let configured = SealKey::new("store key", "sidecar secret");
        assert_eq!(configured.open("p/b/abc", &sealed), None, "store.key wins");
    }
}
