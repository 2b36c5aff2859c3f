//! Exact path-dependent TreeSHAP.
//!
//! For a row `x` the SHAP value of feature `i` is its Shapley value in the game
//! `v(S) = E[f(x) | x_S]`, where the conditional expectation is the *path-dependent* one of
//! Lundberg, Erion and Lee (2018, "Consistent Individualized Feature Attribution for Tree
//! Ensembles"): at a split on a feature outside `S`, both children are followed, weighted by
//! their covers. The values are the ones `shap.TreeExplainer(feature_perturbation =
//! "tree_path_dependent")` computes (tested to 1e-6 against it, and to 1e-10 against brute-force
//! Shapley values); the way they are computed differs from its Algorithm 2.
//!
//! # Algorithm
//!
//! Fix a leaf `l` with value `v`. Let `U` be the distinct features split on along its path
//! (`u = |U|`), and for `j` in `U` let `z_j` be the product of the cover fractions
//! `cover(child) / cover(parent)` of the splits on `j` along the path and `o_j` whether `x`
//! satisfies all of them. The leaf's share of the game is `v_l(S) = v * prod_{j in S} o_j *
//! prod_{j in U \ S} z_j`: it vanishes unless `S` is inside the satisfied set `P = {j : o_j}`.
//! Writing `N = U \ P`, `Z_N = prod_{j in N} z_j`, `w(k) = k! (u-k-1)! / u!` (the Shapley
//! weights for `u` players) and `F(Q) = sum_{S subset of Q} w(|S|) prod_{j in Q \ S} z_j`, the
//! Shapley values of the leaf's game are
//!
//! - `phi_j = -v Z_N F(P)` for every `j` in `N` (one value shared by all of them), and
//! - `phi_i = v (1 - z_i) Z_N F(P \ {i})` for `i` in `P`.
//!
//! `F(Q)` is `sum_k w(k) c_k` where `c_k` are the coefficients of the polynomial
//! `g_Q(t) = prod_{j in Q} (z_j + t)`. A depth-first walk keeps `g_P` (multiplying by
//! `(z + t)` when the row's path goes the satisfied way, in `O(p)`), `Z_N` and `u`; a split on a
//! feature already on the path divides its old factor out again (synthetic division, which only
//! multiplies by `z <= 1`, so it is stable) before applying the combined one. At a leaf, `F(P)`
//! costs `O(p)` and each `F(P \ {i})` is one division of `g_P` by `(z_i + t)`, `O(p)`. A leaf
//! thus costs `O(u + p^2)`, against `O(u^2)` with divisions in Algorithm 2 (which unwinds every
//! path feature, satisfied or not); on rows far from most leaves `p` is small.
//!
//! The trees are flattened once per explainer into a structure of arrays in depth-first
//! pre-order (left child = next node), with covers turned into fractions and leaf values
//! pre-multiplied by the tree weight; all scratch space (feature stack and polynomial segments,
//! `O(D^2)` for depth `D`) is allocated once per explainer, none per node or row.
//!
//! By efficiency of Shapley values, `sum_i phi_i + E[f] = f(x)`, with `E[f]` the cover-weighted
//! mean of the leaves ([`expected_value`]). The values are in the ensemble's raw output space:
//! log-odds for boosting, probability for forests.

use crate::tree::{LEAF, Tree, TreeEnsemble};

/// Marks a feature that is not on the current path.
const ABSENT: u32 = u32::MAX;

/// The cover-weighted mean output of a tree (its value at the root).
pub fn expected_value(tree: &Tree) -> f64 {
    tree.nodes.first().map_or(0.0, |n| n.value)
}

/// An ensemble flattened for TreeSHAP: all trees' nodes in depth-first pre-order, as a structure
/// of arrays. An internal node's left child is the next node.
#[derive(Debug, Clone)]
struct Flat {
    /// Split feature (internal nodes).
    feature: Vec<u32>,
    /// Split threshold (internal nodes); `x <= threshold` goes left.
    threshold: Vec<f64>,
    /// Right child (internal nodes), or [`LEAF`].
    right: Vec<u32>,
    /// `cover(node) / cover(parent)`; 1 at roots.
    fraction: Vec<f64>,
    /// Leaf value times the tree weight (leaves).
    value: Vec<f64>,
    /// Root of each tree.
    roots: Vec<u32>,
    /// Deepest leaf over all trees.
    max_depth: usize,
    /// Shapley weights: row `u` (stride `max_depth + 1`) holds `k! (u-k-1)! / u!`, `k < u`.
    weights: Vec<f64>,
}

