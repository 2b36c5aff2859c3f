//! Differentially private gradient-boosted trees.
//!
//! # Mechanism
//! In the line of DPBoost (Li, Wu, Wen, He, AAAI 2020) and DP-GBDT with the exponential
//! mechanism for splits and noisy leaves (Grislain and Gonzalvez 2019), accounted in zCDP:
//!
//! 1. Gradients of the logistic loss `g = sigmoid(F(x)) - y` are clipped to
//!    `[-gradient_clip, gradient_clip]` (`g*`); every row has unit weight (`h = 1`), so a node
//!    is summarised by `(G, n)` = (sum of clipped gradients, row count). The initial score is
//!    the public constant 0. Every tree uses all training rows.
//! 2. Each tree is a complete binary tree of depth `max_depth`. At every internal node the split
//!    `(column, threshold)` is chosen among the public grid of candidates
//!    ([`crate::hist::public_cuts`] of public value ranges, never the data) by the exponential
//!    mechanism with utility `gain = G_L^2/(n_L+lambda) + G_R^2/(n_R+lambda)`, parameter
//!    `eps_split` ([`DpGbdtConfig::split_epsilon`]) and a data-independent base measure
//!    (uniform over columns, then over the column's cuts).
//! 3. Each leaf releases `G~ = G + N(0, sigma^2)` and `n~ = n + N(0, sigma^2)` with
//!    `sigma` = [`DpGbdtConfig::leaf_sigma`]. Its value is
//!    `clamp(-learning_rate * G~ / (max(n~, 0) + lambda), ±learning_rate * g*)` and its cover
//!    (for TreeSHAP) `max(n~, 0) + 1`: post-processing.
//!
//! # Sensitivity
//! Neighbouring datasets differ by adding or removing one session.
//! - Leaves: the record changes one leaf's `G` by at most `g*` and its `n` by 1, so the vector
//!   of all leaves' `(G, n)` has L2 sensitivity `sqrt(g*^2 + 1)`.
//! - Splits: for one side, `S^2/(n+lambda)` changes by at most `3 g*^2` when a row with
//!   `|g| <= g*` is added or removed (up: `(2n+1) g*^2/(n+1+lambda) <= 2 g*^2`; down:
//!   `n (3n + 2 lambda) g*^2 / ((n+lambda)(n+lambda+1)) <= 3 g*^2`), and only one side changes:
//!   the utility has sensitivity `3 g*^2` (DPBoost's bound).
//!
//! # Composition
//! Per tree, with `rho_tree = rho / n_trees` and `rho = zcdp_rho(epsilon, delta)`:
//! `split_share * rho_tree` goes to the `max_depth` levels of split selections (the nodes of a
//! level hold disjoint rows, so a level costs one selection: `eps_split^2 / 8` each), and
//! `(1 - split_share) * rho_tree` to the Gaussian leaf release (`(g*^2+1) / (2 sigma^2)`).
//! The trees compose adaptively (each sees the earlier trees only through their released
//! values), so the model is `rho`-zCDP, hence `(epsilon, delta)`-DP. [`privacy_cost`] gives it
//! from the configuration alone.

use ndarray::Array2;
use rand::{CryptoRng, Rng};
use serde::{Deserialize, Serialize};

use crate::TreesError;
use crate::complete::grow_complete;
use crate::dp::{PrivacyCost, exponential_mechanism_with_prior, gaussian, zcdp_rho};
use crate::gbdt::{check_private_input, row_of};
use crate::hist::{BinnedMatrix, public_cuts};
use crate::tree::{OutputSpace, TreeEnsemble, sigmoid};

/// Name of the mechanism, as recorded in [`PrivacyCost::mechanism`].
pub const MECHANISM: &str = "dp-gbdt: clipped gradients, exponential-mechanism splits on a public grid, Gaussian leaf sums and counts, zCDP composition over trees";

