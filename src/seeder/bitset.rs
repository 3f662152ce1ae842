//! A fixed-size set of piece indices: one bit each, so a peer's view of a large torrent
//! costs pieces / 8 bytes.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitSet {
    words: Vec<u64>,
    len: u32,
}

impl BitSet {
    pub fn new(len: u32) -> BitSet {
        BitSet {
            words: vec![0; (len as usize).div_ceil(64)],
            len,
        }
    }

    /// From a BEP 3 bitfield (high bit first); `None` if its length or spare bits are wrong.
    pub fn from_bitfield(bytes: &[u8], len: u32) -> Option<BitSet> {
        if bytes.len() != (len as usize).div_ceil(8) {
            return None;
        }
        let mut b = BitSet::new(len);
        for i in 0..bytes.len() as u32 * 8 {
            if bytes[(i / 8) as usize] & (0x80 >> (i % 8)) != 0 {
                if i >= len {
                    return None;
                }
                b.set(i);
            }
        }
        Some(b)
    }

    pub fn set(&mut self, i: u32) {
        if i < self.len {
            self.words[(i / 64) as usize] |= 1 << (i % 64);
        }
    }

    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    pub fn count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// How many of these are not in `other` (of the same length).
    pub fn count_not_in(&self, other: &BitSet) -> u32 {
        self.words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| (a & !b).count_ones())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfields_are_read_high_bit_first_and_checked() {
        let b = BitSet::from_bitfield(&[0b1010_0000], 3).unwrap();
        assert!(b.get(0) && !b.get(1) && b.get(2));
        assert_eq!(b.count(), 2);
        assert!(
            BitSet::from_bitfield(&[0b0001_0000], 3).is_none(),
            "spare bit set"
        );
        assert!(BitSet::from_bitfield(&[0, 0], 3).is_none(), "wrong length");
        let mut wide = BitSet::new(70);
        (0..75).for_each(|i| wide.set(i));
        assert_eq!(wide.count(), 70, "bits past the end are not set");
        let mut some = BitSet::new(70);
        [1, 64, 69].iter().for_each(|&i| some.set(i));
        assert_eq!(wide.count_not_in(&some), 67);
        assert_eq!(some.count_not_in(&wide), 0);
    }
}
