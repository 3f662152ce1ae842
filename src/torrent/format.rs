//! Which BitTorrent metadata a torrent carries: v1 (BEP 3, SHA-1 pieces), v2 (BEP 52,
//! SHA-256 Merkle trees), or both in one `info` (hybrid, so v1 and v2 clients share a swarm).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Every client takes it; the default.
    #[default]
    V1,
    Hybrid,
    V2,
}

impl Format {
    pub fn has_v1(self) -> bool {
        matches!(self, Format::V1 | Format::Hybrid)
    }

    pub fn has_v2(self) -> bool {
        matches!(self, Format::V2 | Format::Hybrid)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::V1 => "v1",
            Format::Hybrid => "hybrid",
            Format::V2 => "v2",
        }
    }
}
