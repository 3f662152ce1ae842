//! Who the client is, as the backend should be told: the peer address, or — only behind a
//! configured trusted proxy — the chain that proxy reports. A client never gets to claim an
//! address of its own choosing in `X-Forwarded-For` or `Forwarded`.

use std::net::IpAddr;

use http::HeaderMap;

use crate::config::Cidr;

/// The client's own address: `peer`, or — when `peer` is a trusted proxy — the nearest
/// address in its `X-Forwarded-For` that is not itself a trusted proxy (what a client puts
/// at the left of the header is its own claim and is passed over for the proxies' entries).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let chain: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|a| a.trim().parse().ok())
        .collect();
    chain
        .iter()
        .rev()
        .copied()
        .find(|&ip| !is_trusted(ip))
        .or(chain.first().copied())
        .unwrap_or(peer)
}

/// The `X-Forwarded-For` and `Forwarded` values to send upstream for a request from `peer`.
pub fn forwarded_for(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> (String, String) {
    let node = match peer {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("\"[{ip}]\""),
    };
    if !trusted.iter().any(|c| c.contains(peer)) {
        return (peer.to_string(), format!("for={node}"));
    }
    let joined = |name: &str, sep: &str| {
        let prior: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!prior.is_empty()).then(|| prior.join(sep))
    };
    let xff = match joined("x-forwarded-for", ", ") {
        Some(prior) => format!("{prior}, {peer}"),
        None => peer.to_string(),
    };
    let fwd = match joined("forwarded", ", ") {
        Some(prior) => format!("{prior}, for={node}"),
        None => format!("for={node}"),
    };
    (xff, fwd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_nearest_untrusted_address_behind_trusted_proxies() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7, 10.0.0.9".parse().unwrap(),
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("203.0.113.7"));
        assert_eq!(
            client_ip(ip("198.51.100.1"), &h, &trusted),
            ip("198.51.100.1"),
            "an untrusted peer's header is not believed"
        );
        h.insert("x-forwarded-for", "10.1.1.1".parse().unwrap());
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("10.1.1.1"));
        h.insert("x-forwarded-for", "junk, 10.1.1.1".parse().unwrap());
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.1"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn blocks_contain_what_they_should() {
        let ten = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(ten.contains(ip("10.1.2.3")));
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(!ten.contains(ip("::1")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        for bad in ["10.0.0.0/33", "x/8", "10.0.0.0/-1", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn untrusted_clients_cannot_choose_their_address() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        h.insert("forwarded", "for=6.6.6.6".parse().unwrap());
        let (xff, fwd) = forwarded_for(ip("192.0.2.7"), &h, &[]);
        assert_eq!((xff.as_str(), fwd.as_str()), ("192.0.2.7", "for=192.0.2.7"));
        let trusted = [Cidr::parse("192.0.2.0/24").unwrap()];
        let (xff, fwd) = forwarded_for(ip("192.0.2.7"), &h, &trusted);
        assert_eq!(xff, "6.6.6.6, 192.0.2.7");
        assert_eq!(fwd, "for=6.6.6.6, for=192.0.2.7");
        let (_, fwd) = forwarded_for(ip("::1"), &HeaderMap::new(), &[]);
        assert_eq!(fwd, "for=\"[::1]\"");
    }
}
