//! Model-agnostic KernelSHAP (Lundberg & Lee 2017), following `shap.KernelExplainer`.
//!
//! The value of a coalition `S` of feature groups is the interventional expectation
//! `v(S) = mean_b f(x_S, b_{not S})` over a background sample `b`. KernelSHAP finds the
//! Shapley values as the solution of a weighted linear regression of `v(S) - v(∅)` on the
//! coalition indicator vectors, with the Shapley kernel weights
//! `(M - 1) / (C(M, |S|) |S| (M - |S|))` and the efficiency constraint
//! `Σ φ = f(x) - E_b f(b)` eliminated exactly.
//!
//! As in `shap`, coalition sizes are enumerated completely (smallest sizes and their
//! complements first) while the sample budget allows; the rest are drawn at random (paired
//! with their complements) and reweighted. With `nsamples >= 2^M - 2` every coalition is
//! enumerated and the result is the exact Shapley value of `v` (up to floating point); groups
//! whose value equals every background row get `φ = 0` and are left out of the regression.
//! No L1 feature selection is done (the `l1_reg=False` behaviour of `shap`).

use std::collections::HashMap;

use ndarray::Array2;
use rand::Rng;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::MlpError;

/// Options of one explanation (default: `shap`'s "auto" sample count, seed 0).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KernelShapOptions {
    /// Coalitions to evaluate; `None` = `shap`'s "auto", `2 M + 2048`. Capped at `2^M - 2`.
    pub nsamples: Option<usize>,
    /// Seed of the random coalition sampling.
    pub seed: u64,
}

/// SHAP values of one instance, per feature group.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// `E_b f(b)`, the expected model output over the background.
    pub base_value: f64,
    /// `f(x)`.
    pub output: f64,
    /// One value per group; `base_value + Σ values == output`.
    pub values: Vec<f64>,
}

/// A KernelSHAP explainer for a batch prediction function over a background sample.
pub struct KernelExplainer<F>
where
    F: Fn(&Array2<f64>) -> Result<Vec<f64>, MlpError>,
{
    f: F,
    background: Array2<f64>,
    groups: Vec<Vec<usize>>,
    fnull: f64,
}