impl Flat {
    /// # Panics
    /// If a tree breaks the invariants of [`Tree::validate`] (children after their parent and
    /// in range), which every trainer and [`crate::TreeModel::validate`] guarantee.
    fn new(ensemble: &TreeEnsemble) -> Flat {
        let n_nodes: usize = ensemble.trees.iter().map(|t| t.nodes.len()).sum();
        let mut flat = Flat {
            feature: Vec::with_capacity(n_nodes),
            threshold: Vec::with_capacity(n_nodes),
            right: Vec::with_capacity(n_nodes),
            fraction: Vec::with_capacity(n_nodes),
            value: Vec::with_capacity(n_nodes),
            roots: Vec::with_capacity(ensemble.trees.len()),
            max_depth: 0,
            weights: Vec::new(),
        };
        // (source node, parent cover, depth, flat index of the parent whose right child it is)
        let mut stack: Vec<(usize, f64, usize, Option<usize>)> = Vec::new();
        for tree in &ensemble.trees {
            let Some(root) = tree.nodes.first() else { continue };
            flat.roots.push(flat.feature.len() as u32);
            stack.push((0, root.cover, 0, None));
            while let Some((i, parent_cover, depth, right_of)) = stack.pop() {
                let n = &tree.nodes[i];
                let at = flat.feature.len();
                if let Some(p) = right_of {
                    flat.right[p] = at as u32;
                }
                flat.fraction.push(n.cover / parent_cover);
                flat.max_depth = flat.max_depth.max(depth);
                if n.is_leaf() {
                    flat.feature.push(0);
                    flat.threshold.push(0.0);
                    flat.right.push(LEAF);
                    flat.value.push(n.value * ensemble.tree_weight);
                } else {
                    let (l, r) = (n.left as usize, n.right as usize);
                    assert!(
                        l > i && r > i && l < tree.nodes.len() && r < tree.nodes.len(),
                        "TreeSHAP: node {i} has children out of order or range (validate the model)"
                    );
                    flat.feature.push(n.feature);
                    flat.threshold.push(n.threshold);
                    flat.right.push(LEAF); // patched when the right child is emitted
                    flat.value.push(0.0);
                    // Pre-order, left first: push right, then left.
                    stack.push((r, n.cover, depth + 1, Some(at)));
                    stack.push((l, n.cover, depth + 1, None));
                }
            }
        }
        let stride = flat.max_depth + 1;
        flat.weights = vec![0.0; stride * stride];
        for u in 1..stride {
            let row = &mut flat.weights[u * stride..u * stride + u];
            // w(0) = 1/u, w(k+1) = w(k) (k+1) / (u-k-1): no factorials, no overflow.
            let mut w = 1.0 / u as f64;
            for (k, slot) in row.iter_mut().enumerate() {
                *slot = w;
                if k + 1 < u {
                    w *= (k + 1) as f64 / (u - k - 1) as f64;
                }
            }
        }
        flat
    }

    /// Length of the polynomial buffer: the root's `[1]`, then at most `2 p + 1 <= 2 D + 1`
    /// new coefficients per level.
    fn poly_len(&self) -> usize {
        1 + self.max_depth * (2 * self.max_depth + 1)
    }
}

/// Scratch space for one walk, allocated once and reused for every tree and row.
#[derive(Debug, Clone)]
struct Scratch {
    /// Distinct features on the current path (the first `u` entries are live).
    feature: Vec<u32>,
    /// Their combined cover fractions `z_j`.
    zero: Vec<f64>,
    /// Whether the row satisfies all their splits (`o_j`).
    one: Vec<bool>,
    /// Per input column: its index in `feature`, or [`ABSENT`].
    position: Vec<u32>,
    /// Stack of polynomial coefficient segments (`g_P`, lowest degree first).
    poly: Vec<f64>,
}

