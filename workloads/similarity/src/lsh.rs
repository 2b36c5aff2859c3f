//! LSH banding over MinHash signatures: parameter choice and a deterministic index.
//!
//! A signature of `num_perm` values is cut into `b` bands of `r` rows (`b * r <= num_perm`; the
//! rest is unused by the index but still used for the similarity estimate). Two sets whose
//! Jaccard similarity is `s` share at least one band with probability `1 - (1 - s^r)^b`.
//! [`optimal_params`] picks `(b, r)` the way datasketch's `MinHashLSH` does
//! (`datasketch.lsh._optimal_param`): it minimises
//! `w_fp * ∫_0^t P(s) ds + w_fn * ∫_t^1 (1 - P(s)) ds` over all `b >= 1`, `1 <= r <= num_perm / b`.
//!
//! # Why not `gaoya`'s `MinHashIndex`
//! Its band tables hash with an `ahash::RandomState` seeded per process and return `HashSet`s,
//! so iteration order (and thus tie handling) changes from run to run, and a self-join of all
//! users has to go through one hash-set query per user. [`LshIndex`] sorts each band's
//! `(band hash, item)` pairs once: buckets are contiguous runs, a self-join walks each run once
//! without hashing or allocating per query, and every result is reproducible.

use crate::SimilarityError;

/// Number of bands `b` and rows per band `r`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LshParams {
    /// Number of bands.
    pub bands: usize,
    /// Rows (signature positions) per band.
    pub rows: usize,
}

impl LshParams {
    /// Probability that two sets of Jaccard similarity `s` become candidates.
    pub fn candidate_probability(&self, s: f64) -> f64 {
        1.0 - (1.0 - s.powi(self.rows as i32)).powi(self.bands as i32)
    }
}

/// Adaptive Simpson integration of `f` on `[a, b]` to an absolute tolerance `eps`.
fn integrate(f: &dyn Fn(f64) -> f64, a: f64, b: f64, eps: f64) -> f64 {
    fn simpson(fa: f64, fm: f64, fb: f64, a: f64, b: f64) -> f64 {
        (b - a) / 6.0 * (fa + 4.0 * fm + fb)
    }
    #[allow(clippy::too_many_arguments)]
    fn step(
        f: &dyn Fn(f64) -> f64,
        a: f64,
        b: f64,
        fa: f64,
        fm: f64,
        fb: f64,
        whole: f64,
        eps: f64,
        depth: u32,
    ) -> f64 {
        let m = 0.5 * (a + b);
        let lm = 0.5 * (a + m);
        let rm = 0.5 * (m + b);
        let flm = f(lm);
        let frm = f(rm);
        let left = simpson(fa, flm, fm, a, m);
        let right = simpson(fm, frm, fb, m, b);
        let delta = left + right - whole;
        // At least 5 levels (32 panels) before trusting the error estimate, so that integrands
        // that are tiny at the first few points are still resolved.
        if depth == 0 || (depth <= 48 - 5 && delta.abs() <= 15.0 * eps) {
            return left + right + delta / 15.0;
        }
        step(f, a, m, fa, flm, fm, left, eps / 2.0, depth - 1)
            + step(f, m, b, fm, frm, fb, right, eps / 2.0, depth - 1)
    }
    if b <= a {
        return 0.0;
    }
    let (fa, fb, fm) = (f(a), f(b), f(0.5 * (a + b)));
    step(f, a, b, fa, fm, fb, simpson(fa, fm, fb, a, b), eps, 48)
}

/// `∫_0^t P(s) ds`: the (unnormalised) false positive probability of `params` at threshold `t`.
pub fn false_positive_probability(threshold: f64, params: LshParams) -> f64 {
    integrate(&|s| params.candidate_probability(s), 0.0, threshold, 1e-12)
}

/// `∫_t^1 (1 - P(s)) ds`: the (unnormalised) false negative probability at threshold `t`.
pub fn false_negative_probability(threshold: f64, params: LshParams) -> f64 {
    integrate(&|s| 1.0 - params.candidate_probability(s), threshold, 1.0, 1e-12)
}

