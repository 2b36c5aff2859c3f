//! Gradient-boosted trees for binary classification (non-private).
//!
//! Logistic loss, second-order (Newton) boosting as in XGBoost: each round fits a tree to the
//! gradients `g = p - y` and hessians `h = p (1 - p)` of the current log-odds, on histogram
//! bins from the training data's quantiles, with depth limit, minimum child hessian
//! (`min_child_weight`), L2 leaf regularisation (`lambda`), minimum split gain and shrinkage
//! (`learning_rate`). The output is log-odds; the probability is its sigmoid.
//!
//! Trees grow depth-wise to `max_depth` (XGBoost's `grow_policy=depthwise` without a leaf
//! limit). Gradients and hessians are `f32` pairs, histograms `f64`, as in XGBoost's `hist`;
//! see the private `boost` module for the layout that makes it fast.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::TreesError;
use crate::boost::{BoostGrower, BoostParams};
use crate::hist::BinnedMatrix;
use crate::tree::{OutputSpace, TreeEnsemble, sigmoid};

/// Settings of [`fit_gbdt`]; names follow XGBoost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbdtConfig {
    /// Boosting rounds (trees).
    pub n_rounds: usize,
    /// Shrinkage applied to every leaf (`eta`).
    pub learning_rate: f64,
    /// Maximum depth of a tree.
    pub max_depth: usize,
    /// Minimum sum of hessians in a child.
    pub min_child_weight: f64,
    /// L2 regularisation of leaf values.
    pub lambda: f64,
    /// Minimum loss reduction to split (`gamma`, in the un-halved gain).
    pub min_split_gain: f64,
    /// Most histogram bins per column.
    pub max_bins: usize,
}

impl Default for GbdtConfig {
    fn default() -> Self {
        GbdtConfig {
            n_rounds: 200,
            learning_rate: 0.1,
            max_depth: 4,
            min_child_weight: 1.0,
            lambda: 1.0,
            min_split_gain: 0.0,
            max_bins: 256,
        }
    }
}

impl GbdtConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), TreesError> {
        let bad = |m: &str| Err(TreesError::InvalidConfig(m.to_string()));
        if self.n_rounds == 0 {
            return bad("n_rounds must be at least 1");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad("learning_rate must be in (0, 1]");
        }
        if self.max_depth == 0 || self.max_depth > 32 {
            return bad("max_depth must be in 1..=32");
        }
        if !(self.min_child_weight >= 0.0 && self.lambda >= 0.0 && self.min_split_gain >= 0.0) {
            return bad("min_child_weight, lambda and min_split_gain must be non-negative");
        }
        if self.max_bins < 2 {
            return bad("max_bins must be at least 2");
        }
        Ok(())
    }
}

/// [`check_xy`] plus one public `(min, max)` range per column: the input check of the private
/// trainers.
pub(crate) fn check_private_input(
    x: &Array2<f64>,
    y: &[f64],
    ranges: &[(f64, f64)],
) -> Result<(), TreesError> {
    check_xy(x, y)?;
    if ranges.len() != x.ncols() {
        return Err(TreesError::InvalidInput(format!(
            "{} public ranges for {} columns",
            ranges.len(),
            x.ncols()
        )));
    }
    Ok(())
}

pub(crate) fn check_xy(x: &Array2<f64>, y: &[f64]) -> Result<(), TreesError> {
    if x.nrows() != y.len() {
        return Err(TreesError::InvalidInput(format!("{} rows but {} labels", x.nrows(), y.len())));
    }
    if x.nrows() == 0 {
        return Err(TreesError::InvalidInput("no training rows".into()));
    }
    if let Some(v) = y.iter().find(|&&v| v != 0.0 && v != 1.0) {
        return Err(TreesError::InvalidInput(format!("label {v} is not 0 or 1")));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(TreesError::InvalidInput("feature matrix has a non-finite value".into()));
    }
    Ok(())
}

/// Row `i` of a standard-layout matrix as a slice (copies only for other layouts).
pub(crate) fn row_of<'a>(
    x: &'a ndarray::ArrayView2<'_, f64>,
    i: usize,
) -> std::borrow::Cow<'a, [f64]> {
    match x.row(i).to_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(x.row(i).to_vec()),
    }
}

/// Trains gradient-boosted trees on `x` (rows) and 0/1 labels `y`. Deterministic.
pub fn fit_gbdt(x: &Array2<f64>, y: &[f64], cfg: &GbdtConfig) -> Result<TreeEnsemble, TreesError> {
    cfg.validate()?;
    check_xy(x, y)?;
    let x = x.as_standard_layout();
    let x = x.view();
    let binned = BinnedMatrix::from_quantiles(x, cfg.max_bins)?;
    let n = y.len();
    let rate = (y.iter().sum::<f64>() / n as f64).clamp(1e-6, 1.0 - 1e-6);
    let base = (rate / (1.0 - rate)).ln();
    let mut margin = vec![base; n];
    let mut gpair = vec![[0.0f32; 2]; n];
    let mut rows: Vec<u32> = Vec::with_capacity(n);
    let mut grower = BoostGrower::new(
        &binned,
        BoostParams {
            max_depth: cfg.max_depth,
            min_child_weight: cfg.min_child_weight,
            lambda: cfg.lambda,
            min_split_gain: cfg.min_split_gain,
            eta: cfg.learning_rate,
        },
    );
    let mut trees = Vec::with_capacity(cfg.n_rounds);
    for _ in 0..cfg.n_rounds {
        for ((gp, &m), &yi) in gpair.iter_mut().zip(&margin).zip(y) {
            let p = sigmoid(m);
            *gp = [(p - yi) as f32, (p * (1.0 - p)).max(1e-16) as f32];
        }
        // Every tree starts from ascending rows (the partition keeps each node's rows in order).
        rows.clear();
        rows.extend(0..n as u32);
        let tree = grower.grow(&mut rows, &gpair);
        grower.add_to_margin(&tree, &rows, &mut margin);
        trees.push(tree);
    }
    Ok(TreeEnsemble {
        trees,
        tree_weight: 1.0,
        base_offset: base,
        output: OutputSpace::LogOdds,
        n_features: x.ncols(),
    })
}