impl<F> KernelExplainer<F>
where
    F: Fn(&Array2<f64>) -> Result<Vec<f64>, MlpError>,
{
    /// `groups` partitions (some of) the columns into the players of the game; pass
    /// `(0..width).map(|j| vec![j])` to explain each column.
    pub fn new(f: F, background: Array2<f64>, groups: Vec<Vec<usize>>) -> Result<Self, MlpError> {
        if background.nrows() == 0 {
            return Err(MlpError::Shape("background sample is empty".into()));
        }
        let mut seen = vec![0usize; background.ncols()];
        for &j in groups.iter().flatten() {
            if j >= background.ncols() {
                return Err(MlpError::Shape("a group refers to a column outside the data".into()));
            }
            seen[j] += 1;
        }
        if seen.iter().any(|&c| c != 1) {
            return Err(MlpError::Shape(
                "groups must partition the columns (each column in exactly one group)".into(),
            ));
        }
        let out = f(&background)?;
        if out.len() != background.nrows() {
            return Err(MlpError::Shape("model returned the wrong number of outputs".into()));
        }
        let fnull = out.iter().sum::<f64>() / out.len() as f64;
        Ok(Self { f, background, groups, fnull })
    }

    /// The base value `E_b f(b)`.
    pub fn base_value(&self) -> f64 {
        self.fnull
    }

    /// Number of groups.
    pub fn groups(&self) -> &[Vec<usize>] {
        &self.groups
    }

    /// Explains one instance.
    pub fn explain(&self, x: &[f64], opts: KernelShapOptions) -> Result<Explanation, MlpError> {
        let width = self.background.ncols();
        if x.len() != width {
            return Err(MlpError::Shape(format!(
                "instance has {} columns, expected {width}",
                x.len()
            )));
        }
        let xm = Array2::from_shape_vec((1, width), x.to_vec())
            .map_err(|e| MlpError::Shape(e.to_string()))?;
        let fx = *(self.f)(&xm)?
            .first()
            .ok_or_else(|| MlpError::Shape("model returned no output".into()))?;
        let mut values = vec![0.0; self.groups.len()];
        let varying: Vec<usize> = (0..self.groups.len()).filter(|&g| self.varies(g, x)).collect();
        let m = varying.len();
        if m == 0 {
            return Ok(Explanation { base_value: self.fnull, output: fx, values });
        }
        if m == 1 {
            values[varying[0]] = fx - self.fnull;
            return Ok(Explanation { base_value: self.fnull, output: fx, values });
        }

        let (masks, weights) = coalitions(m, opts);
        let ey = self.evaluate(x, &varying, &masks)?;
        let phi = solve(&masks, &weights, &ey, fx - self.fnull, self.fnull, m)?;
        for (k, &g) in varying.iter().enumerate() {
            values[g] = phi[k];
        }
        Ok(Explanation { base_value: self.fnull, output: fx, values })
    }

    fn varies(&self, g: usize, x: &[f64]) -> bool {
        self.groups[g].iter().any(|&j| {
            self.background.column(j).iter().any(|&b| (x[j] - b).abs() > 1e-8 + 1e-5 * b.abs())
        })
    }

    /// `v(S)` for every mask: the mean model output over the background with the masked
    /// groups set to `x`.
    fn evaluate(
        &self,
        x: &[f64],
        varying: &[usize],
        masks: &[Vec<bool>],
    ) -> Result<Vec<f64>, MlpError> {
        let n = self.background.nrows();
        let width = self.background.ncols();
        // Evaluate in chunks to bound memory (~ 64k rows at a time).
        let per_chunk = (65_536 / n).max(1);
        let mut ey = Vec::with_capacity(masks.len());
        for chunk in masks.chunks(per_chunk) {
            let mut synth = Array2::zeros((chunk.len() * n, width));
            for (s, mask) in chunk.iter().enumerate() {
                let mut block = synth
                    .slice_axis_mut(ndarray::Axis(0), ndarray::Slice::from(s * n..(s + 1) * n));
                block.assign(&self.background);
                for (k, &on) in mask.iter().enumerate() {
                    if on {
                        for &j in &self.groups[varying[k]] {
                            block.column_mut(j).fill(x[j]);
                        }
                    }
                }
            }
            let out = (self.f)(&synth)?;
            if out.len() != synth.nrows() {
                return Err(MlpError::Shape("model returned the wrong number of outputs".into()));
            }
            for s in 0..chunk.len() {
                ey.push(out[s * n..(s + 1) * n].iter().sum::<f64>() / n as f64);
            }
        }
        Ok(ey)
    }
}

