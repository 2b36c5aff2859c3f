//! The logistic-regression baseline: standardised one-hot features, L2-regularised logistic loss
//! fitted by `linfa-logistic` (L-BFGS), stored in our own serde form (feature order,
//! standardisation, weights, intercept) so a registered model does not depend on the crate's
//! serialisation.
//!
//! SHAP is exact: for a linear model in log-odds space with the training mean as reference,
//! feature `i` of row `x` gets `w_i (z_i - E[z_i])`, where `z = (x - mean) / scale` is the
//! standardised row. The training mean of every `z_i` is 0 by construction, so the value is
//! `w_i z_i` and the base value is the intercept: `base + sum(phi) = logit(p)` exactly.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, ArrayView1, Axis};
use serde::{Deserialize, Serialize};

/// Why fitting or using a logistic model failed.
#[derive(Debug, thiserror::Error)]
pub enum LogisticError {
    /// The training data cannot be used.
    #[error("logistic regression: {0}")]
    Data(String),
    /// The optimiser failed.
    #[error("logistic regression fit failed: {0}")]
    Fit(#[from] linfa_logistic::error::Error),
    /// A stored model is inconsistent.
    #[error("logistic model is invalid: {0}")]
    Invalid(String),
    /// Rows with the wrong number of columns.
    #[error("rows have {got} columns, the logistic model expects {expected}")]
    Columns {
        /// Columns given.
        got: usize,
        /// Columns of the model.
        expected: usize,
    },
}

/// Fitting settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticConfig {
    /// L2 penalty `alpha/2 * |w|^2` on the standardised weights (the loss is a sum over rows,
    /// so its weight shrinks as the data grows).
    pub alpha: f64,
    /// L-BFGS iterations at most.
    pub max_iterations: u64,
    /// Stop when the gradient norm falls below this.
    pub gradient_tolerance: f64,
}

impl Default for LogisticConfig {
    fn default() -> Self {
        Self { alpha: 1.0, max_iterations: 300, gradient_tolerance: 1e-4 }
    }
}

/// A fitted logistic regression: `p = sigmoid(intercept + sum_i weights[i] * z_i)` with
/// `z_i = (x_i - mean[i]) / scale[i]`, over the columns named in `feature_names`, in that order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticModel {
    /// Input columns, in order (the encoder's names).
    pub feature_names: Vec<String>,
    /// Training mean per column.
    pub mean: Vec<f64>,
    /// Training standard deviation per column (1 for constant columns).
    pub scale: Vec<f64>,
    /// Weight per standardised column.
    pub weights: Vec<f64>,
    /// Intercept (log-odds at the training mean).
    pub intercept: f64,
}

/// Fits the baseline on encoded rows `x` with labels `y` (1.0 = purchase).
pub fn fit(
    x: &Array2<f64>,
    y: &[f64],
    feature_names: &[String],
    config: &LogisticConfig,
) -> Result<LogisticModel, LogisticError> {
    if x.nrows() != y.len() {
        return Err(LogisticError::Data(format!("{} rows but {} labels", x.nrows(), y.len())));
    }
    if x.ncols() != feature_names.len() {
        return Err(LogisticError::Columns { got: x.ncols(), expected: feature_names.len() });
    }
    if x.nrows() < 2 {
        return Err(LogisticError::Data("need at least two rows".into()));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(LogisticError::Data("non-finite feature value".into()));
    }
    let n = x.nrows() as f64;
    let mean: Vec<f64> = x.mean_axis(Axis(0)).map_or_else(|| vec![0.0; x.ncols()], |m| m.to_vec());
    let scale: Vec<f64> = x
        .axis_iter(Axis(1))
        .zip(&mean)
        .map(|(c, m)| {
            let sd = (c.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n).sqrt();
            if sd > 1e-12 { sd } else { 1.0 }
        })
        .collect();
    let z = standardize(x, &mean, &scale);
    let labels: Array1<bool> = y.iter().map(|&v| v == 1.0).collect();
    let fitted = LogisticRegression::default()
        .alpha(config.alpha)
        .max_iterations(config.max_iterations)
        .gradient_tolerance(config.gradient_tolerance)
        .fit(&Dataset::new(z, labels))?;
    // linfa-logistic models the more frequent class as its positive class.
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    let model = LogisticModel {
        feature_names: feature_names.to_vec(),
        mean,
        scale,
        weights: fitted.params().iter().map(|w| sign * w).collect(),
        intercept: sign * fitted.intercept(),
    };
    model.validate()?;
    Ok(model)
}

fn standardize(x: &Array2<f64>, mean: &[f64], scale: &[f64]) -> Array2<f64> {
    let mut z = x.clone();
    for mut row in z.rows_mut() {
        for ((v, m), s) in row.iter_mut().zip(mean).zip(scale) {
            *v = (*v - m) / s;
        }
    }
    z
}

fn sigmoid(t: f64) -> f64 {
    1.0 / (1.0 + (-t).exp())
}

impl LogisticModel {
    /// Checks that the parts agree and are finite (run after loading).
    pub fn validate(&self) -> Result<(), LogisticError> {
        let k = self.feature_names.len();
        if self.mean.len() != k || self.scale.len() != k || self.weights.len() != k {
            return Err(LogisticError::Invalid(format!(
                "{k} features but {} means, {} scales, {} weights",
                self.mean.len(),
                self.scale.len(),
                self.weights.len()
            )));
        }
        let finite = self.mean.iter().chain(&self.weights).all(|v| v.is_finite())
            && self.scale.iter().all(|s| s.is_finite() && *s > 0.0)
            && self.intercept.is_finite();
        if !finite {
            return Err(LogisticError::Invalid("non-finite or non-positive parameter".into()));
        }
        Ok(())
    }

