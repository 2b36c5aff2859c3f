//! Binned features and gradient histograms: the shared machinery of every trainer.
//!
//! Each column is cut into at most 256 bins; a row's bin is the number of cuts below its value,
//! so "bin <= b" is exactly "value <= cuts\[b\]" and a split found on bins becomes a plain
//! threshold split on raw values. The non-private trainers take cuts from the data's quantiles
//! ([`BinnedMatrix::from_quantiles`]); the private ones from a public grid over known ranges
//! ([`public_cuts`]), so the candidate splits reveal nothing about the data.

use ndarray::ArrayView2;

use crate::TreesError;

/// Most bins per column (bins are stored as `u8`).
pub const MAX_BINS: usize = 256;

/// A feature matrix with every value replaced by its bin, held twice: row-major (histogram
/// building reads every column of a row) and column-major (partitioning a node reads one
/// column of its rows).
#[derive(Debug, Clone)]
pub struct BinnedMatrix {
    n_rows: usize,
    n_features: usize,
    bins: Vec<u8>,
    columns: Vec<u8>,
    cuts: Vec<Vec<f64>>,
    offsets: Vec<usize>,
    total_bins: usize,
}

fn bin_of(cuts: &[f64], v: f64) -> u8 {
    // `cuts.len() < MAX_BINS`, so the count fits in a u8.
    cuts.partition_point(|&c| c < v) as u8
}

/// Cuts of a public grid for each column: for a `(0, 1)` column the single cut `0.5`; for a
/// column with integer bounds at most `grid` apart, every half-integer between them; otherwise
/// `grid - 1` evenly spaced interior points. Depends only on the ranges.
pub fn public_cuts(ranges: &[(f64, f64)], grid: usize) -> Vec<Vec<f64>> {
    let grid = grid.clamp(2, MAX_BINS);
    ranges
        .iter()
        .map(|&(lo, hi)| {
            if hi.is_nan() || lo.is_nan() || hi <= lo {
                return vec![lo];
            }
            let integral = lo.fract() == 0.0 && hi.fract() == 0.0;
            if integral && hi - lo <= grid as f64 {
                let steps = (hi - lo) as usize;
                (0..steps).map(|k| lo + k as f64 + 0.5).collect()
            } else {
                (1..grid).map(|k| lo + (hi - lo) * k as f64 / grid as f64).collect()
            }
        })
        .collect()
}

impl BinnedMatrix {
    /// Bins with cuts at the data's quantiles (at most `max_bins` bins per column). A column
    /// with at most `max_bins` distinct values gets one bin per value, cut halfway between.
    pub fn from_quantiles(x: ArrayView2<'_, f64>, max_bins: usize) -> Result<Self, TreesError> {
        let max_bins = max_bins.clamp(2, MAX_BINS);
        let n = x.nrows();
        // Quantiles from at most this many rows (evenly strided, deterministic).
        let sample = 200_000usize;
        let stride = n.div_ceil(sample).max(1);
        let mut cuts = Vec::with_capacity(x.ncols());
        for col in x.columns() {
            let mut vals: Vec<f64> = col.iter().step_by(stride).copied().collect();
            if vals.iter().any(|v| v.is_nan()) {
                return Err(TreesError::InvalidInput("feature matrix contains NaN".into()));
            }
            vals.sort_unstable_by(f64::total_cmp);
            let mut uniq = vals.clone();
            uniq.dedup();
            let c: Vec<f64> = if uniq.len() <= max_bins {
                uniq.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect()
            } else {
                let mut c: Vec<f64> = (1..max_bins)
                    .map(|k| {
                        let i = (k * vals.len() / max_bins).min(vals.len() - 1);
                        vals[i]
                    })
                    .collect();
                c.dedup();
                // The largest value needs no cut above it.
                if c.last() == uniq.last() {
                    c.pop();
                }
                c
            };
            cuts.push(c);
        }
        Self::from_cuts(x, cuts)
    }

