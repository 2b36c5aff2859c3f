//! A trained tree model as stored in the registry.

use serde::{Deserialize, Serialize};

use crate::TreesError;
use crate::dp::PrivacyCost;
use crate::shap::{TreeShap, mean_abs_shap, ranked_importance};
use crate::tree::TreeEnsemble;

/// Which trainer produced a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TreeModelKind {
    /// [`crate::forest::fit_forest`].
    RandomForest,
    /// [`crate::gbdt::fit_gbdt`].
    Gbdt,
    /// [`crate::dp_forest::fit_dp_forest`].
    DpRandomForest,
    /// [`crate::dp_gbdt::fit_dp_gbdt`].
    DpGbdt,
}

impl TreeModelKind {
    /// Short name, e.g. `dp_gbdt`.
    pub fn as_str(self) -> &'static str {
        match self {
            TreeModelKind::RandomForest => "random_forest",
            TreeModelKind::Gbdt => "gbdt",
            TreeModelKind::DpRandomForest => "dp_random_forest",
            TreeModelKind::DpGbdt => "dp_gbdt",
        }
    }
}

/// A trained model: the ensemble, what made it, the column names it expects and, for the private
/// kinds, the privacy it spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeModel {
    /// Trainer.
    pub kind: TreeModelKind,
    /// The trees.
    pub ensemble: TreeEnsemble,
    /// Column names, in input order.
    pub feature_names: Vec<String>,
    /// Privacy spent (private kinds only).
    pub privacy: Option<PrivacyCost>,
}

impl TreeModel {
    /// Bundles a trained ensemble; checks that the names match its width.
    pub fn new(
        kind: TreeModelKind,
        ensemble: TreeEnsemble,
        feature_names: Vec<String>,
        privacy: Option<PrivacyCost>,
    ) -> Result<TreeModel, TreesError> {
        let model = TreeModel { kind, ensemble, feature_names, privacy };
        model.validate()?;
        Ok(model)
    }

    /// Checks the invariants (use after deserialising a stored model).
    pub fn validate(&self) -> Result<(), TreesError> {
        if self.feature_names.len() != self.ensemble.n_features {
            return Err(TreesError::InvalidModel(format!(
                "{} feature names for {} features",
                self.feature_names.len(),
                self.ensemble.n_features
            )));
        }
        let private = matches!(self.kind, TreeModelKind::DpGbdt | TreeModelKind::DpRandomForest);
        if private != self.privacy.is_some() {
            return Err(TreesError::InvalidModel(
                "privacy must be recorded exactly for the private kinds".into(),
            ));
        }
        self.ensemble.validate().map_err(TreesError::InvalidModel)
    }

    fn check_row(&self, row: &[f64]) -> Result<(), TreesError> {
        if row.len() != self.ensemble.n_features {
            return Err(TreesError::InvalidInput(format!(
                "row has {} values, model expects {}",
                row.len(),
                self.ensemble.n_features
            )));
        }
        Ok(())
    }

    /// Probability of a purchase for one row.
    pub fn predict_proba(&self, row: &[f64]) -> Result<f64, TreesError> {
        self.check_row(row)?;
        Ok(self.ensemble.predict_proba(row))
    }

    /// SHAP values of one row as `(feature name, value)` sorted by |value| (largest first), and
    /// the base value. Raw output space: log-odds for boosting, probability for forests.
    pub fn explain(&self, row: &[f64]) -> Result<(Vec<(String, f64)>, f64), TreesError> {
        self.check_row(row)?;
        let e = TreeShap::new(&self.ensemble).explain(row);
        let mut named: Vec<(String, f64)> = self.feature_names.iter().cloned().zip(e.phi).collect();
        named.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        Ok((named, e.base))
    }

    /// Global importance over the rows of `x`: `(feature name, mean |SHAP|)`, largest first.
    pub fn global_importance(
        &self,
        x: &ndarray::Array2<f64>,
    ) -> Result<Vec<(String, f64)>, TreesError> {
        if x.ncols() != self.ensemble.n_features {
            return Err(TreesError::InvalidInput(format!(
                "matrix has {} columns, model expects {}",
                x.ncols(),
                self.ensemble.n_features
            )));
        }
        let shap = TreeShap::new(&self.ensemble).explain_matrix(x);
        Ok(ranked_importance(&self.feature_names, &mean_abs_shap(&shap)))
    }
}