impl Scratch {
    fn new(flat: &Flat, n_features: usize) -> Scratch {
        let d = flat.max_depth + 1;
        let mut poly = vec![0.0; flat.poly_len()];
        poly[0] = 1.0;
        Scratch {
            feature: vec![0; d],
            zero: vec![0.0; d],
            one: vec![false; d],
            position: vec![ABSENT; n_features],
            poly,
        }
    }
}

/// `dst = src * (z + t)`; `dst.len() == src.len() + 1`.
#[inline(always)]
fn multiply(src: &[f64], z: f64, dst: &mut [f64]) {
    let n = src.len();
    let dst = &mut dst[..=n];
    let mut prev = 0.0;
    for (d, &c) in dst.iter_mut().zip(src) {
        *d = prev + c * z;
        prev = c;
    }
    dst[n] = prev;
}

/// `dst = src / (z + t)` for an `src` that `(z + t)` divides; `dst.len() == src.len() - 1`.
/// Top-down synthetic division: only multiplies by `z` (at most 1), so errors do not grow.
#[inline(always)]
fn divide(src: &[f64], z: f64, dst: &mut [f64]) {
    let n = src.len() - 1;
    let Some((last, rest)) = dst[..n].split_last_mut() else { return };
    let mut q = src[n];
    *last = q;
    for (d, &c) in rest.iter_mut().rev().zip(src[1..n].iter().rev()) {
        q = c - z * q;
        *d = q;
    }
}

/// One row's depth-first walk over one tree.
struct Walk<'a> {
    flat: &'a Flat,
    x: &'a [f64],
    phi: &'a mut [f64],
    s: &'a mut Scratch,
}

impl Walk<'_> {
    /// Visits `node` with `g_P` at `poly[g..=g + p]`, `u` distinct features on the path, their
    /// `Z_N` product `zn`, and `poly[top..]` free.
    fn visit(&mut self, node: usize, g: usize, p: usize, u: usize, zn: f64, top: usize) {
        let flat = self.flat;
        let right = flat.right[node];
        if right == LEAF {
            self.leaf(node, g, p, u, zn);
            return;
        }
        let f = flat.feature[node] as usize;
        let (hot, cold) = if self.x[f] <= flat.threshold[node] {
            (node + 1, right as usize)
        } else {
            (right as usize, node + 1)
        };
        let (z_hot, z_cold) = (flat.fraction[hot], flat.fraction[cold]);
        let k = self.s.position[f];
        if k == ABSENT {
            // A new feature: satisfied on the hot side (factor (z + t)), not on the cold side.
            self.s.position[f] = u as u32;
            self.s.feature[u] = f as u32;
            self.s.zero[u] = z_hot;
            self.s.one[u] = true;
            {
                let (a, b) = self.s.poly.split_at_mut(top);
                multiply(&a[g..=g + p], z_hot, &mut b[..p + 2]);
            }
            self.visit(hot, top, p + 1, u + 1, zn, top + p + 2);
            self.s.zero[u] = z_cold;
            self.s.one[u] = false;
            self.visit(cold, g, p, u + 1, zn * z_cold, top);
            self.s.position[f] = ABSENT;
        } else {
            let k = k as usize;
            let (z_old, one_old) = (self.s.zero[k], self.s.one[k]);
            if one_old {
                // Divide the old factor out (at `top`, degree p - 1), then multiply the combined
                // one in for the hot side (at `top + p`); the cold side is not satisfied.
                let z_new = z_old * z_hot;
                {
                    let (a, b) = self.s.poly.split_at_mut(top);
                    let (q, h) = b.split_at_mut(p);
                    divide(&a[g..=g + p], z_old, q);
                    multiply(q, z_new, &mut h[..=p]);
                }
                self.s.zero[k] = z_new;
                self.visit(hot, top + p, p, u, zn, top + 2 * p + 1);
                let z_new = z_old * z_cold;
                self.s.zero[k] = z_new;
                self.s.one[k] = false;
                self.visit(cold, top, p - 1, u, zn * z_new, top + p);
            } else {
                // Unsatisfied already: stays in N either way, only Z_N changes.
                self.s.zero[k] = z_old * z_hot;
                self.visit(hot, g, p, u, zn * z_hot, top);
                self.s.zero[k] = z_old * z_cold;
                self.visit(cold, g, p, u, zn * z_cold, top);
            }
            self.s.zero[k] = z_old;
            self.s.one[k] = one_old;
        }
    }

    #[inline(always)]
    fn leaf(&mut self, node: usize, g: usize, p: usize, u: usize, zn: f64) {
        if u == 0 {
            return; // a lone root: no feature matters
        }
        let flat = self.flat;
        let scale = flat.value[node] * zn;
        let stride = flat.max_depth + 1;
        let w = &flat.weights[u * stride..u * stride + u];
        let c = &self.s.poly[g..=g + p];
        // -v Z_N F(P), shared by every unsatisfied feature.
        let unsat =
            if p < u { -scale * c.iter().zip(w).map(|(c, w)| c * w).sum::<f64>() } else { 0.0 };
        let (feature, zero, one) = (&self.s.feature[..u], &self.s.zero[..u], &self.s.one[..u]);
        for ((&f, &z), &o) in feature.iter().zip(zero).zip(one) {
            let f = f as usize;
            if !o {
                self.phi[f] += unsat;
                continue;
            }
            // F(P \ {i}) = sum_k w(k) q_k with q = g_P / (z_i + t), top-down, fused.
            let mut q = c[p]; // q_{p-1} (1: g_P is monic)
            let mut sum = w[p - 1] * q;
            for (&ck, &wk) in c[1..p].iter().rev().zip(w[..p - 1].iter().rev()) {
                q = ck - z * q;
                sum += wk * q;
            }
            self.phi[f] += scale * (1.0 - z) * sum;
        }
    }
}

