//! SHA-256 whose state can be checkpointed: an export job hashes its bundle across invocations,
//! and `sha2`'s hasher cannot be saved. The block function is `sha2`'s own (`compress256`);
//! only the buffering and the final padding (FIPS 180-4, 5.1.1) are here.

use serde::{Deserialize, Serialize};
#[allow(deprecated)]
use sha2::digest::generic_array::GenericArray;

const H0: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumableSha256 {
    state: [u32; 8],
    /// Bytes hashed so far.
    len: u64,
    /// The last partial block (under 64 bytes), hex in a checkpoint.
    #[serde(with = "hex_bytes")]
    tail: Vec<u8>,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        Self { state: H0, len: 0, tail: Vec::new() }
    }
}

impl ResumableSha256 {
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if !self.tail.is_empty() {
            let take = (64 - self.tail.len()).min(bytes.len());
            self.tail.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.tail.len() < 64 {
                return;
            }
            let block = std::mem::take(&mut self.tail);
            self.compress(&block);
        }
        let whole = bytes.len() - bytes.len() % 64;
        self.compress(&bytes[..whole]);
        self.tail.extend_from_slice(&bytes[whole..]);
    }

    /// The digest, as lowercase hex.
    pub fn finish_hex(mut self) -> String {
        let bits = self.len.wrapping_mul(8);
        let mut pad = std::mem::take(&mut self.tail);
        pad.push(0x80);
        while pad.len() % 64 != 56 {
            pad.push(0);
        }
        pad.extend_from_slice(&bits.to_be_bytes());
        self.compress(&pad);
        self.state.iter().map(|w| format!("{w:08x}")).collect()
    }

    // sha2 0.10's block type is generic-array 0.14's, deprecated in favour of 1.x, which sha2
    // 0.10 does not take.
    #[allow(deprecated)]
    fn compress(&mut self, blocks: &[u8]) {
        let blocks: Vec<GenericArray<u8, _>> = blocks.chunks_exact(64).map(GenericArray::clone_from_slice).collect();
        sha2::compress256(&mut self.state, &blocks);
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(text).map_err(serde::de::Error::custom)?;
        if bytes.len() >= 64 {
            return Err(serde::de::Error::custom("a hash's tail is under one block"));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn equals_sha2_across_checkpoints_for_every_split() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 128, 1000] {
            let expected = hex::encode(Sha256::digest(&data[..len]));
            for split in (0..=len).step_by(7).chain([len]) {
                let mut h = ResumableSha256::default();
                h.update(&data[..split]);
                // Through a checkpoint, as a job resuming in another invocation does.
                let saved = serde_json::to_string(&h).unwrap_or_default();
                let mut h: ResumableSha256 = serde_json::from_str(&saved).unwrap_or_default();
                h.update(&data[split..len]);
                assert_eq!(h.finish_hex(), expected, "len {len}, split {split}");
            }
        }
    }

    #[test]
    fn a_corrupt_checkpoint_is_refused() {
        let bad = r#"{"state":[0,0,0,0,0,0,0,0],"len":0,"tail":"zz"}"#;
        assert!(serde_json::from_str::<ResumableSha256>(bad).is_err());
    }
}
