//! Parsing announce and scrape queries. `info_hash` and `peer_id` are 20 raw bytes,
//! percent-encoded, so the query is decoded to bytes, not text.

use crate::s3::uri::decode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    None,
    Started,
    Completed,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    pub port: u16,
    pub left: u64,
    pub event: Event,
    pub numwant: Option<usize>,
    pub compact: bool,
}

/// Longest query accepted: a real announce is a few hundred bytes.
const MAX_QUERY: usize = 4096;

/// A decoded query parameter: raw bytes, since `info_hash` is not text.
type Param = (Vec<u8>, Vec<u8>);

fn pairs(query: &str) -> Result<Vec<Param>, &'static str> {
    if query.len() > MAX_QUERY {
        return Err("query too long");
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            // Form encoding: `+` is a space in a query (some clients send it for peer ids).
            let plus = |s: &str| s.replace('+', "%20");
            Ok((
                decode(&plus(k)).map_err(|_| "malformed percent-encoding")?,
                decode(&plus(v)).map_err(|_| "malformed percent-encoding")?,
            ))
        })
        .collect()
}

fn twenty(v: &[u8], name: &'static str) -> Result<[u8; 20], &'static str> {
    v.try_into().map_err(|_| match name {
        "info_hash" => "invalid info_hash: must be 20 bytes",
        _ => "invalid peer_id: must be 20 bytes",
    })
}

fn number<T: std::str::FromStr>(v: &[u8], err: &'static str) -> Result<T, &'static str> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(err)
}

pub fn parse_announce(query: &str) -> Result<Announce, &'static str> {
    let pairs = pairs(query)?;
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    };
    let info_hash = twenty(get("info_hash").ok_or("missing info_hash")?, "info_hash")?;
    let peer_id = twenty(get("peer_id").ok_or("missing peer_id")?, "peer_id")?;
    let port: u16 = number(get("port").ok_or("missing port")?, "invalid port")?;
    if port == 0 {
        return Err("invalid port");
    }
    let left: u64 = match get("left") {
        Some(v) => number(v, "invalid left")?,
        None => return Err("missing left"),
    };
    let event = match get("event") {
        None | Some(b"") | Some(b"empty") => Event::None,
        Some(b"started") => Event::Started,
        Some(b"completed") => Event::Completed,
        Some(b"stopped") => Event::Stopped,
        Some(_) => return Err("invalid event"),
    };
    let numwant = get("numwant")
        .map(|v| number(v, "invalid numwant"))
        .transpose()?;
    let compact = get("compact") != Some(b"0");
    Ok(Announce {
        info_hash,
        peer_id,
        port,
        left,
        event,
        numwant,
        compact,
    })
}

pub fn parse_scrape(query: &str) -> Result<Vec<[u8; 20]>, &'static str> {
    pairs(query)?
        .into_iter()
        .filter(|(k, _)| k == b"info_hash")
        .map(|(_, v)| twenty(&v, "info_hash"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "%01%02%03%04%05%06%07%08%09%0A%0B%0C%0D%0E%0F%10%11%12%13%14";

    #[test]
    fn parses_a_typical_announce() {
        let q = format!("info_hash={HASH}&peer_id=-TR3000-abcdefghijkl&port=51413&uploaded=0&downloaded=0&left=1000&event=started&numwant=80&compact=1");
        let a = parse_announce(&q).unwrap();
        assert_eq!(a.info_hash[0], 1);
        assert_eq!(&a.peer_id, b"-TR3000-abcdefghijkl");
        assert_eq!(
            (a.port, a.left, a.event, a.numwant, a.compact),
            (51413, 1000, Event::Started, Some(80), true)
        );
    }

    #[test]
    fn refuses_bad_announces_with_reasons() {
        let ok = format!("info_hash={HASH}&peer_id=-TR3000-abcdefghijkl&port=1&left=0");
        assert!(parse_announce(&ok).is_ok());
        let cases = [
            (
                ok.replace(HASH, "%01%02"),
                "invalid info_hash: must be 20 bytes",
            ),
            (
                ok.replace(&format!("info_hash={HASH}&"), ""),
                "missing info_hash",
            ),
            (
                ok.replace("peer_id=-TR3000-abcdefghijkl", "peer_id=short"),
                "invalid peer_id: must be 20 bytes",
            ),
            (ok.replace("port=1", "port=0"), "invalid port"),
            (ok.replace("port=1", "port=70000"), "invalid port"),
            (ok.replace("&left=0", ""), "missing left"),
            (format!("{ok}&event=bogus"), "invalid event"),
            (ok.replace(HASH, "%zz"), "malformed percent-encoding"),
            ("x".repeat(5000), "query too long"),
        ];
        for (q, reason) in cases {
            assert_eq!(parse_announce(&q), Err(reason), "{q}");
        }
    }

    #[test]
    fn scrape_takes_repeated_hashes() {
        let q = format!("info_hash={HASH}&info_hash={HASH}");
        assert_eq!(parse_scrape(&q).unwrap().len(), 2);
        assert!(parse_scrape("info_hash=%01").is_err());
        assert!(parse_scrape("").unwrap().is_empty());
    }
}