fn binom(n: usize, k: usize) -> f64 {
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// All k-subsets of `0..m` in lexicographic order (as `itertools.combinations`).
fn combinations(m: usize, k: usize, mut visit: impl FnMut(&[usize])) {
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        visit(&idx);
        let mut i = k;
        while i > 0 && idx[i - 1] == m - k + i - 1 {
            i -= 1;
        }
        if i == 0 {
            return;
        }
        idx[i - 1] += 1;
        for j in i..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// The coalition masks and their kernel weights, as `shap.KernelExplainer` builds them.
fn coalitions(m: usize, opts: KernelShapOptions) -> (Vec<Vec<bool>>, Vec<f64>) {
    let max_samples = if m <= 30 { (1usize << m) - 2 } else { usize::MAX };
    let nsamples = opts.nsamples.unwrap_or(2 * m + 2048).min(max_samples).max(1);
    // ceil((M - 1) / 2) and floor((M - 1) / 2).
    let num_subset_sizes = m / 2;
    let num_paired = (m - 1) / 2;
    let mut weight_vector: Vec<f64> =
        (1..=num_subset_sizes).map(|i| (m as f64 - 1.0) / (i as f64 * (m - i) as f64)).collect();
    for w in weight_vector.iter_mut().take(num_paired) {
        *w *= 2.0;
    }
    let total: f64 = weight_vector.iter().sum();
    for w in &mut weight_vector {
        *w /= total;
    }

    let mut masks: Vec<Vec<bool>> = Vec::new();
    let mut weights: Vec<f64> = Vec::new();
    let mut num_full = 0;
    let mut samples_left = nsamples as f64;
    let mut remaining = weight_vector.clone();
    for size in 1..=num_subset_sizes {
        let mut nsubsets = binom(m, size);
        if size <= num_paired {
            nsubsets *= 2.0;
        }
        if samples_left * remaining[size - 1] / nsubsets >= 1.0 - 1e-8 {
            num_full += 1;
            samples_left -= nsubsets;
            if remaining[size - 1] < 1.0 {
                let d = 1.0 - remaining[size - 1];
                for r in &mut remaining {
                    *r /= d;
                }
            }
            let mut w = weight_vector[size - 1] / binom(m, size);
            if size <= num_paired {
                w /= 2.0;
            }
            combinations(m, size, |inds| {
                let mut mask = vec![false; m];
                for &i in inds {
                    mask[i] = true;
                }
                if size <= num_paired {
                    let comp: Vec<bool> = mask.iter().map(|b| !b).collect();
                    masks.push(mask);
                    weights.push(w);
                    masks.push(comp);
                    weights.push(w);
                } else {
                    masks.push(mask);
                    weights.push(w);
                }
            });
        } else {
            break;
        }
    }

    let nfixed = masks.len();
    let mut left = nsamples.saturating_sub(nfixed);
    if num_full != num_subset_sizes && left > 0 {
        let mut rw: Vec<f64> = weight_vector.clone();
        for w in rw.iter_mut().take(num_paired) {
            *w /= 2.0;
        }
        let rw: Vec<f64> = rw[num_full..].to_vec();
        let s: f64 = rw.iter().sum();
        let cdf: Vec<f64> = rw
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w / s;
                Some(*acc)
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        let mut used: HashMap<Vec<bool>, usize> = HashMap::new();
        let mut perm: Vec<usize> = (0..m).collect();
        let mut draws = 0;
        while left > 0 && draws < 4 * nsamples {
            draws += 1;
            let u: f64 = rng.random();
            let ind = cdf.iter().position(|&c| u < c).unwrap_or(cdf.len() - 1);
            let size = ind + num_full + 1;
            perm.shuffle(&mut rng);
            let mut mask = vec![false; m];
            for &i in &perm[..size] {
                mask[i] = true;
            }
            let new = !used.contains_key(&mask);
            let pos = if new {
                used.insert(mask.clone(), masks.len());
                left -= 1;
                masks.push(mask.clone());
                weights.push(1.0);
                masks.len() - 1
            } else {
                let p = used[&mask];
                weights[p] += 1.0;
                p
            };
            if left > 0 && size <= num_paired {
                if new {
                    left -= 1;
                    masks.push(mask.iter().map(|b| !b).collect());
                    weights.push(1.0);
                } else {
                    weights[pos + 1] += 1.0;
                }
            }
        }
        let weight_left: f64 = weight_vector[num_full..].iter().sum();
        let sampled: f64 = weights[nfixed..].iter().sum();
        if sampled > 0.0 {
            for w in &mut weights[nfixed..] {
                *w *= weight_left / sampled;
            }
        }
    }
    (masks, weights)
}

/// Weighted least squares with the efficiency constraint eliminated on the last variable.
fn solve(
    masks: &[Vec<bool>],
    weights: &[f64],
    ey: &[f64],
    total: f64,
    fnull: f64,
    m: usize,
) -> Result<Vec<f64>, MlpError> {
    let k = m - 1;
    let mut xtwx = vec![0.0; k * k];
    let mut xtwy = vec![0.0; k];
    let mut row = vec![0.0; k];
    for ((mask, &w), &e) in masks.iter().zip(weights).zip(ey) {
        let last = if mask[m - 1] { 1.0 } else { 0.0 };
        let y = (e - fnull) - last * total;
        for (j, r) in row.iter_mut().enumerate() {
            *r = (if mask[j] { 1.0 } else { 0.0 }) - last;
        }
        for a in 0..k {
            if row[a] == 0.0 {
                continue;
            }
            xtwy[a] += w * row[a] * y;
            for b in 0..k {
                xtwx[a * k + b] += w * row[a] * row[b];
            }
        }
    }
    let phi_head = solve_linear(&mut xtwx, &mut xtwy, k).ok_or_else(|| {
        MlpError::Shape("KernelSHAP regression is singular; use more samples".into())
    })?;
    let mut phi = phi_head;
    let rest: f64 = phi.iter().sum();
    phi.push(total - rest);
    Ok(phi)
}

/// Gaussian elimination with partial pivoting on a dense `k x k` system.
fn solve_linear(a: &mut [f64], b: &mut [f64], k: usize) -> Option<Vec<f64>> {
    for col in 0..k {
        let pivot =
            (col..k).max_by(|&i, &j| a[i * k + col].abs().total_cmp(&a[j * k + col].abs()))?;
        if a[pivot * k + col].abs() < 1e-300 {
            return None;
        }
        if pivot != col {
            for j in 0..k {
                a.swap(pivot * k + j, col * k + j);
            }
            b.swap(pivot, col);
        }
        for i in col + 1..k {
            let f = a[i * k + col] / a[col * k + col];
            if f != 0.0 {
                for j in col..k {
                    a[i * k + j] -= f * a[col * k + j];
                }
                b[i] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; k];
    for i in (0..k).rev() {
        let s: f64 = (i + 1..k).map(|j| a[i * k + j] * x[j]).sum();
        x[i] = (b[i] - s) / a[i * k + i];
    }
    Some(x)
}

/// Exact Shapley values of the interventional game by enumerating all coalitions
/// (exponential: for tests and for small `M`).
pub fn exact_shapley<F>(
    f: &F,
    background: &Array2<f64>,
    groups: &[Vec<usize>],
    x: &[f64],
) -> Result<Vec<f64>, MlpError>
where
    F: Fn(&Array2<f64>) -> Result<Vec<f64>, MlpError>,
{
    let m = groups.len();
    let n = background.nrows();
    let width = background.ncols();
    let mut v = vec![0.0; 1 << m];
    let mut synth = Array2::zeros(((1 << m) * n, width));
    for s in 0..(1usize << m) {
        let mut block =
            synth.slice_axis_mut(ndarray::Axis(0), ndarray::Slice::from(s * n..(s + 1) * n));
        block.assign(background);
        for (g, group) in groups.iter().enumerate() {
            if s & (1 << g) != 0 {
                for &j in group {
                    block.column_mut(j).fill(x[j]);
                }
            }
        }
    }
    let out = f(&synth)?;
    for (s, vs) in v.iter_mut().enumerate() {
        *vs = out[s * n..(s + 1) * n].iter().sum::<f64>() / n as f64;
    }
    let fact = |k: usize| (1..=k).fold(1.0, |a, i| a * i as f64);
    let mut phi = vec![0.0; m];
    for (i, p) in phi.iter_mut().enumerate() {
        for s in 0..(1usize << m) {
            if s & (1 << i) != 0 {
                continue;
            }
            let size = s.count_ones() as usize;
            let w = fact(size) * fact(m - size - 1) / fact(m);
            *p += w * (v[s | (1 << i)] - v[s]);
        }
    }
    Ok(phi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear(w: Vec<f64>, b: f64) -> impl Fn(&Array2<f64>) -> Result<Vec<f64>, MlpError> {
        move |x: &Array2<f64>| {
            Ok(x.rows()
                .into_iter()
                .map(|r| r.iter().zip(&w).map(|(a, c)| a * c).sum::<f64>() + b)
                .collect())
        }
    }

    fn background(n: usize, d: usize, seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |_| rng.random::<f64>() * 4.0 - 2.0)
    }

    #[test]
    fn linear_model_gets_the_closed_form_values() {
        // For f = w.x + b with an interventional background, phi_j = w_j (x_j - mean_b x_j).
        let w = vec![1.5, -2.0, 0.0, 0.7, 3.0, -0.4];
        let bg = background(30, 6, 1);
        let x = [0.3, 1.2, -0.5, 2.0, -1.0, 0.9];
        let means: Vec<f64> = (0..6).map(|j| bg.column(j).mean().unwrap()).collect();
        let groups: Vec<Vec<usize>> = (0..6).map(|j| vec![j]).collect();
        let ex = KernelExplainer::new(linear(w.clone(), 0.25), bg.clone(), groups).unwrap();
        // Exhaustive (2^6 - 2 = 62 coalitions) and sampled (fewer samples than coalitions).
        for nsamples in [None, Some(30)] {
            let e = ex.explain(&x, KernelShapOptions { nsamples, seed: 3 }).unwrap();
            for j in 0..6 {
                let expect = w[j] * (x[j] - means[j]);
                assert!(
                    (e.values[j] - expect).abs() < 1e-9,
                    "{nsamples:?} j={j}: {} vs {expect}",
                    e.values[j]
                );
            }
            let sum: f64 = e.values.iter().sum();
            assert!((e.base_value + sum - e.output).abs() < 1e-9);
        }
    }

    #[test]
    fn exhaustive_kernel_shap_equals_exact_shapley_on_a_nonlinear_model() {
        let f = |x: &Array2<f64>| -> Result<Vec<f64>, MlpError> {
            Ok(x.rows()
                .into_iter()
                .map(|r| 1.0 / (1.0 + (-(r[0] * r[1] - 0.5 * r[2] + r[3].max(0.0) * r[4])).exp()))
                .collect())
        };
        let bg = background(25, 5, 2);
        let x = [1.0, -1.5, 0.4, 1.1, -0.7];
        let groups: Vec<Vec<usize>> = (0..5).map(|j| vec![j]).collect();
        let exact = exact_shapley(&f, &bg, &groups, &x).unwrap();
        let e = KernelExplainer::new(f, bg, groups)
            .unwrap()
            .explain(&x, KernelShapOptions::default())
            .unwrap();
        for (a, b) in e.values.iter().zip(&exact) {
            assert!((a - b).abs() < 1e-10, "{a} vs {b}");
        }
    }

    #[test]
    fn groups_and_non_varying_features() {
        // Groups {0,1}, {2}, {3}; column 2 equals every background row so its group gets 0.
        let f = linear(vec![1.0, 2.0, -1.0, 5.0], 0.0);
        let mut bg = background(10, 4, 4);
        bg.column_mut(2).fill(0.5);
        let x = [1.0, 1.0, 0.5, 9.0];
        let ex = KernelExplainer::new(f, bg.clone(), vec![vec![0, 1], vec![2], vec![3]]).unwrap();
        let e = ex.explain(&x, KernelShapOptions::default()).unwrap();
        let m = |j: usize| bg.column(j).mean().unwrap();
        assert!((e.values[0] - ((1.0 - m(0)) + 2.0 * (1.0 - m(1)))).abs() < 1e-9);
        assert_eq!(e.values[1], 0.0, "a group equal to every background row gets 0");
        assert!((e.values[2] - 5.0 * (9.0 - m(3))).abs() < 1e-9);
        // Groups must partition the columns.
        assert!(
            KernelExplainer::new(linear(vec![1.0; 4], 0.0), bg.clone(), vec![vec![0, 1], vec![2]])
                .is_err()
        );
        assert!(
            KernelExplainer::new(linear(vec![1.0; 4], 0.0), bg, vec![vec![0, 1, 2], vec![2, 3]])
                .is_err()
        );
    }

    #[test]
    fn combinations_are_lexicographic() {
        let mut all = Vec::new();
        combinations(4, 2, |c| all.push(c.to_vec()));
        assert_eq!(
            all,
            vec![vec![0, 1], vec![0, 2], vec![0, 3], vec![1, 2], vec![1, 3], vec![2, 3]]
        );
    }
}