/// SHAP values of one row: `phi` per feature, plus the base value `E[f]`, in the ensemble's
/// raw output space. `phi.iter().sum() + base == ensemble.raw(row)` up to rounding.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// One value per feature.
    pub phi: Vec<f64>,
    /// The expected raw output over the training distribution (as the covers record it).
    pub base: f64,
}

/// A TreeSHAP explainer for an ensemble: the trees flattened once, scratch space reused across
/// rows.
#[derive(Debug, Clone)]
pub struct TreeShap<'a> {
    ensemble: &'a TreeEnsemble,
    flat: Flat,
    base: f64,
    scratch: Scratch,
}

impl<'a> TreeShap<'a> {
    /// Prepares an explainer (flattens the trees; `O(nodes)`).
    ///
    /// # Panics
    /// If a tree breaks [`Tree::validate`]'s ordering invariants (children after their parent,
    /// in range); trained and validated models never do.
    pub fn new(ensemble: &'a TreeEnsemble) -> Self {
        let flat = Flat::new(ensemble);
        let base = ensemble.base_offset
            + ensemble.tree_weight * ensemble.trees.iter().map(expected_value).sum::<f64>();
        let scratch = Scratch::new(&flat, ensemble.n_features);
        TreeShap { ensemble, flat, base, scratch }
    }

    /// The base value `E[f]` (raw output space).
    pub fn base_value(&self) -> f64 {
        self.base
    }

    /// SHAP values of one row, written into `phi` (which is zeroed first).
    ///
    /// # Panics
    /// If `row` or `phi` is narrower than the ensemble's `n_features`.
    pub fn shap_into(&mut self, row: &[f64], phi: &mut [f64]) {
        explain_row(&self.flat, &mut self.scratch, row, phi);
    }

    /// SHAP values of one row.
    pub fn explain(&mut self, row: &[f64]) -> Explanation {
        let mut phi = vec![0.0; self.ensemble.n_features];
        self.shap_into(row, &mut phi);
        Explanation { phi, base: self.base }
    }

