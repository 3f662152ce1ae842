//! MSE's Diffie-Hellman: the fixed 768-bit prime, generator 2, 160-bit private keys, every
//! number on the wire as 96 big-endian bytes.

use num_bigint::BigUint;
use rand::RngCore;

/// Bytes of a public key or shared secret on the wire.
pub const KEY_LEN: usize = 96;

/// The prime every MSE implementation uses.
const PRIME_HEX: &[u8] = b"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563";

fn prime() -> BigUint {
    BigUint::parse_bytes(PRIME_HEX, 16).expect("the MSE prime is hex")
}

pub struct KeyPair {
    private: BigUint,
    pub public: [u8; KEY_LEN],
}

impl KeyPair {
    pub fn generate() -> KeyPair {
        let mut bytes = [0u8; 20];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self::from_private(&bytes)
    }

    fn from_private(bytes: &[u8]) -> KeyPair {
        let private = BigUint::from_bytes_be(bytes);
        let public = BigUint::from(2u32).modpow(&private, &prime());
        KeyPair {
            public: to_wire(&public),
            private,
        }
    }

    /// The shared secret `S` with the peer's public key, or `None` for a key no honest peer
    /// sends (0, 1, P-1 or beyond P: the secret would be guessable).
    pub fn shared(&self, theirs: &[u8; KEY_LEN]) -> Option<[u8; KEY_LEN]> {
        let p = prime();
        let y = BigUint::from_bytes_be(theirs);
        let one = BigUint::from(1u32);
        if y <= one || y >= &p - &one {
            return None;
        }
        Some(to_wire(&y.modpow(&self.private, &p)))
    }
}

fn to_wire(n: &BigUint) -> [u8; KEY_LEN] {
    let bytes = n.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    out[KEY_LEN - bytes.len()..].copy_from_slice(&bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_reach_one_secret() {
        let (a, b) = (KeyPair::generate(), KeyPair::generate());
        let s = a.shared(&b.public).unwrap();
        assert_eq!(Some(s), b.shared(&a.public));
        assert_ne!(a.public, b.public);
    }

    #[test]
    fn the_public_key_of_one_is_two() {
        let k = KeyPair::from_private(&[1]);
        let mut two = [0u8; KEY_LEN];
        two[KEY_LEN - 1] = 2;
        assert_eq!(k.public, two);
    }

    #[test]
    fn degenerate_keys_are_refused() {
        let k = KeyPair::generate();
        let mut y = [0u8; KEY_LEN];
        assert!(k.shared(&y).is_none());
        y[KEY_LEN - 1] = 1;
        assert!(k.shared(&y).is_none());
        assert!(k.shared(&[0xff; KEY_LEN]).is_none());
        assert!(k.shared(&to_wire(&(prime() - 1u32))).is_none());
        y[KEY_LEN - 1] = 2;
        assert!(k.shared(&y).is_some());
    }
}
