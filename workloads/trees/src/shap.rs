//! Exact path-dependent TreeSHAP (Lundberg, Erion, Lee 2018, "Consistent Individualized
//! Feature Attribution for Tree Ensembles", Algorithm 2).
//!
//! For a row `x` the SHAP value of feature `i` is its Shapley value in the game
//! `v(S) = E[f(x) | x_S]`, where the conditional expectation is the *path-dependent* one: at a
//! split on a feature outside `S`, both children are followed, weighted by their covers. The
//! polynomial algorithm tracks, along each root-to-leaf path, the proportion of feature
//! subsets of every size that flow down the path (`EXTEND`), and removes a feature again when
//! it is split on twice (`UNWIND`). It runs in `O(L D^2)` per row and tree, for `L` leaves and
//! depth `D`.
//!
//! By efficiency of Shapley values, `sum_i phi_i + E[f] = f(x)`, with `E[f]` the cover-weighted
//! mean of the leaves ([`expected_value`]). The values are in the ensemble's raw output space:
//! log-odds for boosting, probability for forests.

use crate::tree::{Tree, TreeEnsemble};

#[derive(Debug, Clone, Copy, Default)]
struct PathElement {
    /// Feature of the split that created this element; `usize::MAX` for the root element.
    feature: usize,
    zero_fraction: f64,
    one_fraction: f64,
    pweight: f64,
}

/// The cover-weighted mean output of a tree (its value at the root).
pub fn expected_value(tree: &Tree) -> f64 {
    tree.nodes.first().map_or(0.0, |n| n.value)
}

/// Reusable scratch space for [`tree_shap`], sized for trees up to a depth.
#[derive(Debug, Clone, Default)]
pub struct ShapBuffer {
    path: Vec<PathElement>,
}

impl ShapBuffer {
    fn ensure(&mut self, max_depth: usize) {
        // One path segment per recursion level, each at most `depth + 2` long.
        let need = (max_depth + 2) * (max_depth + 3) / 2;
        if self.path.len() < need {
            self.path.resize(need, PathElement::default());
        }
    }
}

/// Adds `scale *` the SHAP values of one tree for `row` into `phi` (length = number of
/// features). `max_depth` must be at least the tree's depth.
pub fn tree_shap(
    tree: &Tree,
    max_depth: usize,
    row: &[f64],
    phi: &mut [f64],
    scale: f64,
    buf: &mut ShapBuffer,
) {
    if tree.nodes.is_empty() {
        return;
    }
    buf.ensure(max_depth);
    recurse(tree, row, phi, scale, &mut buf.path, 0, 0, 0, 1.0, 1.0, usize::MAX);
}

#[allow(clippy::too_many_arguments)]
fn recurse(
    tree: &Tree,
    x: &[f64],
    phi: &mut [f64],
    scale: f64,
    buf: &mut [PathElement],
    node: usize,
    parent_offset: usize,
    mut unique_depth: usize,
    parent_zero: f64,
    parent_one: f64,
    parent_feature: usize,
) {
    // This level's path segment starts right after the parent's; copy the parent's path in.
    let offset = if node == 0 { 0 } else { parent_offset + unique_depth };
    if node != 0 {
        buf.copy_within(parent_offset..parent_offset + unique_depth, offset);
    }
    {
        let path = &mut buf[offset..];
        extend_path(path, unique_depth, parent_zero, parent_one, parent_feature);
    }
    let n = &tree.nodes[node];
    if n.is_leaf() {
        let path = &buf[offset..];
        for i in 1..=unique_depth {
            let w = unwound_path_sum(path, unique_depth, i);
            let el = path[i];
            phi[el.feature] += w * (el.one_fraction - el.zero_fraction) * n.value * scale;
        }
        return;
    }
    let split = n.feature as usize;
    let (hot, cold) = if x[split] <= n.threshold { (n.left, n.right) } else { (n.right, n.left) };
    let (hot, cold) = (hot as usize, cold as usize);
    let w = n.cover;
    let hot_zero = tree.nodes[hot].cover / w;
    let cold_zero = tree.nodes[cold].cover / w;
    let mut incoming_zero = 1.0;
    let mut incoming_one = 1.0;

    // If this feature was split on before on the path, undo that split and redo it here.
    let path = &mut buf[offset..];
    if let Some(k) = (1..=unique_depth).find(|&k| path[k].feature == split) {
        incoming_zero = path[k].zero_fraction;
        incoming_one = path[k].one_fraction;
        unwind_path(path, unique_depth, k);
        unique_depth -= 1;
    }
    recurse(
        tree,
        x,
        phi,
        scale,
        buf,
        hot,
        offset,
        unique_depth + 1,
        hot_zero * incoming_zero,
        incoming_one,
        split,
    );
    recurse(
        tree,
        x,
        phi,
        scale,
        buf,
        cold,
        offset,
        unique_depth + 1,
        cold_zero * incoming_zero,
        0.0,
        split,
    );
}

