//! How long each piece is: `auto` or a fixed power of two.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const MIN_PIECE_LENGTH: u64 = 16 * 1024;
pub const MAX_PIECE_LENGTH: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PieceLength {
    /// Grows with the object so the piece count stays in the low thousands.
    #[default]
    Auto,
    Fixed(u64),
}

/// Object-size thresholds of libtorrent's `create_torrent` table: up to `AUTO_TABLE[i]`
/// bytes the piece is `16 KiB << i` (256 KiB up to ~687 MB, 512 KiB up to ~2.75 GB, ...).
/// Following a common client keeps our torrents shaped like the ones users already make.
const AUTO_TABLE: [u64; 10] = [
    2_684_355,
    10_737_418,
    42_949_673,
    171_798_692,
    687_194_767,
    2_748_779_069,
    10_995_116_278,
    43_980_465_111,
    175_921_860_444,
    703_687_441_777,
];

impl PieceLength {
    /// The piece length for an object of `length` bytes.
    pub fn for_length(self, length: u64) -> u64 {
        match self {
            PieceLength::Fixed(n) => n,
            PieceLength::Auto => {
                let step = AUTO_TABLE
                    .iter()
                    .position(|&limit| length <= limit)
                    .unwrap_or(AUTO_TABLE.len());
                MIN_PIECE_LENGTH << step
            }
        }
    }

    pub fn fixed(n: u64) -> Result<PieceLength, String> {
        if n.is_power_of_two() && (MIN_PIECE_LENGTH..=MAX_PIECE_LENGTH).contains(&n) {
            Ok(PieceLength::Fixed(n))
        } else {
            Err(format!(
                "invalid piece_length {n}: expected \"auto\" or a power of two from {MIN_PIECE_LENGTH} to {MAX_PIECE_LENGTH}"
            ))
        }
    }
}

impl Serialize for PieceLength {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PieceLength::Auto => s.serialize_str("auto"),
            PieceLength::Fixed(n) => s.serialize_u64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for PieceLength {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(i64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(s) if s == "auto" => Ok(PieceLength::Auto),
            Raw::Text(s) => Err(serde::de::Error::custom(format!(
                "invalid piece_length {s:?}: expected \"auto\" or a power of two from {MIN_PIECE_LENGTH} to {MAX_PIECE_LENGTH}"
            ))),
            Raw::Number(n) => {
                PieceLength::fixed(u64::try_from(n).unwrap_or(0)).map_err(serde::de::Error::custom)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_the_table() {
        let auto = PieceLength::Auto;
        assert_eq!(auto.for_length(1), 16 * 1024);
        assert_eq!(auto.for_length(2_684_355), 16 * 1024);
        assert_eq!(auto.for_length(2_684_356), 32 * 1024);
        assert_eq!(auto.for_length(20 << 20), 64 * 1024);
        assert_eq!(auto.for_length(256 << 20), 256 * 1024);
        assert_eq!(auto.for_length(1 << 30), 512 * 1024);
        assert_eq!(auto.for_length(5 << 30), 1024 * 1024);
        assert_eq!(auto.for_length(u64::MAX), (16 * 1024) << 10);
    }

    #[test]
    fn auto_keeps_piece_count_in_low_thousands() {
        for exp in 22..=33 {
            let len = 1u64 << exp;
            let pieces = len.div_ceil(PieceLength::Auto.for_length(len));
            assert!((100..=10_500).contains(&pieces), "{len}: {pieces}");
        }
    }

    #[test]
    fn fixed_must_be_a_bounded_power_of_two() {
        assert_eq!(PieceLength::fixed(262_144), Ok(PieceLength::Fixed(262_144)));
        assert!(PieceLength::fixed(16_383).is_err());
        assert!(PieceLength::fixed(8_192).is_err());
        assert!(PieceLength::fixed(300_000).is_err());
        assert!(PieceLength::fixed(128 << 20).is_err());
    }
}