/// The `(b, r)` minimising `fp_weight * FP + fn_weight * FN` (datasketch's `_optimal_param`;
/// ties keep the first in the order `b = 1.., r = 1..`). `threshold` must be in `(0, 1)`,
/// `num_perm >= 1`, the weights non-negative and finite with a positive sum.
pub fn optimal_params(
    threshold: f64,
    num_perm: usize,
    fp_weight: f64,
    fn_weight: f64,
) -> Result<LshParams, SimilarityError> {
    if !(threshold > 0.0 && threshold < 1.0) {
        return Err(SimilarityError::param("threshold", format!("{threshold} is not in (0, 1)")));
    }
    if num_perm == 0 {
        return Err(SimilarityError::param("num_perm", "must be at least 1"));
    }
    for (name, w) in [("fp_weight", fp_weight), ("fn_weight", fn_weight)] {
        if !(w.is_finite() && w >= 0.0) {
            return Err(SimilarityError::param(name, format!("{w} is not a finite weight >= 0")));
        }
    }
    if fp_weight + fn_weight <= 0.0 {
        return Err(SimilarityError::param("fp_weight", "fp_weight + fn_weight must be > 0"));
    }
    let mut best = LshParams { bands: 1, rows: 1 };
    let mut min_error = f64::INFINITY;
    for bands in 1..=num_perm {
        for rows in 1..=num_perm / bands {
            let params = LshParams { bands, rows };
            let error = fp_weight * false_positive_probability(threshold, params)
                + fn_weight * false_negative_probability(threshold, params);
            if error < min_error {
                min_error = error;
                best = params;
            }
        }
    }
    Ok(best)
}