fn extend_path(path: &mut [PathElement], d: usize, zero: f64, one: f64, feature: usize) {
    path[d] = PathElement {
        feature,
        zero_fraction: zero,
        one_fraction: one,
        pweight: if d == 0 { 1.0 } else { 0.0 },
    };
    let denom = (d + 1) as f64;
    for i in (0..d).rev() {
        path[i + 1].pweight += one * path[i].pweight * (i + 1) as f64 / denom;
        path[i].pweight = zero * path[i].pweight * (d - i) as f64 / denom;
    }
}

fn unwind_path(path: &mut [PathElement], d: usize, path_index: usize) {
    let one = path[path_index].one_fraction;
    let zero = path[path_index].zero_fraction;
    let mut next_one_portion = path[d].pweight;
    let denom = (d + 1) as f64;
    for i in (0..d).rev() {
        if one != 0.0 {
            let tmp = path[i].pweight;
            path[i].pweight = next_one_portion * denom / ((i + 1) as f64 * one);
            next_one_portion = tmp - path[i].pweight * zero * (d - i) as f64 / denom;
        } else {
            path[i].pweight = path[i].pweight * denom / (zero * (d - i) as f64);
        }
    }
    for i in path_index..d {
        path[i].feature = path[i + 1].feature;
        path[i].zero_fraction = path[i + 1].zero_fraction;
        path[i].one_fraction = path[i + 1].one_fraction;
    }
}

fn unwound_path_sum(path: &[PathElement], d: usize, path_index: usize) -> f64 {
    let one = path[path_index].one_fraction;
    let zero = path[path_index].zero_fraction;
    let mut next_one_portion = path[d].pweight;
    let mut total = 0.0;
    if one != 0.0 {
        for i in (0..d).rev() {
            let tmp = next_one_portion / ((i + 1) as f64 * one);
            total += tmp;
            next_one_portion = path[i].pweight - tmp * zero * (d - i) as f64;
        }
    } else {
        for i in (0..d).rev() {
            total += path[i].pweight / (zero * (d - i) as f64);
        }
    }
    total * (d + 1) as f64
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

/// A TreeSHAP explainer for an ensemble, reusing scratch space across rows.
#[derive(Debug, Clone)]
pub struct TreeShap<'a> {
    ensemble: &'a TreeEnsemble,
    depths: Vec<usize>,
    base: f64,
    buf: ShapBuffer,
}

impl<'a> TreeShap<'a> {
    /// Prepares an explainer.
    pub fn new(ensemble: &'a TreeEnsemble) -> Self {
        let depths: Vec<usize> = ensemble.trees.iter().map(Tree::max_depth).collect();
        let base = ensemble.base_offset
            + ensemble.tree_weight * ensemble.trees.iter().map(expected_value).sum::<f64>();
        TreeShap { ensemble, depths, base, buf: ShapBuffer::default() }
    }

    /// The base value `E[f]` (raw output space).
    pub fn base_value(&self) -> f64 {
        self.base
    }

    /// SHAP values of one row, written into `phi` (which is zeroed first).
    pub fn shap_into(&mut self, row: &[f64], phi: &mut [f64]) {
        phi.fill(0.0);
        for (tree, &depth) in self.ensemble.trees.iter().zip(&self.depths) {
            tree_shap(tree, depth, row, phi, self.ensemble.tree_weight, &mut self.buf);
        }
    }

    /// SHAP values of one row.
    pub fn explain(&mut self, row: &[f64]) -> Explanation {
        let mut phi = vec![0.0; self.ensemble.n_features];
        self.shap_into(row, &mut phi);
        Explanation { phi, base: self.base }
    }

    /// SHAP values of every row of a matrix, one row of `phi` per input row.
    pub fn explain_matrix(&mut self, x: &ndarray::Array2<f64>) -> ndarray::Array2<f64> {
        let mut out = ndarray::Array2::zeros((x.nrows(), self.ensemble.n_features));
        let mut row = vec![0.0; x.ncols()];
        let mut phi = vec![0.0; self.ensemble.n_features];
        for (i, r) in x.rows().into_iter().enumerate() {
            for (dst, src) in row.iter_mut().zip(r.iter()) {
                *dst = *src;
            }
            self.shap_into(&row, &mut phi);
            for (dst, src) in out.row_mut(i).iter_mut().zip(&phi) {
                *dst = *src;
            }
        }
        out
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
