//! What replicas say to each other, typed: one variant per message, encoded to and decoded
//! from a sealed [`Frame`] here and nowhere else, so a handler matches variants (every one)
//! instead of comparing kind strings.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bytes::Bytes;

use crate::s3::ObjectRef;
use crate::torrent::bencode::Value;

use super::frame::Frame;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A sibling served this torrent: what the tracker knows it by, and, when it seeds it,
    /// what seeding it takes.
    Torrent {
        ids: Vec<[u8; 20]>,
        seed: Option<Description>,
    },
    /// A peer announced to a sibling (its address travels along): the owner's tracker answers.
    Announce {
        query: String,
        ip: IpAddr,
    },
    Scrape {
        query: String,
    },
    /// The tracker's bencoded answer to an announce or scrape.
    Answer {
        body: Vec<u8>,
    },
    /// A peer connection relayed whole: the BitTorrent stream follows, after `head` (its
    /// handshake up to the infohash).
    Peer {
        info_hash: [u8; 20],
        head: [u8; 48],
    },
    /// An owner relayed a peer of a torrent it does not know: what seeding it takes, please
    /// (answered with `Torrent`).
    Describe {
        info_hash: [u8; 20],
    },
    /// A web-seed request handed to its owner over HTTP: the request it names.
    Webseed {
        what: String,
    },
}

/// What seeding a torrent takes: its `info` (which must hash to `info_hash`), each file's
/// object and ETag, and for v2 each file's piece layer (empty for a file of one piece).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub info_hash: [u8; 20],
    pub info: Bytes,
    pub files: Vec<(ObjectRef, String)>,
    pub layers: Vec<Bytes>,
}

impl Message {
    /// The frame kind, also the metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Torrent { .. } => "torrent",
            Message::Announce { .. } => "announce",
            Message::Scrape { .. } => "scrape",
            Message::Answer { .. } => "answer",
            Message::Peer { .. } => "peer",
            Message::Describe { .. } => "describe",
            Message::Webseed { .. } => "webseed",
        }
    }

    pub fn to_frame(&self) -> Frame {
        let frame = Frame::new(self.kind());
        match self {
            Message::Torrent { ids, seed } => {
                let ids = ids.iter().map(|id| Value::Bytes(id.to_vec())).collect();
                let frame = frame.with("ids", Value::List(ids));
                match seed {
                    Some(d) => d.add_to(frame),
                    None => frame,
                }
            }
            Message::Announce { query, ip } => frame
                .with_bytes("q", query.as_str())
                .with_bytes("ip", ip.to_string()),
            Message::Scrape { query } => frame.with_bytes("q", query.as_str()),
            Message::Answer { body } => frame.with_bytes("body", body.as_slice()),
            Message::Peer { info_hash, head } => frame
                .with_bytes("ih", info_hash.to_vec())
                .with_bytes("head", head.to_vec()),
            Message::Describe { info_hash } => frame.with_bytes("ih", info_hash.to_vec()),
            Message::Webseed { what } => frame.with_bytes("what", what.as_str()),
        }
    }

    /// The message a frame carries; `None` for an unknown kind or missing fields.
    pub fn from_frame(frame: &Frame) -> Option<Message> {
        let id = |name: &str| <[u8; 20]>::try_from(frame.bytes(name)?).ok();
        let text = |name: &str| frame.text(name).map(str::to_string);
        Some(match frame.kind.as_str() {
            "torrent" => Message::Torrent {
                ids: frame
                    .list("ids")?
                    .iter()
                    .map(|v| <[u8; 20]>::try_from(v.as_bytes()?).ok())
                    .collect::<Option<_>>()?,
                seed: Description::of_frame(frame),
            },
            "announce" => Message::Announce {
                query: text("q")?,
                ip: frame.text("ip")?.parse().ok()?,
            },
            "scrape" => Message::Scrape { query: text("q")? },
            "answer" => Message::Answer {
                body: frame.bytes("body")?.to_vec(),
            },
            "peer" => Message::Peer {
                info_hash: id("ih")?,
                head: <[u8; 48]>::try_from(frame.bytes("head")?).ok()?,
            },
            "describe" => Message::Describe {
                info_hash: id("ih")?,
            },
            "webseed" => Message::Webseed {
                what: text("what")?,
            },
            _ => return None,
        })
    }
}