/// Settings of [`fit_dp_gbdt`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpGbdtConfig {
    /// Number of trees (boosting rounds).
    pub n_trees: usize,
    /// Depth of every (complete) tree.
    pub max_depth: usize,
    /// Shrinkage of every leaf.
    pub learning_rate: f64,
    /// Target epsilon of the whole model.
    pub epsilon: f64,
    /// Target delta of the whole model.
    pub delta: f64,
    /// Share of each tree's zCDP budget spent on split selection.
    pub split_share: f64,
    /// Gradient clipping bound `g*` (logistic gradients lie in `[-1, 1]`).
    pub gradient_clip: f64,
    /// L2 regularisation of the leaf values (and of the split gain).
    pub lambda: f64,
    /// Size of the public threshold grid per numeric column.
    pub grid: usize,
}

impl Default for DpGbdtConfig {
    fn default() -> Self {
        DpGbdtConfig {
            n_trees: 20,
            max_depth: 4,
            learning_rate: 1.0,
            epsilon: 1.0,
            delta: 1e-5,
            split_share: 0.5,
            gradient_clip: 1.0,
            lambda: 5.0,
            grid: 32,
        }
    }
}

impl DpGbdtConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), TreesError> {
        let bad = |m: &str| Err(TreesError::InvalidConfig(m.to_string()));
        if self.n_trees == 0 {
            return bad("n_trees must be at least 1");
        }
        if self.max_depth == 0 || self.max_depth > 16 {
            return bad("max_depth must be in 1..=16");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 4.0) {
            return bad("learning_rate must be in (0, 4]");
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return bad("epsilon must be positive and finite");
        }
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return bad("delta must be in (0, 1)");
        }
        if !(self.split_share > 0.0 && self.split_share < 1.0) {
            return bad("split_share must be in (0, 1)");
        }
        if !(self.gradient_clip > 0.0 && self.gradient_clip <= 1.0) {
            return bad("gradient_clip must be in (0, 1]");
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return bad("lambda must be non-negative");
        }
        if self.grid < 2 {
            return bad("grid must be at least 2");
        }
        Ok(())
    }

    /// zCDP budget of the whole model, `zcdp_rho(epsilon, delta)`.
    pub fn rho(&self) -> f64 {
        zcdp_rho(self.epsilon, self.delta)
    }

    /// zCDP budget of one tree, `rho / n_trees`.
    pub fn rho_per_tree(&self) -> f64 {
        self.rho() / self.n_trees as f64
    }

    /// Parameter of each split selection: `sqrt(8 * split_share * rho_tree / max_depth)`.
    pub fn split_epsilon(&self) -> f64 {
        (8.0 * self.split_share * self.rho_per_tree() / self.max_depth as f64).sqrt()
    }

    /// L2 sensitivity of a tree's leaf statistics `(G, n)`: `sqrt(gradient_clip^2 + 1)`.
    pub fn leaf_sensitivity(&self) -> f64 {
        (self.gradient_clip * self.gradient_clip + 1.0).sqrt()
    }

    /// Standard deviation of the Gaussian noise on every leaf's `G` and `n`:
    /// `sensitivity / sqrt(2 * (1 - split_share) * rho_tree)`. The very value the trainer uses.
    pub fn leaf_sigma(&self) -> f64 {
        self.leaf_sensitivity() / (2.0 * (1.0 - self.split_share) * self.rho_per_tree()).sqrt()
    }

    /// Sensitivity of the split utility: `3 * gradient_clip^2`.
    pub fn split_sensitivity(&self) -> f64 {
        3.0 * self.gradient_clip * self.gradient_clip
    }
}

/// The privacy the training with this configuration spends: `(epsilon, delta)` of the config.
pub fn privacy_cost(cfg: &DpGbdtConfig) -> PrivacyCost {
    PrivacyCost { epsilon: cfg.epsilon, delta: cfg.delta, mechanism: MECHANISM.to_string() }
}