    /// SHAP values of every row of a matrix, one row of `phi` per input row, on this thread.
    pub fn explain_matrix(&mut self, x: &ndarray::Array2<f64>) -> ndarray::Array2<f64> {
        let mut out = ndarray::Array2::zeros((x.nrows(), self.ensemble.n_features));
        explain_rows(&self.flat, &mut self.scratch, x.view(), out.view_mut());
        out
    }

    /// Like [`TreeShap::explain_matrix`], with the rows split into contiguous blocks over
    /// `threads` scoped threads (0 = the available parallelism). Same values, bit for bit.
    pub fn explain_matrix_parallel(
        &self,
        x: &ndarray::Array2<f64>,
        threads: usize,
    ) -> ndarray::Array2<f64> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            threads
        };
        let mut out = ndarray::Array2::zeros((x.nrows(), self.ensemble.n_features));
        let block = x.nrows().div_ceil(threads.max(1)).max(1);
        let n_features = self.ensemble.n_features;
        std::thread::scope(|scope| {
            for (xs, outs) in x
                .axis_chunks_iter(ndarray::Axis(0), block)
                .zip(out.axis_chunks_iter_mut(ndarray::Axis(0), block))
            {
                let flat = &self.flat;
                scope.spawn(move || {
                    let mut scratch = Scratch::new(flat, n_features);
                    explain_rows(flat, &mut scratch, xs, outs);
                });
            }
        });
        out
    }
}

fn explain_row(flat: &Flat, scratch: &mut Scratch, row: &[f64], phi: &mut [f64]) {
    phi.fill(0.0);
    let mut walk = Walk { flat, x: row, phi, s: scratch };
    for &root in &flat.roots {
        walk.visit(root as usize, 0, 0, 0, 1.0, 1);
    }
}

fn explain_rows(
    flat: &Flat,
    scratch: &mut Scratch,
    x: ndarray::ArrayView2<f64>,
    mut out: ndarray::ArrayViewMut2<f64>,
) {
    let mut row = vec![0.0; x.ncols()];
    let mut phi = vec![0.0; out.ncols()];
    for (r, mut o) in x.rows().into_iter().zip(out.rows_mut()) {
        for (dst, src) in row.iter_mut().zip(r.iter()) {
            *dst = *src;
        }
        explain_row(flat, scratch, &row, &mut phi);
        for (dst, src) in o.iter_mut().zip(&phi) {
            *dst = *src;
        }
    }
}

/// Global importance: the mean absolute SHAP value of each feature over the rows of a SHAP
/// matrix (as returned by [`TreeShap::explain_matrix`]).
pub fn mean_abs_shap(shap: &ndarray::Array2<f64>) -> Vec<f64> {
    let n = shap.nrows().max(1) as f64;
    shap.columns().into_iter().map(|c| c.iter().map(|v| v.abs()).sum::<f64>() / n).collect()
}

/// Features ranked by global importance, most important first, as `(name, mean |SHAP|)`.
pub fn ranked_importance(names: &[String], importance: &[f64]) -> Vec<(String, f64)> {
    let mut ranked: Vec<(String, f64)> =
        names.iter().cloned().zip(importance.iter().copied()).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
}

/// The path-dependent conditional expectation `E[f(x) | x_S]` of one tree, by brute force:
/// follow `x` at splits on features in `subset`, average the children by cover elsewhere.
/// Exponential in nothing but slow; used to check [`tree_shap`] against the Shapley formula.
pub fn conditional_expectation(tree: &Tree, row: &[f64], subset: &[bool]) -> f64 {
    fn go(tree: &Tree, row: &[f64], subset: &[bool], i: usize) -> f64 {
        let n = &tree.nodes[i];
        if n.is_leaf() {
            return n.value;
        }
        let f = n.feature as usize;
        if subset[f] {
            let next = if row[f] <= n.threshold { n.left } else { n.right };
            go(tree, row, subset, next as usize)
        } else {
            let (l, r) = (&tree.nodes[n.left as usize], &tree.nodes[n.right as usize]);
            (l.cover * go(tree, row, subset, n.left as usize)
                + r.cover * go(tree, row, subset, n.right as usize))
                / n.cover
        }
    }
    go(tree, row, subset, 0)
}
