//! One replica as its siblings know it: its name, its pod IP and ports, and when it last
//! said it was alive. Kept as a sealed record in the store bucket.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::torrent::bencode::{self, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub ip: IpAddr,
    /// The sibling port.
    pub cluster_port: u16,
    /// The S3 port (web-seed requests are handed over there).
    pub server_port: u16,
    /// Unix seconds of its last heartbeat; 0: it left.
    pub at: u64,
}

impl Member {
    pub fn cluster_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.cluster_port)
    }

    pub fn server_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.server_port)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut d = BTreeMap::new();
        d.insert(b"name".to_vec(), Value::bytes(self.name.as_bytes()));
        d.insert(b"ip".to_vec(), Value::bytes(self.ip.to_string()));
        d.insert(
            b"cluster port".to_vec(),
            Value::Int(self.cluster_port.into()),
        );
        d.insert(b"server port".to_vec(), Value::Int(self.server_port.into()));
        d.insert(b"at".to_vec(), Value::Int(self.at as i64));
        Value::Dict(d).encode()
    }

    pub fn decode(bytes: &[u8]) -> Option<Member> {
        let v = bencode::decode(bytes).ok()?;
        let text = |k: &str| std::str::from_utf8(v.get(k)?.as_bytes()?).ok();
        let port = |k: &str| u16::try_from(v.get(k)?.as_int()?).ok();
        Some(Member {
            name: text("name")?.to_string(),
            ip: text("ip")?.parse().ok()?,
            cluster_port: port("cluster port")?,
            server_port: port("server port")?,
            at: u64::try_from(v.get("at")?.as_int()?).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_round_trips_and_garbage_is_none() {
        let m = Member {
            name: "s3torrent-0".into(),
            ip: "10.0.0.7".parse().unwrap(),
            cluster_port: 7881,
            server_port: 9000,
            at: 1_790_000_000,
        };
        assert_eq!(Member::decode(&m.encode()), Some(m));
        assert_eq!(Member::decode(b"d4:name1:xe"), None);
        assert_eq!(Member::decode(b"not bencode"), None);
    }
}
