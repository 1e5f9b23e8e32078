//! The key index: for every row of the bundle (by its ordinal, bundle order), whether it is the
//! first and whether it is the last row of its key in its target table. The platform repeats
//! workspace tables in every project, and later rows win: pass 2 writes only last rows (so
//! chunks are independent) and counts a row as updated unless it is the first of a key that was
//! not stored.
//!
//! Memory: built from one [`Entry`] per row, 16 bytes (96 bits of the key's SHA-256, 32 of
//! ordinal), sorted once; what the plan keeps is 2 bits per row. Two different keys of one table
//! share a hash with odds around n² / 2⁹⁷ (10⁷ rows: below 10⁻¹⁵).

use serde::{Deserialize, Serialize};

/// One row while the index is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Entry {
    /// The key's hash, with the target table's index mixed into its first word.
    pub hash: [u32; 3],
    /// The row's index in its table while scanning; its ordinal in the bundle once placed.
    pub ord: u32,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 16);

/// Marks an entry of rows that were checked again with another key column.
pub(super) const DEAD: u32 = u32::MAX;

impl Entry {
    pub fn new(hash: [u32; 3], row: u32) -> Self {
        Self { hash, ord: row }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyIndex {
    rows: u64,
    /// Two bits per row: first (bit 0), last (bit 1); base64 when serialized.
    #[serde(with = "base64_bytes")]
    bits: Vec<u8>,
}

impl KeyIndex {
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn bits(&self, ord: u64) -> u8 {
        let byte = usize::try_from(ord / 4).ok().and_then(|i| self.bits.get(i)).copied().unwrap_or(0);
        (byte >> ((ord % 4) * 2)) & 0b11
    }

    /// No earlier row of the bundle has this row's key in its table.
    pub fn is_first(&self, ord: u64) -> bool {
        self.bits(ord) & 1 != 0
    }

    /// No later row of the bundle has this row's key in its table.
    pub fn is_last(&self, ord: u64) -> bool {
        self.bits(ord) & 2 != 0
    }

    /// Sorts `entries` (ordinals placed, hashes mixed with their table) into the index, and
    /// counts the distinct keys of each table (`table_of` an ordinal's table, of `tables`).
    pub(super) fn build(
        entries: &mut [Entry],
        rows: u64,
        tables: usize,
        table_of: impl Fn(u32) -> usize,
    ) -> (Self, Vec<u64>) {
        entries.sort_unstable();
        let mut bits = vec![0u8; usize::try_from(rows.div_ceil(4)).unwrap_or(0)];
        let mut set = |ord: u32, bit: u8| {
            if let Some(b) = bits.get_mut(ord as usize / 4) {
                *b |= bit << ((ord % 4) * 2);
            }
        };
        let mut keys = vec![0u64; tables];
        for group in entries.chunk_by(|a, b| a.hash == b.hash) {
            let (Some(first), Some(last)) = (group.first(), group.last()) else { continue };
            set(first.ord, 1);
            set(last.ord, 2);
            if let Some(n) = keys.get_mut(table_of(first.ord)) {
                *n += 1;
            }
        }
        (Self { rows, bits }, keys)
    }
}

mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::import::rows::key_hash;

    /// Rows of (table, key) in bundle order → the index's (first, last) per row.
    fn flags(rows: &[(usize, &str)]) -> (Vec<(bool, bool)>, Vec<u64>) {
        let mut entries: Vec<Entry> = rows
            .iter()
            .enumerate()
            .map(|(i, (t, k))| {
                let mut e = Entry::new(key_hash(k), i as u32);
                e.hash[0] ^= *t as u32;
                e
            })
            .collect();
        let (index, keys) = KeyIndex::build(&mut entries, rows.len() as u64, 2, |ord| rows[ord as usize].0);
        let json = serde_json::to_string(&index).expect("serializes");
        let index: KeyIndex = serde_json::from_str(&json).expect("deserializes");
        ((0..rows.len() as u64).map(|o| (index.is_first(o), index.is_last(o))).collect(), keys)
    }

    #[test]
    fn first_and_last_of_each_key_per_table() {
        let (got, keys) = flags(&[(0, "a"), (0, "b"), (1, "a"), (0, "a"), (0, "c"), (0, "a"), (1, "b")]);
        assert_eq!(
            got,
            [(true, false), (true, true), (true, true), (false, false), (true, true), (false, true), (true, true)]
        );
        assert_eq!(keys, [3, 2]);
    }

    #[test]
    fn many_rows_pack_two_bits_each() {
        let rows: Vec<(usize, String)> = (0..10_001).map(|i| (0, format!("k{}", i % 1000))).collect();
        let refs: Vec<(usize, &str)> = rows.iter().map(|(t, k)| (*t, k.as_str())).collect();
        let (got, keys) = flags(&refs);
        assert_eq!(keys, [1000, 0]);
        for (i, (first, last)) in got.iter().enumerate() {
            assert_eq!(*first, i < 1000, "row {i}");
            // Row 10,000 repeats k0, so row 9,000 is not k0's last.
            assert_eq!(*last, i > 9000, "row {i}");
        }
    }

    #[test]
    fn an_absent_ordinal_is_neither() {
        let index = KeyIndex::default();
        assert!(!index.is_first(5) && !index.is_last(u64::MAX));
    }
}