/// Hash of one band (`rows` signature values) to 64 bits. Equal bands give equal hashes; a
/// collision of unequal bands only adds a candidate, which the similarity filter then judges.
fn band_hash(band: &[u32], buf: &mut Vec<u8>) -> u64 {
    buf.clear();
    for v in band {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(buf)
}

/// One band's table: items sorted by band hash (then by item), so a bucket is a contiguous run.
#[derive(Debug, Clone)]
struct Band {
    /// `(band hash, item)` sorted ascending.
    sorted: Vec<(u64, u32)>,
    /// Position of item `i` in `sorted`.
    pos: Vec<u32>,
    /// Directory over the top `bits` bits of the (uniform) band hashes: the entries whose hash
    /// starts with prefix `p` are `sorted[dir[p]..dir[p + 1]]` (about one per prefix), so a
    /// query finds its bucket with two reads instead of a binary search.
    dir: Vec<u32>,
    /// Number of prefix bits of `dir`.
    bits: u32,
}

impl Band {
    fn new(mut sorted: Vec<(u64, u32)>) -> Self {
        sorted.sort_unstable();
        let n = sorted.len();
        let mut pos = vec![0u32; n];
        for (p, &(_, item)) in sorted.iter().enumerate() {
            pos[item as usize] = p as u32;
        }
        // About one entry per prefix; at least 1 bit so the shift below stays in range.
        let bits = (usize::BITS - n.max(2).leading_zeros()).clamp(1, 32);
        let mut dir = vec![0u32; (1usize << bits) + 1];
        let mut p = 0usize;
        for (prefix, slot) in dir.iter_mut().enumerate() {
            while p < n && ((sorted[p].0 >> (64 - bits)) as usize) < prefix {
                p += 1;
            }
            *slot = p as u32;
        }
        Self { sorted, pos, dir, bits }
    }

    /// The run of entries whose hash is `key`.
    fn bucket(&self, key: u64) -> &[(u64, u32)] {
        let prefix = (key >> (64 - self.bits)) as usize;
        let near = &self.sorted[self.dir[prefix] as usize..self.dir[prefix + 1] as usize];
        let start = near.partition_point(|&(k, _)| k < key);
        let end = start + near[start..].iter().take_while(|&&(k, _)| k == key).count();
        &near[start..end]
    }
}

/// A static LSH index over a batch of signatures (items are their row numbers).
#[derive(Debug, Clone)]
pub struct LshIndex {
    params: LshParams,
    bands: Vec<Band>,
}

impl LshIndex {
    /// Indexes `signatures` (each of length `num_perm >= b * r`). Items are `0..signatures.len()`.
    pub fn build(
        signatures: &crate::minhash::Signatures,
        params: LshParams,
    ) -> Result<Self, SimilarityError> {
        let need = params.bands * params.rows;
        if params.bands == 0 || params.rows == 0 || need > signatures.num_perm() {
            return Err(SimilarityError::param(
                "lsh",
                format!(
                    "{} bands x {} rows do not fit in {} permutations",
                    params.bands,
                    params.rows,
                    signatures.num_perm()
                ),
            ));
        }
        let n = signatures.len();
        if u32::try_from(n).is_err() {
            return Err(SimilarityError::param("signatures", format!("{n} items is too many")));
        }
        let mut buf = Vec::with_capacity(params.rows * 4);
        let mut bands = Vec::with_capacity(params.bands);
        for band in 0..params.bands {
            let cols = band * params.rows..(band + 1) * params.rows;
            let keyed: Vec<(u64, u32)> = (0..n)
                .map(|i| (band_hash(&signatures.get(i)[cols.clone()], &mut buf), i as u32))
                .collect();
            bands.push(Band::new(keyed));
        }
        Ok(Self { params, bands })
    }

    /// The banding parameters.
    pub fn params(&self) -> LshParams {
        self.params
    }

    /// Number of indexed items.
    pub fn len(&self) -> usize {
        self.bands.first().map_or(0, |b| b.sorted.len())
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f(u, v)` once for every unordered candidate pair `u < v` (items sharing at least
    /// one band), in increasing `u` order. `seen` is scratch space.
    pub fn for_each_candidate_pair(&self, mut f: impl FnMut(u32, u32)) {
        let n = self.len();
        // seen[v] == u + 1 marks v as already visited for u.
        let mut seen = vec![0u32; n];
        for u in 0..n {
            let mark = u as u32 + 1;
            for band in &self.bands {
                let p = band.pos[u] as usize;
                let key = band.sorted[p].0;
                // Items after u in the bucket have a larger id (ties sort by item).
                for &(k, v) in &band.sorted[p + 1..] {
                    if k != key {
                        break;
                    }
                    if seen[v as usize] != mark {
                        seen[v as usize] = mark;
                        f(u as u32, v);
                    }
                }
            }
        }
    }

    /// Items sharing at least one band with `signature` (which need not be indexed), sorted.
    pub fn query(&self, signature: &[u32]) -> Vec<u32> {
        let mut out = Vec::new();
        let mut buf = Vec::with_capacity(self.params.rows * 4);
        if signature.len() < self.params.bands * self.params.rows {
            return out;
        }
        for (band_no, band) in self.bands.iter().enumerate() {
            let cols = band_no * self.params.rows..(band_no + 1) * self.params.rows;
            let key = band_hash(&signature[cols], &mut buf);
            out.extend(band.bucket(key).iter().map(|&(_, item)| item));
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minhash::{MinHasher, Signatures};

    #[test]
    fn datasketch_params_for_half_and_128() {
        // datasketch.lsh._optimal_param(0.5, 128, 0.5, 0.5) == (25, 5)
        let p = optimal_params(0.5, 128, 0.5, 0.5).unwrap();
        assert_eq!((p.bands, p.rows), (25, 5));
    }

    #[test]
    fn integrals_match_closed_form() {
        // For b = 1, P(s) = s^r, so ∫_0^t s^r = t^(r+1)/(r+1).
        for r in [1usize, 2, 5, 13] {
            let p = LshParams { bands: 1, rows: r };
            let t: f64 = 0.6;
            let fp = false_positive_probability(t, p);
            assert!((fp - t.powi(r as i32 + 1) / (r as f64 + 1.0)).abs() < 1e-12);
            let fneg = false_negative_probability(t, p);
            let expect = (1.0 - t) - (1.0 - t.powi(r as i32 + 1)) / (r as f64 + 1.0);
            assert!((fneg - expect).abs() < 1e-12);
        }
    }

    #[test]
    fn rejects_bad_params() {
        assert!(optimal_params(0.0, 128, 0.5, 0.5).is_err());
        assert!(optimal_params(1.0, 128, 0.5, 0.5).is_err());
        assert!(optimal_params(f64::NAN, 128, 0.5, 0.5).is_err());
        assert!(optimal_params(0.5, 0, 0.5, 0.5).is_err());
        assert!(optimal_params(0.5, 128, -1.0, 0.5).is_err());
        assert!(optimal_params(0.5, 128, 0.0, 0.0).is_err());
        let sigs = Signatures::from_rows(4, &[vec![1, 2, 3, 4]]).unwrap();
        assert!(LshIndex::build(&sigs, LshParams { bands: 2, rows: 3 }).is_err());
        assert!(LshIndex::build(&sigs, LshParams { bands: 0, rows: 3 }).is_err());
    }

    #[test]
    fn candidates_share_a_band() {
        // Rows: 0 and 1 share band 0; 2 and 3 share band 1; 4 shares nothing; 5 equals 0.
        let rows = vec![
            vec![1, 1, 2, 2],
            vec![1, 1, 9, 9],
            vec![3, 3, 7, 7],
            vec![4, 4, 7, 7],
            vec![5, 5, 6, 6],
            vec![1, 1, 2, 2],
        ];
        let sigs = Signatures::from_rows(4, &rows).unwrap();
        let index = LshIndex::build(&sigs, LshParams { bands: 2, rows: 2 }).unwrap();
        let mut pairs = Vec::new();
        index.for_each_candidate_pair(|u, v| pairs.push((u, v)));
        assert_eq!(pairs, vec![(0, 1), (0, 5), (1, 5), (2, 3)]);
        assert_eq!(index.query(&[1, 1, 0, 0]), vec![0, 1, 5]);
        assert_eq!(index.query(&[0, 0, 7, 7]), vec![2, 3]);
        assert_eq!(index.query(&[0, 0, 0, 0]), Vec::<u32>::new());
        assert_eq!(index.len(), 6);
    }

    #[test]
    fn bucket_directory_finds_every_run() {
        for n in [0usize, 1, 2, 3, 17, 1000] {
            // Keys with repeats and extreme values, including 0 and u64::MAX.
            let keyed: Vec<(u64, u32)> = (0..n)
                .map(|i| {
                    let k = match i % 5 {
                        0 => 0,
                        1 => u64::MAX,
                        _ => (i as u64 / 3).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    };
                    (k, i as u32)
                })
                .collect();
            let band = Band::new(keyed.clone());
            for &(k, _) in &keyed {
                let mut expect: Vec<u32> = keyed.iter().filter(|e| e.0 == k).map(|e| e.1).collect();
                expect.sort_unstable();
                let got: Vec<u32> = band.bucket(k).iter().map(|e| e.1).collect();
                assert_eq!(got, expect, "n {n} key {k}");
            }
            assert!(band.bucket(12345).is_empty() || keyed.iter().any(|e| e.0 == 12345));
        }
    }

    #[test]
    fn self_join_equals_queries() {
        let m = MinHasher::new(64, 5).unwrap();
        let sets: Vec<Vec<String>> = (0..300)
            .map(|i| {
                (0..20).map(|t| format!("t{}", (i / 10) * 7 + (t * (1 + i % 3)) % 25)).collect()
            })
            .collect();
        let sigs = m.signatures(sets.iter().map(|s| s.iter()));
        let params = optimal_params(0.5, 64, 0.5, 0.5).unwrap();
        let index = LshIndex::build(&sigs, params).unwrap();
        let mut from_join = Vec::new();
        index.for_each_candidate_pair(|u, v| from_join.push((u, v)));
        let mut from_queries = Vec::new();
        for u in 0..sigs.len() as u32 {
            for v in index.query(sigs.get(u as usize)) {
                if v > u {
                    from_queries.push((u, v));
                }
            }
        }
        assert!(!from_join.is_empty());
        let distinct = from_join.len();
        from_join.sort_unstable();
        from_join.dedup();
        assert_eq!(from_join.len(), distinct, "each pair is reported once");
        assert_eq!(from_join, from_queries);
    }
}