    fn check(&self, x: &Array2<f64>) -> Result<(), LogisticError> {
        if x.ncols() != self.weights.len() {
            return Err(LogisticError::Columns { got: x.ncols(), expected: self.weights.len() });
        }
        Ok(())
    }

    fn logit_row(&self, row: ArrayView1<f64>) -> f64 {
        self.intercept
            + row
                .iter()
                .zip(&self.mean)
                .zip(&self.scale)
                .zip(&self.weights)
                .map(|(((v, m), s), w)| w * (v - m) / s)
                .sum::<f64>()
    }

    /// Log-odds of purchase per row.
    pub fn decision_function(&self, x: &Array2<f64>) -> Result<Vec<f64>, LogisticError> {
        self.check(x)?;
        Ok(x.rows().into_iter().map(|r| self.logit_row(r)).collect())
    }

    /// Purchase probability per row.
    pub fn predict_proba(&self, x: &Array2<f64>) -> Result<Vec<f64>, LogisticError> {
        Ok(self.decision_function(x)?.into_iter().map(sigmoid).collect())
    }

    /// SHAP base value in log-odds: the output at the training mean (the intercept).
    pub fn base_value(&self) -> f64 {
        self.intercept
    }

    /// Exact SHAP values in log-odds, one row per row of `x`, one column per feature:
    /// `w_i (x_i - mean_i) / scale_i`.
    pub fn shap(&self, x: &Array2<f64>) -> Result<Array2<f64>, LogisticError> {
        self.check(x)?;
        let mut phi = standardize(x, &self.mean, &self.scale);
        for mut row in phi.rows_mut() {
            for (v, w) in row.iter_mut().zip(&self.weights) {
                *v *= w;
            }
        }
        Ok(phi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Rows from a known logistic model over 3 columns (one constant), seeded.
    fn data(n: usize, seed: u64, flip_majority: bool) -> (Array2<f64>, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Array2::zeros((n, 3));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let a: f64 = rng.random_range(-2.0..2.0);
            let b: f64 = rng.random_range(0.0..10.0);
            x[[i, 0]] = a;
            x[[i, 1]] = b;
            x[[i, 2]] = 3.0;
            let shift = if flip_majority { -1.5 } else { 1.5 };
            let p = sigmoid(shift + 1.2 * a - 0.3 * (b - 5.0));
            y.push(if rng.random::<f64>() < p { 1.0 } else { 0.0 });
        }
        (x, y)
    }

    fn names() -> Vec<String> {
        ["a", "b", "constant"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recovers_the_generating_weights_whichever_class_is_the_majority() {
        for flip in [false, true] {
            let (x, y) = data(20_000, 5, flip);
            let rate = y.iter().sum::<f64>() / y.len() as f64;
            assert_eq!(rate < 0.5, flip, "the test covers both majority classes");
            let m = fit(&x, &y, &names(), &LogisticConfig::default()).unwrap();
            // Raw-scale weights are w / scale.
            let wa = m.weights[0] / m.scale[0];
            let wb = m.weights[1] / m.scale[1];
            assert!((wa - 1.2).abs() < 0.1, "flip {flip}: a weight {wa}");
            assert!((wb + 0.3).abs() < 0.05, "flip {flip}: b weight {wb}");
            assert_eq!(m.scale[2], 1.0, "constant column keeps scale 1");
            let p = m.predict_proba(&x).unwrap();
            let auc = shopstream_trees::metrics::roc_auc(&p, &y);
            assert!(auc > 0.75, "flip {flip}: AUC {auc}");
        }
    }

    #[test]
    fn shap_sums_to_the_log_odds_minus_the_base_value() {
        let (x, y) = data(2_000, 9, false);
        let m = fit(&x, &y, &names(), &LogisticConfig::default()).unwrap();
        let (probe, _) = data(50, 10, false);
        let phi = m.shap(&probe).unwrap();
        let logits = m.decision_function(&probe).unwrap();
        for (row, (l, p)) in
            phi.rows().into_iter().zip(logits.iter().zip(m.predict_proba(&probe).unwrap()))
        {
            assert!((m.base_value() + row.sum() - l).abs() < 1e-12);
            assert!((l - (p / (1.0 - p)).ln()).abs() < 1e-9);
        }
        // The reference is the training mean: mean SHAP over the training rows is 0.
        let train_phi = m.shap(&x).unwrap();
        for j in 0..3 {
            assert!(train_phi.column(j).mean().unwrap().abs() < 1e-9);
        }
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let (x, y) = data(500, 3, false);
        let m = fit(&x, &y, &names(), &LogisticConfig::default()).unwrap();
        let back: LogisticModel =
            serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back.predict_proba(&x).unwrap(), m.predict_proba(&x).unwrap());
        let mut bad = m.clone();
        bad.weights.pop();
        assert!(bad.validate().is_err());
        assert!(matches!(
            m.predict_proba(&Array2::zeros((1, 2))),
            Err(LogisticError::Columns { got: 2, expected: 3 })
        ));
        assert!(fit(&x, &y[1..], &names(), &LogisticConfig::default()).is_err());
        assert!(fit(&x, &vec![1.0; y.len()], &names(), &LogisticConfig::default()).is_err());
    }
}