impl Description {
    /// Roughly its size in a frame.
    pub fn size(&self) -> usize {
        let file = |(o, etag): &(ObjectRef, String)| {
            let version = o.version_id.as_ref().map_or(0, String::len);
            o.bucket.len() + o.key.len() + etag.len() + version + 32
        };
        let files: usize = self.files.iter().map(file).sum();
        let layers: usize = self.layers.iter().map(|l| l.len() + 8).sum();
        self.info.len() + files + layers
    }

    fn add_to(&self, frame: Frame) -> Frame {
        let files = self.files.iter().map(file_value).collect();
        let frame = frame
            .with_bytes("ih", self.info_hash.to_vec())
            .with_bytes("info", self.info.to_vec())
            .with("files", Value::List(files));
        match self.layers.is_empty() {
            true => frame,
            false => {
                let layers = self.layers.iter().map(|l| Value::Bytes(l.to_vec()));
                frame.with("layers", Value::List(layers.collect()))
            }
        }
    }

    fn of_frame(frame: &Frame) -> Option<Description> {
        let files = frame
            .list("files")?
            .iter()
            .map(file_of)
            .collect::<Option<Vec<_>>>()?;
        let layers = match frame.list("layers") {
            Some(list) => list
                .iter()
                .map(|l| Some(Bytes::copy_from_slice(l.as_bytes()?)))
                .collect::<Option<Vec<_>>>()?,
            None => Vec::new(),
        };
        Some(Description {
            info_hash: <[u8; 20]>::try_from(frame.bytes("ih")?).ok()?,
            info: Bytes::copy_from_slice(frame.bytes("info")?),
            files,
            layers,
        })
    }
}

fn file_value((o, etag): &(ObjectRef, String)) -> Value {
    let mut d = BTreeMap::new();
    d.insert(b"b".to_vec(), Value::bytes(o.bucket.as_bytes()));
    d.insert(b"k".to_vec(), Value::bytes(o.key.as_bytes()));
    d.insert(b"e".to_vec(), Value::bytes(etag.as_bytes()));
    if let Some(v) = &o.version_id {
        d.insert(b"v".to_vec(), Value::bytes(v.as_bytes()));
    }
    Value::Dict(d)
}

fn file_of(value: &Value) -> Option<(ObjectRef, String)> {
    let text = |name: &str| std::str::from_utf8(value.get(name)?.as_bytes()?).ok();
    let object = ObjectRef {
        bucket: text("b")?.to_string(),
        key: text("k")?.to_string(),
        version_id: text("v").map(str::to_string),
    };
    Some((object, text("e")?.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_survives_its_frame() {
        let object = ObjectRef {
            bucket: "b".into(),
            key: "k/ü".into(),
            version_id: Some("v1".into()),
        };
        let seed = Description {
            info_hash: [3; 20],
            info: Bytes::from_static(b"d4:name1:xe"),
            files: vec![(object, "\"e\"".into())],
            layers: vec![Bytes::from_static(&[9; 32]), Bytes::new()],
        };
        let messages = [
            Message::Torrent {
                ids: vec![[1; 20], [2; 20]],
                seed: Some(seed),
            },
            Message::Torrent {
                ids: vec![[1; 20]],
                seed: None,
            },
            Message::Announce {
                query: "info_hash=x".into(),
                ip: "2001:db8::1".parse().unwrap(),
            },
            Message::Scrape { query: "q".into() },
            Message::Answer { body: vec![0, 1] },
            Message::Peer {
                info_hash: [4; 20],
                head: [5; 48],
            },
            Message::Describe { info_hash: [6; 20] },
            Message::Webseed { what: "/x".into() },
        ];
        for m in messages {
            assert_eq!(Message::from_frame(&m.to_frame()).as_ref(), Some(&m));
        }
        let cut = Frame::new("peer").with_bytes("ih", vec![1; 20]);
        assert_eq!(Message::from_frame(&cut), None, "a field missing");
        assert_eq!(Message::from_frame(&Frame::new("other")), None);
    }
}
