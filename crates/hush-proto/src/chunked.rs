//! Content-defined chunks of a group's stored state (decision 0029).
//!
//! The base of a group's state (mostly mls-rs's tree index with every
//! member's keys) and its ratchet tree are stored as chunks named by their
//! SHA-256, and a manifest listing them. The cut points depend only on the
//! bytes around them (a gear rolling hash, as in FastCDC), so a commit that
//! changes a few members' keys changes the chunks around those keys only;
//! the others keep their names and are not written again.

use std::collections::HashMap;

use aws_lc_rs::digest::{SHA256, digest};
use zeroize::Zeroizing;

use crate::codec::{Reader, Writer};
use crate::storage::StoreError;

/// No cut before this many bytes (except at the end of the data).
pub(crate) const MIN_CHUNK: usize = 2 * 1024;
/// A cut at this many bytes at the latest.
pub(crate) const MAX_CHUNK: usize = 16 * 1024;
/// A cut where the top this many bits of the rolling hash are zero: on
/// average every 2 KiB after [`MIN_CHUNK`], so chunks of 4 KiB on average.
const CUT_BITS: u32 = 11;
/// The first byte of an encoded [`Manifest`].
const MANIFEST_VERSION: u8 = 1;
/// Bytes per chunk in an encoded manifest: its hash and its length.
const ENTRY_LEN: usize = 32 + 4;

/// A chunk's name: the SHA-256 of its bytes.
pub type ChunkHash = [u8; 32];

/// 256 pseudo-random words (splitmix64 from a fixed seed), one per byte
/// value, that the rolling hash adds.
const GEAR: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut state: u64 = 0x4875_7368_2043_4443; // "Hush CDC"
    let mut i = 0;
    while i < 256 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        table[i] = z ^ (z >> 31);
        i += 1;
    }
    table
};

/// Where the first chunk of `data` ends.
fn next_cut(data: &[u8]) -> usize {
    if data.len() <= MIN_CHUNK {
        return data.len();
    }
    let end = data.len().min(MAX_CHUNK);
    let mut hash: u64 = 0;
    // The hash only depends on the last 64 bytes (each step shifts one bit
    // out), so starting 64 bytes before the first possible cut is the same
    // as hashing from the start.
    for (i, &byte) in data.iter().enumerate().take(end).skip(MIN_CHUNK - 64) {
        hash = (hash << 1).wrapping_add(GEAR[usize::from(byte)]);
        if i + 1 >= MIN_CHUNK && hash >> (64 - CUT_BITS) == 0 {
            return i + 1;
        }
    }
    end
}

/// Splits `data` into content-defined chunks.
pub(crate) fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(data.len() / (2 * MIN_CHUNK) + 1);
    let mut rest = data;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(next_cut(rest));
        out.push(chunk);
        rest = tail;
    }
    out
}

/// The name of a chunk.
pub(crate) fn hash(chunk: &[u8]) -> ChunkHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, chunk).as_ref());
    out
}

/// Which chunks, in order, make up a stored value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Manifest {
    /// Each chunk's hash and length.
    pub chunks: Vec<(ChunkHash, u32)>,
}

impl Manifest {
    /// The manifest of `data` and its chunks.
    pub fn of(data: &[u8]) -> (Self, Vec<(ChunkHash, &[u8])>) {
        let pieces: Vec<(ChunkHash, &[u8])> =
            split(data).into_iter().map(|c| (hash(c), c)).collect();
        let chunks = pieces
            .iter()
            // A chunk is at most MAX_CHUNK bytes.
            .map(|(h, c)| (*h, u32::try_from(c.len()).unwrap_or(u32::MAX)))
            .collect();
        (Self { chunks }, pieces)
    }

