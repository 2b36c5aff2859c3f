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

/// A feature matrix with every value replaced by its bin, row-major.
#[derive(Debug, Clone)]
pub struct BinnedMatrix {
    n_rows: usize,
    n_features: usize,
    bins: Vec<u8>,
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
            vals.sort_by(f64::total_cmp);
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
        Ok(BinnedMatrix { n_rows, n_features, bins, cuts, offsets, total_bins })
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
        self.bins[r * self.n_features + f]
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

    /// Moves the rows with `bin(f) <= b` to the front; returns how many there are.
    pub fn partition(&self, rows: &mut [u32], f: usize, b: u8) -> usize {
        let mut left = 0;
        for i in 0..rows.len() {
            if self.bin(rows[i] as usize, f) <= b {
                rows.swap(left, i);
                left += 1;
            }
        }
        left
    }
}