    /// Bins with the given cuts per column (ascending, fewer than [`MAX_BINS`]).
    pub fn from_cuts(x: ArrayView2<'_, f64>, cuts: Vec<Vec<f64>>) -> Result<Self, TreesError> {
        let (n_rows, n_features) = x.dim();
        if cuts.len() != n_features {
            return Err(TreesError::InvalidInput(format!(
                "{} cut lists for {n_features} columns",
                cuts.len()
            )));
        }
        for (f, c) in cuts.iter().enumerate() {
            if c.len() >= MAX_BINS
                || c.windows(2).any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
            {
                return Err(TreesError::InvalidInput(format!(
                    "column {f}: cuts must be ascending and fewer than {MAX_BINS}"
                )));
            }
        }
        let mut offsets = Vec::with_capacity(n_features);
        let mut total_bins = 0;
        for c in &cuts {
            offsets.push(total_bins);
            total_bins += c.len() + 1;
        }
        let mut bins = vec![0u8; n_rows * n_features];
        for (row, out) in x.rows().into_iter().zip(bins.chunks_mut(n_features.max(1))) {
            for ((o, &v), c) in out.iter_mut().zip(row.iter()).zip(&cuts) {
                if v.is_nan() {
                    return Err(TreesError::InvalidInput("feature matrix contains NaN".into()));
                }
                *o = bin_of(c, v);
            }
        }
        let mut columns = vec![0u8; n_rows * n_features];
        if n_features > 0 {
            for (r, row) in bins.chunks_exact(n_features).enumerate() {
                for (f, &b) in row.iter().enumerate() {
                    columns[f * n_rows + r] = b;
                }
            }
        }
        Ok(BinnedMatrix { n_rows, n_features, bins, columns, cuts, offsets, total_bins })
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The cuts of each column.
    pub fn cuts(&self) -> &[Vec<f64>] {
        &self.cuts
    }

    /// The bins of one row.
    #[inline]
    pub fn row(&self, r: usize) -> &[u8] {
        &self.bins[r * self.n_features..(r + 1) * self.n_features]
    }

    /// Bin of row `r` in column `f`.
    #[inline]
    pub fn bin(&self, r: usize, f: usize) -> u8 {
        self.columns[f * self.n_rows + r]
    }

    /// The bins of column `f`, one per row.
    #[inline]
    pub fn column(&self, f: usize) -> &[u8] {
        &self.columns[f * self.n_rows..(f + 1) * self.n_rows]
    }

    /// Start of column `f`'s bins in a histogram.
    #[inline]
    pub fn offset(&self, f: usize) -> usize {
        self.offsets[f]
    }

    /// Number of bins of column `f`.
    #[inline]
    pub fn n_bins(&self, f: usize) -> usize {
        self.cuts[f].len() + 1
    }

    /// Length of a histogram over all columns.
    pub fn total_bins(&self) -> usize {
        self.total_bins
    }

    /// Adds `(grad, hess)` of `rows` into `hist` (length [`BinnedMatrix::total_bins`]).
    pub fn accumulate(&self, rows: &[u32], grad: &[f64], hess: &[f64], hist: &mut [[f64; 2]]) {
        for &r in rows {
            let r = r as usize;
            let (g, h) = (grad[r], hess[r]);
            for (&b, &off) in self.row(r).iter().zip(&self.offsets) {
                let e = &mut hist[off + b as usize];
                e[0] += g;
                e[1] += h;
            }
        }
    }

    /// Adds the gradient pairs `gpair[r] = (g, h)` of `rows` into `hist` (length
    /// [`BinnedMatrix::total_bins`]), summing in `f64`. Reads the row-major bins; fastest when
    /// `rows` is ascending.
    pub fn accumulate_pairs(&self, rows: &[u32], gpair: &[[f32; 2]], hist: &mut [[f64; 2]]) {
        let nf = self.n_features;
        if nf == 0 {
            return;
        }
        let offsets = &self.offsets[..nf];
        for &r in rows {
            let r = r as usize;
            let [g, h] = gpair[r];
            let (g, h) = (f64::from(g), f64::from(h));
            let row = &self.bins[r * nf..(r + 1) * nf];
            for (&b, &off) in row.iter().zip(offsets) {
                let e = &mut hist[off + b as usize];
                e[0] += g;
                e[1] += h;
            }
        }
    }

    /// Moves the rows with `bin(f) <= b` to the front, keeping the order of the rows on each
    /// side (so ascending rows stay ascending); returns how many went left. `scratch` is
    /// working space (resized as needed).
    pub fn partition_stable(
        &self,
        rows: &mut [u32],
        f: usize,
        b: u8,
        scratch: &mut Vec<u32>,
    ) -> usize {
        let col = self.column(f);
        scratch.clear();
        scratch.resize(rows.len(), 0);
        let (mut left, mut right) = (0, 0);
        for i in 0..rows.len() {
            let r = rows[i];
            // Branch-free: write to both sides, advance one.
            let goes_left = col[r as usize] <= b;
            rows[left] = r;
            scratch[right] = r;
            left += usize::from(goes_left);
            right += usize::from(!goes_left);
        }
        rows[left..].copy_from_slice(&scratch[..right]);
        left
    }

    /// Moves the rows with `bin(f) <= b` to the front; returns how many there are.
    pub fn partition(&self, rows: &mut [u32], f: usize, b: u8) -> usize {
        let col = self.column(f);
        let mut left = 0;
        for i in 0..rows.len() {
            if col[rows[i] as usize] <= b {
                rows.swap(left, i);
                left += 1;
            }
        }
        left
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // Tests: fail loudly.
mod tests {
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn matrix(n: usize) -> BinnedMatrix {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x = Array2::from_shape_fn((n, 3), |(_, c)| match c {
            0 => rng.random::<f64>(),
            1 => f64::from(rng.random_range(0..4u8)),
            _ => rng.random::<f64>() * 1e3,
        });
        BinnedMatrix::from_quantiles(x.view(), 32).unwrap()
    }

    #[test]
    fn column_major_bins_equal_row_major() {
        let m = matrix(257);
        for r in 0..m.n_rows() {
            for f in 0..m.n_features() {
                assert_eq!(m.row(r)[f], m.bin(r, f));
                assert_eq!(m.column(f)[r], m.bin(r, f));
            }
        }
    }

    #[test]
    fn stable_partition_splits_by_bin_and_keeps_order() {
        let m = matrix(500);
        let mut scratch = Vec::new();
        for (f, b) in [(0, 10u8), (1, 1), (2, 0), (2, 30)] {
            // Every other row, descending: order must be kept, not sorted.
            let original: Vec<u32> = (0..500u32).rev().step_by(2).collect();
            let mut rows = original.clone();
            let n_left = m.partition_stable(&mut rows, f, b, &mut scratch);
            let want_left: Vec<u32> =
                original.iter().copied().filter(|&r| m.bin(r as usize, f) <= b).collect();
            let want_right: Vec<u32> =
                original.iter().copied().filter(|&r| m.bin(r as usize, f) > b).collect();
            assert_eq!(n_left, want_left.len());
            assert_eq!(&rows[..n_left], want_left.as_slice());
            assert_eq!(&rows[n_left..], want_right.as_slice());
        }
    }

    #[test]
    fn accumulate_pairs_sums_each_bin() {
        let m = matrix(300);
        let gpair: Vec<[f32; 2]> = (0..300).map(|i| [i as f32 - 150.0, 1.0 + i as f32]).collect();
        let rows: Vec<u32> = (0..300).filter(|r| r % 3 != 0).collect();
        let mut hist = vec![[0.0; 2]; m.total_bins()];
        m.accumulate_pairs(&rows, &gpair, &mut hist);
        for f in 0..m.n_features() {
            for b in 0..m.n_bins(f) {
                let (mut g, mut h) = (0.0, 0.0);
                for &r in &rows {
                    if m.bin(r as usize, f) as usize == b {
                        g += f64::from(gpair[r as usize][0]);
                        h += f64::from(gpair[r as usize][1]);
                    }
                }
                assert_eq!(hist[m.offset(f) + b], [g, h], "column {f} bin {b}");
            }
        }
    }
}