    /// [`Manifest::of`] `data`, given `old`, the manifest of `old_data`
    /// (the value `data` replaces): where `data` repeats one of `old`'s
    /// chunks at a cut, the chunk is taken by comparing its bytes rather
    /// than by hashing them again. The same bytes from the same cut give the
    /// same next cut, so the result is the one [`Manifest::of`] gives (the
    /// last chunk of `old_data` ended with the data, not at a cut, and is
    /// not taken this way). Only the chunks hashed here are returned with
    /// their bytes: the others are `old`'s, already stored.
    pub fn update<'a>(
        old: &Manifest,
        old_data: &[u8],
        data: &'a [u8],
    ) -> (Self, Vec<(ChunkHash, &'a [u8])>) {
        let mut offsets = Vec::with_capacity(old.chunks.len());
        let mut at = 0usize;
        for (_, len) in &old.chunks {
            offsets.push(at);
            at += *len as usize;
        }
        if at != old_data.len() {
            return Self::of(data);
        }
        let last = old.chunks.len().saturating_sub(1);
        let starts: HashMap<usize, usize> = offsets[..last]
            .iter()
            .enumerate()
            .map(|(i, at)| (*at, i))
            .collect();
        let by_hash: HashMap<&ChunkHash, usize> = old.chunks[..last]
            .iter()
            .enumerate()
            .map(|(i, (h, _))| (h, i))
            .collect();
        // `data[new_at..]` lines up with `old_data[old_at..]`, as far as
        // known: from the start, then from the last old chunk found again
        // (an insertion or a deletion before it shifted the rest).
        let (mut new_at, mut old_at) = (0usize, 0usize);
        let mut chunks = Vec::with_capacity(old.chunks.len() + 4);
        let mut pieces = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let same = (pos + old_at)
                .checked_sub(new_at)
                .and_then(|p| starts.get(&p))
                .map(|&i| (old.chunks[i], offsets[i]))
                .filter(|((_, len), p)| {
                    let len = *len as usize;
                    data.get(pos..pos + len) == Some(&old_data[*p..*p + len])
                });
            if let Some(((h, len), _)) = same {
                chunks.push((h, len));
                pos += len as usize;
                continue;
            }
            let piece = &data[pos..pos + next_cut(&data[pos..])];
            let h = hash(piece);
            if let Some(&i) = by_hash.get(&h) {
                (new_at, old_at) = (pos, offsets[i]);
            }
            chunks.push((h, u32::try_from(piece.len()).unwrap_or(u32::MAX)));
            pieces.push((h, piece));
            pos += piece.len();
        }
        (Self { chunks }, pieces)
    }

    /// Version byte, chunk count, then each chunk's hash and length.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(MANIFEST_VERSION)
            .u32(u32::try_from(self.chunks.len()).unwrap_or(u32::MAX));
        for (h, len) in &self.chunks {
            w.raw(h).u32(*len);
        }
        w.into_bytes()
    }

    /// Parses [`Manifest::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let bad = |_| StoreError::CorruptManifest;
        let mut r = Reader::new(bytes);
        if r.u8().map_err(bad)? != MANIFEST_VERSION {
            return Err(StoreError::CorruptManifest);
        }
        let count = r.u32().map_err(bad)? as usize;
        if count.checked_mul(ENTRY_LEN) != Some(r.remaining()) {
            return Err(StoreError::CorruptManifest);
        }
        let mut chunks = Vec::with_capacity(count);
        for _ in 0..count {
            let h = r.array::<32>().map_err(bad)?;
            let len = r.u32().map_err(bad)?;
            if len == 0 || len as usize > MAX_CHUNK {
                return Err(StoreError::CorruptManifest);
            }
            chunks.push((h, len));
        }
        r.finish().map_err(bad)?;
        Ok(Self { chunks })
    }

    /// Puts the value back together from `chunk`s, checking each one's
    /// length and hash.
    pub fn assemble<'a>(
        &self,
        chunk: impl Fn(&ChunkHash) -> Option<&'a Zeroizing<Vec<u8>>>,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let total = self.chunks.iter().map(|(_, len)| *len as usize).sum();
        let mut out = Zeroizing::new(Vec::with_capacity(total));
        for (h, len) in &self.chunks {
            let bytes = chunk(h).ok_or(StoreError::MissingChunk)?;
            if bytes.len() != *len as usize || hash(bytes) != *h {
                return Err(StoreError::CorruptChunk);
            }
            out.extend_from_slice(bytes);
        }
        Ok(out)
    }

    /// The hashes it names.
    pub fn hashes(&self) -> impl Iterator<Item = &ChunkHash> {
        self.chunks.iter().map(|(h, _)| h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn chunks_are_bounded_and_cover_the_data() {
        let data = noise(300_000, 1);
        let chunks = split(&data);
        assert_eq!(chunks.concat(), data);
        assert!(chunks.iter().all(|c| c.len() <= MAX_CHUNK));
        let (last, rest) = chunks.split_last().unwrap();
        assert!(!last.is_empty());
        assert!(rest.iter().all(|c| c.len() >= MIN_CHUNK));
        let mean = data.len() / chunks.len();
        assert!((3 * 1024..=9 * 1024).contains(&mean), "mean chunk {mean}");
        // Constant data has no content to cut at: MAX_CHUNK pieces.
        assert!(
            split(&[0u8; 40_000])
                .iter()
                .rev()
                .skip(1)
                .all(|c| c.len() == MAX_CHUNK)
        );
        assert!(split(&[]).is_empty());
    }

    #[test]
    fn an_insertion_changes_only_the_chunks_around_it() {
        let data = noise(200_000, 2);
        let mut edited = data.clone();
        edited.splice(100_000..100_000, noise(1500, 3));
        let before: std::collections::HashSet<_> = split(&data).into_iter().map(hash).collect();
        let new: Vec<_> = split(&edited)
            .into_iter()
            .filter(|c| !before.contains(&hash(c)))
            .collect();
        let new_bytes: usize = new.iter().map(|c| c.len()).sum();
        assert!(new_bytes < 3 * MAX_CHUNK, "{new_bytes} new bytes");
    }

    #[test]
    fn an_update_gives_the_manifest_of_the_new_data() {
        let data = noise(300_000, 5);
        let (old, _) = Manifest::of(&data);
        let edits: [(usize, usize, usize); 6] = [
            (150_000, 1216, 1216), // a key replaced in place
            (1000, 0, 5000),       // an insertion near the start
            (200_000, 7000, 0),    // a deletion
            (299_000, 1000, 3000), // the end changes
            (0, 300_000, 1000),    // everything
            (10, 0, 0),            // nothing
        ];
        for (seed, (at, removed, inserted)) in edits.into_iter().enumerate() {
            let mut edited = data.clone();
            edited.splice(at..at + removed, noise(inserted, 10 + seed as u64));
            let (updated, pieces) = Manifest::update(&old, &data, &edited);
            let (full, _) = Manifest::of(&edited);
            assert_eq!(updated, full, "edit {seed}");
            let hashed: usize = pieces.iter().map(|(_, c)| c.len()).sum();
            if removed == inserted && inserted < 2000 {
                assert!(hashed < 4 * MAX_CHUNK, "edit {seed}: {hashed} bytes hashed");
            }
            // Several edits in a row.
            let (again, _) = Manifest::update(&updated, &edited, &data);
            assert_eq!(again, old, "edit {seed} undone");
        }
        // A manifest that does not describe the old data is not trusted.
        let (other, _) = Manifest::of(&noise(1000, 9));
        assert_eq!(Manifest::update(&other, &data, &data).0, old);
    }

    #[test]
    fn manifests_round_trip_and_refuse_damage() {
        let data = noise(50_000, 4);
        let (manifest, pieces) = Manifest::of(&data);
        let encoded = manifest.encode();
        assert_eq!(Manifest::decode(&encoded).unwrap(), manifest);
        let store: HashMap<ChunkHash, Zeroizing<Vec<u8>>> = pieces
            .iter()
            .map(|(h, c)| (*h, Zeroizing::new(c.to_vec())))
            .collect();
        assert_eq!(
            manifest.assemble(|h| store.get(h)).unwrap().as_slice(),
            &data[..]
        );
        // A flipped bit, a missing chunk, a bad manifest.
        let mut bad = store.clone();
        let first = manifest.chunks[0].0;
        bad.get_mut(&first).unwrap()[0] ^= 1;
        assert!(matches!(
            manifest.assemble(|h| bad.get(h)),
            Err(StoreError::CorruptChunk)
        ));
        bad.remove(&first);
        assert!(matches!(
            manifest.assemble(|h| bad.get(h)),
            Err(StoreError::MissingChunk)
        ));
        for cut in 0..encoded.len() {
            assert!(Manifest::decode(&encoded[..cut]).is_err());
        }
        let mut v2 = encoded.clone();
        v2[0] = 2;
        assert!(Manifest::decode(&v2).is_err());
        assert_eq!(
            Manifest::decode(&Manifest::default().encode()).unwrap(),
            Manifest::default()
        );
    }
}
