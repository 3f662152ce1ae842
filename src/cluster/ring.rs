//! Rendezvous (highest-random-weight) hashing: the owner of a key is the live member whose
//! hash with it is highest. Every replica with the same view picks the same owner; when a
//! member leaves only its keys move, and a member that joins takes about 1/N of them.

use sha2::{Digest, Sha256};

use super::member::Member;

/// The member that owns `key` (`None` for no members).
pub fn owner<'a>(members: &'a [Member], key: &[u8]) -> Option<&'a Member> {
    members
        .iter()
        .max_by_key(|m| (weight(&m.name, key), &m.name))
}

fn weight(name: &str, key: &[u8]) -> u64 {
    let mut h = Sha256::new();
    h.update((name.len() as u64).to_be_bytes());
    h.update(name.as_bytes());
    h.update(key);
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<Member> {
        (0..n)
            .map(|i| Member {
                name: format!("pod-{i}"),
                ip: "10.0.0.1".parse().unwrap(),
                cluster_port: 7881,
                server_port: 9000,
                at: 1,
            })
            .collect()
    }

    fn owners(m: &[Member]) -> Vec<String> {
        (0..3000u32)
            .map(|k| owner(m, &k.to_be_bytes()).unwrap().name.clone())
            .collect()
    }

    #[test]
    fn keys_spread_evenly_and_only_a_leavers_keys_move() {
        let three = members(3);
        let before = owners(&three);
        for i in 0..3 {
            let n = before.iter().filter(|o| **o == format!("pod-{i}")).count();
            assert!((800..1200).contains(&n), "pod-{i}: {n} of 3000");
        }
        let two: Vec<Member> = three
            .iter()
            .filter(|m| m.name != "pod-1")
            .cloned()
            .collect();
        let after = owners(&two);
        for (b, a) in before.iter().zip(&after) {
            if b != "pod-1" {
                assert_eq!(a, b, "a key of a member that stayed moved");
            }
        }
        // Order of the view does not matter.
        let mut reversed = three.clone();
        reversed.reverse();
        assert_eq!(owners(&reversed), before);
        assert!(owner(&[], b"k").is_none());
    }
}