/// Trains private boosted trees. `ranges` are the public `(min, max)` of every column (never
/// computed from `x`); `rng` must be cryptographically secure (see [`crate::dp`]). Returns the
/// model (log-odds output) and the privacy it spent (equal to [`privacy_cost`]).
pub fn fit_dp_gbdt<R: Rng + CryptoRng + ?Sized>(
    x: &Array2<f64>,
    y: &[f64],
    ranges: &[(f64, f64)],
    cfg: &DpGbdtConfig,
    rng: &mut R,
) -> Result<(TreeEnsemble, PrivacyCost), TreesError> {
    cfg.validate()?;
    check_private_input(x, y, ranges)?;
    let x = x.as_standard_layout();
    let x = x.view();
    let binned = BinnedMatrix::from_cuts(x, public_cuts(ranges, cfg.grid))?;
    let n_features = x.ncols();
    let n = y.len();
    let mut margin = vec![0.0; n];
    let mut grad = vec![0.0; n];
    let (eps_split, sigma) = (cfg.split_epsilon(), cfg.leaf_sigma());
    let (lambda, eta, clip) = (cfg.lambda, cfg.learning_rate, cfg.gradient_clip);
    // Candidates: every (column, cut) of the public grid.
    let candidates: Vec<(usize, u8)> = (0..n_features)
        .flat_map(|f| (0..binned.n_bins(f) - 1).map(move |b| (f, b as u8)))
        .collect();
    // Base measure of the exponential mechanism: uniform over columns, then uniform over the
    // column's cuts (so columns with fine grids are not favoured a priori). Data-independent.
    let log_prior: Vec<f64> =
        candidates.iter().map(|&(f, _)| -((binned.n_bins(f) - 1) as f64).ln()).collect();
    let mut hist = vec![[0.0f64; 2]; binned.total_bins()];
    let ones = vec![1.0; n];
    let mut utilities = vec![0.0; candidates.len()];
    let mut trees = Vec::with_capacity(cfg.n_trees);
    let mut rows: Vec<u32> = (0..n as u32).collect();
    for _ in 0..cfg.n_trees {
        for (g, (&m, &yi)) in grad.iter_mut().zip(margin.iter().zip(y)) {
            *g = (sigmoid(m) - yi).clamp(-clip, clip);
        }
        let rng_cell = std::cell::RefCell::new(&mut *rng);
        let tree = grow_complete(
            &binned,
            &mut rows,
            cfg.max_depth,
            |_, node_rows| {
                let mut rng = rng_cell.borrow_mut();
                hist.iter_mut().for_each(|e| *e = [0.0; 2]);
                binned.accumulate(node_rows, &grad, &ones, &mut hist);
                let gt: f64 = node_rows.iter().map(|&r| grad[r as usize]).sum();
                let nt = node_rows.len() as f64;
                let side =
                    |g: f64, n: f64| if n + lambda > 0.0 { g * g / (n + lambda) } else { 0.0 };
                let mut c = 0;
                for f in 0..n_features {
                    let off = binned.offset(f);
                    let (mut gl, mut nl) = (0.0, 0.0);
                    for e in &hist[off..off + binned.n_bins(f) - 1] {
                        gl += e[0];
                        nl += e[1];
                        utilities[c] = side(gl, nl) + side(gt - gl, nt - nl);
                        c += 1;
                    }
                }
                let i = exponential_mechanism_with_prior(
                    &mut **rng,
                    &utilities,
                    &log_prior,
                    eps_split,
                    cfg.split_sensitivity(),
                )
                .unwrap_or(0);
                candidates[i]
            },
            |leaf_rows| {
                let mut rng = rng_cell.borrow_mut();
                let g: f64 = leaf_rows.iter().map(|&r| grad[r as usize]).sum();
                let count = leaf_rows.len() as f64;
                let g_noisy = g + gaussian(&mut **rng, sigma);
                let n_noisy = (count + gaussian(&mut **rng, sigma)).max(0.0);
                let value = (-eta * g_noisy / (n_noisy + lambda)).clamp(-eta * clip, eta * clip);
                (value, n_noisy + 1.0)
            },
        );
        for (i, m) in margin.iter_mut().enumerate() {
            *m += tree.predict(&row_of(&x, i));
        }
        trees.push(tree);
    }
    let model = TreeEnsemble {
        trees,
        tree_weight: 1.0,
        base_offset: 0.0,
        output: OutputSpace::LogOdds,
        n_features,
    };
    Ok((model, privacy_cost(cfg)))
}
