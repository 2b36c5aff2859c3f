//! What a training run trains: the plan (with each private model's cost known before any data
//! is read), the trainers, the stored model format, and SHAP per feature group.

use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};
use shopstream_features::{CategoricalEncoding, Dataset, Encoder};
use shopstream_mlp::{
    DpSgdConfig, KernelExplainer, KernelShapOptions, MlpConfig, MlpError, MlpModel, Scaling,
};
use shopstream_privacy::{Cost, DpRng};
use shopstream_trees::dp_forest::DpForestConfig;
use shopstream_trees::dp_gbdt::DpGbdtConfig;
use shopstream_trees::forest::ForestConfig;
use shopstream_trees::gbdt::GbdtConfig;
use shopstream_trees::shap::TreeShap;
use shopstream_trees::{TreeModel, TreeModelKind};

use crate::logistic::{LogisticConfig, LogisticModel};

/// Model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Random forest (DP: random splits + noisy leaf counts).
    RandomForest,
    /// Gradient-boosted trees (DP: DPBoost-style).
    Gbdt,
    /// Multi-layer perceptron (DP: DP-SGD).
    Mlp,
    /// Logistic regression: the non-private baseline (no private variant).
    LogisticRegression,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 4] =
        [Family::RandomForest, Family::Gbdt, Family::Mlp, Family::LogisticRegression];

    /// The families with a differentially private variant.
    pub const PRIVATE: [Family; 3] = [Family::RandomForest, Family::Gbdt, Family::Mlp];

    /// Whether the family has a differentially private variant.
    pub fn has_private_variant(self) -> bool {
        Self::PRIVATE.contains(&self)
    }

    /// Registry name of the family's model (`dp_` prefix for the private variant).
    pub fn model_name(self, private: bool) -> String {
        let base = match self {
            Family::RandomForest => "random_forest",
            Family::Gbdt => "gbdt",
            Family::Mlp => "mlp",
            Family::LogisticRegression => "logistic_regression",
        };
        if private { format!("dp_{base}") } else { base.to_string() }
    }

    /// How the family's input encodes the categorical fields.
    ///
    /// Trees split on ordinal codes: a split can still isolate any level, and the private
    /// forest draws its split columns uniformly at random without looking at data, so with
    /// one-hot input most of its splits would land on one of the ~50 `state=*` indicator
    /// columns and separate almost nothing (measured: DP-RF at epsilon 1 lost 0.060-0.095
    /// AUC with one-hot input). The MLP and the logistic regression need one-hot input (no
    /// order between levels).
    pub fn encoding(self) -> CategoricalEncoding {
        match self {
            Family::RandomForest | Family::Gbdt => CategoricalEncoding::Ordinal,
            Family::Mlp | Family::LogisticRegression => CategoricalEncoding::OneHot,
        }
    }
}

/// Hyper-parameters of every trainer (the `epsilon` and `delta` fields of the DP tree configs
/// are overwritten per job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyper {
    /// Non-private random forest.
    pub forest: ForestConfig,
    /// Non-private boosted trees.
    pub gbdt: GbdtConfig,
    /// MLP architecture and optimiser (both MLP variants).
    pub mlp: MlpConfig,
    /// The logistic-regression baseline.
    pub logistic: LogisticConfig,
    /// Private random forest.
    pub dp_forest: DpForestConfig,
    /// Private boosted trees.
    pub dp_gbdt: DpGbdtConfig,
    /// DP-SGD Poisson sampling rate.
    pub dp_sampling_rate: f64,
    /// DP-SGD steps.
    pub dp_steps: u64,
    /// DP-SGD clipping norm.
    pub dp_clip_norm: f64,
    /// Adam learning rate for DP-SGD.
    pub dp_learning_rate: f64,
}

impl Default for Hyper {
    fn default() -> Self {
        Self {
            forest: ForestConfig { n_trees: 100, max_depth: 12, ..Default::default() },
            gbdt: GbdtConfig::default(),
            mlp: MlpConfig::default(),
            logistic: LogisticConfig::default(),
            // Swept on 50,000 generated sessions at epsilon 1 (ordinal input, 3 noise seeds
            // each; docs/models.md): depth 5 x 200 trees lost 0.030 AUC on average (worst
            // 0.034) against the non-private forest, the trees crate's default depth 4 x 100
            // lost 0.040 (worst 0.041); deeper or fewer trees did worse.
            dp_forest: DpForestConfig { n_trees: 200, max_depth: 5, ..DpForestConfig::default() },
            dp_gbdt: DpGbdtConfig::default(),
            dp_sampling_rate: 0.01,
            dp_steps: 1500,
            dp_clip_norm: 1.0,
            dp_learning_rate: 2e-3,
        }
    }
}

/// The private configuration of a job: the very struct the trainer will read.
#[derive(Debug, Clone, PartialEq)]
pub enum DpConfig {
    /// Private forest.
    Forest(DpForestConfig),
    /// Private boosted trees.
    Gbdt(DpGbdtConfig),
    /// DP-SGD (also what the RDP accountant reads).
    Sgd(DpSgdConfig),
}

/// One model to train.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Family.
    pub family: Family,
    /// Private configuration (`None` = non-private).
    pub dp: Option<DpConfig>,
    /// Part of the privacy-utility curve (not registered) rather than a production model.
    pub curve_point: bool,
    /// Target epsilon (private jobs).
    pub target_epsilon: Option<f64>,
}

impl Job {
    /// A non-private job.
    pub fn plain(family: Family) -> Self {
        Self { family, dp: None, curve_point: false, target_epsilon: None }
    }

    /// A private job at `(epsilon, delta)`, configured from `hyper`. Fails for a family without
    /// a private variant.
    pub fn private(
        family: Family,
        epsilon: f64,
        delta: f64,
        hyper: &Hyper,
    ) -> anyhow::Result<Self> {
        let dp = match family {
            Family::RandomForest => {
                DpConfig::Forest(DpForestConfig { epsilon, delta, ..hyper.dp_forest.clone() })
            }
            Family::Gbdt => {
                DpConfig::Gbdt(DpGbdtConfig { epsilon, delta, ..hyper.dp_gbdt.clone() })
            }
            Family::Mlp => DpConfig::Sgd(DpSgdConfig::for_target_epsilon(
                epsilon,
                delta,
                hyper.dp_sampling_rate,
                hyper.dp_steps,
                hyper.dp_clip_norm,
            )?),
            Family::LogisticRegression => {
                anyhow::bail!("the logistic regression baseline has no private variant")
            }
        };
        match &dp {
            DpConfig::Forest(c) => c.validate()?,
            DpConfig::Gbdt(c) => c.validate()?,
            DpConfig::Sgd(c) => c.validate()?,
        }
        Ok(Self { family, dp: Some(dp), curve_point: false, target_epsilon: Some(epsilon) })
    }

    /// Registry name.
    pub fn name(&self) -> String {
        self.family.model_name(self.dp.is_some())
    }

    /// `(cost, mechanism)` of a private job, from its configuration alone.
    pub fn cost(&self) -> anyhow::Result<Option<(Cost, String)>> {
        Ok(match &self.dp {
            None => None,
            Some(DpConfig::Forest(c)) => {
                let p = shopstream_trees::dp_forest::privacy_cost(c);
                Some((Cost::new(p.epsilon, p.delta)?, p.mechanism))
            }
            Some(DpConfig::Gbdt(c)) => {
                let p = shopstream_trees::dp_gbdt::privacy_cost(c);
                Some((Cost::new(p.epsilon, p.delta)?, p.mechanism))
            }
            Some(DpConfig::Sgd(c)) => Some((
                c.cost()?,
                format!(
                    "dp-sgd: Poisson q={}, sigma={:.4}, C={}, T={}; RDP accountant",
                    c.sampling_rate, c.noise_multiplier, c.clip_norm, c.steps
                ),
            )),
        })
    }
}

/// The trained model inside a stored model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Payload {
    /// A tree ensemble (from `shopstream-trees`).
    Tree {
        /// The model.
        model: TreeModel,
    },
    /// An MLP (from `shopstream-mlp`).
    Mlp {
        /// The model.
        model: MlpModel,
    },
    /// The logistic-regression baseline (weights in our own form, see [`crate::logistic`]).
    Logistic {
        /// The model.
        model: LogisticModel,
    },
}

impl Payload {
    /// The space SHAP values and the base value are in, as `explain` reports it.
    pub fn shap_space(&self) -> &'static str {
        match self {
            Payload::Tree { model }
                if model.ensemble.output == shopstream_trees::OutputSpace::LogOdds =>
            {
                "log-odds"
            }
            Payload::Tree { .. } | Payload::Mlp { .. } => "probability",
            Payload::Logistic { .. } => "log-odds",
        }
    }

    /// How SHAP is computed and in which space, for the report.
    pub fn shap_method(&self) -> String {
        let method = match self {
            Payload::Tree { .. } => "TreeSHAP",
            Payload::Mlp { .. } => "KernelSHAP",
            Payload::Logistic { .. } => "exact linear SHAP",
        };
        format!("{method}, {}", self.shap_space())
    }
}

/// What the registry stores in `model`: the feature transform and the model, so serving
/// uses exactly the training transform. No training rows are stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredModel {
    /// The fitted feature transform.
    pub encoder: Encoder,
    /// The model.
    pub payload: Payload,
}

impl StoredModel {
    /// JSON bytes for the registry.
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }

    /// From registry bytes, validated.
    pub fn from_bytes(b: &[u8]) -> anyhow::Result<Self> {
        let m: StoredModel = serde_json::from_slice(b)?;
        match &m.payload {
            Payload::Tree { model } => model.validate()?,
            Payload::Mlp { model } => model.validate()?,
            Payload::Logistic { model } => {
                model.validate()?;
                if model.feature_names != m.encoder.names() {
                    anyhow::bail!("the logistic model's features differ from its encoder's");
                }
            }
        }
        Ok(m)
    }

    /// Family tag for the registry's `kind`.
    pub fn kind(&self) -> &'static str {
        match &self.payload {
            Payload::Tree { model } => model.kind.as_str(),
            Payload::Mlp { .. } => "mlp",
            Payload::Logistic { .. } => "logistic_regression",
        }
    }

    /// Purchase probabilities for encoded rows.
    pub fn predict(&self, x: &Array2<f64>) -> anyhow::Result<Vec<f64>> {
        predict_payload(&self.payload, x)
    }
}

/// Purchase probabilities of a payload for encoded rows.
pub fn predict_payload(p: &Payload, x: &Array2<f64>) -> anyhow::Result<Vec<f64>> {
    match p {
        Payload::Tree { model } => {
            if x.ncols() != model.ensemble.n_features {
                anyhow::bail!(
                    "rows have {} columns, model expects {}",
                    x.ncols(),
                    model.ensemble.n_features
                );
            }
            Ok(model.ensemble.predict_proba_matrix(x))
        }
        Payload::Mlp { model } => Ok(model.predict_proba(x)?),
        Payload::Logistic { model } => Ok(model.predict_proba(x)?),
    }
}

/// Trains one job on the training set. `rng` supplies DP noise (use [`DpRng::from_os`] for real
/// releases); `on_step` sees every DP-SGD step.
pub fn train_job(
    job: &Job,
    hyper: &Hyper,
    encoder: &Encoder,
    train: &Dataset,
    rng: &mut DpRng,
) -> anyhow::Result<Payload> {
    let y = train.y.to_vec();
    let names = train.names.clone();
    let ranges = encoder.public_ranges();
    Ok(match (&job.dp, job.family) {
        (None, Family::RandomForest) => {
            let e = shopstream_trees::forest::fit_forest(&train.x, &y, &hyper.forest)?;
            Payload::Tree { model: TreeModel::new(TreeModelKind::RandomForest, e, names, None)? }
        }
        (None, Family::Gbdt) => {
            let e = shopstream_trees::gbdt::fit_gbdt(&train.x, &y, &hyper.gbdt)?;
            Payload::Tree { model: TreeModel::new(TreeModelKind::Gbdt, e, names, None)? }
        }
        (None, Family::Mlp) => Payload::Mlp {
            model: shopstream_mlp::train(&train.x, &y, &hyper.mlp, Scaling::from_ranges(ranges))?,
        },
        (None, Family::LogisticRegression) => Payload::Logistic {
            model: crate::logistic::fit(&train.x, &y, &names, &hyper.logistic)?,
        },
        (Some(DpConfig::Forest(c)), _) => {
            let (e, cost) =
                shopstream_trees::dp_forest::fit_dp_forest(&train.x, &y, ranges, c, rng.inner())?;
            Payload::Tree {
                model: TreeModel::new(TreeModelKind::DpRandomForest, e, names, Some(cost))?,
            }
        }
        (Some(DpConfig::Gbdt(c)), _) => {
            let (e, cost) =
                shopstream_trees::dp_gbdt::fit_dp_gbdt(&train.x, &y, ranges, c, rng.inner())?;
            Payload::Tree { model: TreeModel::new(TreeModelKind::DpGbdt, e, names, Some(cost))? }
        }
        (Some(DpConfig::Sgd(c)), _) => {
            let cfg = MlpConfig { learning_rate: hyper.dp_learning_rate, ..hyper.mlp.clone() };
            let mut clipped = 0.0;
            let mut steps = 0u64;
            let model = shopstream_mlp::train_dp(
                &train.x,
                &y,
                &cfg,
                c,
                Scaling::from_ranges(ranges),
                rng,
                &mut |s| {
                    clipped += s.clipped_fraction;
                    steps += 1;
                },
            )?;
            tracing::info!(
                steps,
                mean_clipped_fraction = clipped / steps.max(1) as f64,
                noise_multiplier = c.noise_multiplier,
                "dp-sgd finished"
            );
            Payload::Mlp { model }
        }
    })
}

/// Feature groups: one-hot columns `field=level` form one group named `field`; every other
/// column is its own group.
pub fn feature_groups(names: &[String]) -> (Vec<String>, Vec<Vec<usize>>) {
    let mut group_names: Vec<String> = Vec::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (j, n) in names.iter().enumerate() {
        let g = n.split('=').next().unwrap_or(n).to_string();
        match group_names.iter().position(|x| *x == g) {
            Some(k) => groups[k].push(j),
            None => {
                group_names.push(g);
                groups.push(vec![j]);
            }
        }
    }
    (group_names, groups)
}

/// SHAP values per feature group for the rows of `x`, and the base value.
///
/// Trees: exact TreeSHAP per column (model output space: log-odds for boosting, probability for
/// forests), summed within each group. MLP: KernelSHAP on the probability over the groups, with
/// `background` as the reference distribution. Logistic regression: exact linear SHAP in
/// log-odds against the training mean (`background` unused), summed within each group.
pub fn explain_groups(
    payload: &Payload,
    x: &Array2<f64>,
    background: &Array2<f64>,
    groups: &[Vec<usize>],
    nsamples: Option<usize>,
) -> anyhow::Result<(Vec<Vec<f64>>, f64)> {
    match payload {
        Payload::Tree { model } => {
            let ts = TreeShap::new(&model.ensemble);
            let base = ts.base_value();
            // Every core of the job's pod; the same values as one thread, bit for bit.
            let phi = ts.explain_matrix_parallel(x, 0);
            let rows = phi
                .axis_iter(Axis(0))
                .map(|r| groups.iter().map(|g| g.iter().map(|&j| r[j]).sum()).collect())
                .collect();
            Ok((rows, base))
        }
        Payload::Mlp { model } => {
            let f = |a: &Array2<f64>| -> Result<Vec<f64>, MlpError> { model.predict_proba(a) };
            let ex = KernelExplainer::new(f, background.clone(), groups.to_vec())?;
            let base = ex.base_value();
            let mut rows = Vec::with_capacity(x.nrows());
            for (i, r) in x.rows().into_iter().enumerate() {
                let row = r.to_vec();
                let e = ex.explain(&row, KernelShapOptions { nsamples, seed: i as u64 })?;
                rows.push(e.values);
            }
            Ok((rows, base))
        }
        Payload::Logistic { model } => {
            let phi = model.shap(x)?;
            let rows = phi
                .axis_iter(Axis(0))
                .map(|r| groups.iter().map(|g| g.iter().map(|&j| r[j]).sum()).collect())
                .collect();
            Ok((rows, model.base_value()))
        }
    }
}

/// Mean |SHAP| per group, largest first.
pub fn global_importance(group_names: &[String], rows: &[Vec<f64>]) -> Vec<(String, f64)> {
    let n = rows.len().max(1) as f64;
    let mut out: Vec<(String, f64)> = group_names
        .iter()
        .enumerate()
        .map(|(g, name)| (name.clone(), rows.iter().map(|r| r[g].abs()).sum::<f64>() / n))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_follow_one_hot_prefixes() {
        let names: Vec<String> = ["hour", "gender=Male", "gender=Female", "clicks", "state=Ohio"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (g, idx) = feature_groups(&names);
        assert_eq!(g, vec!["hour", "gender", "clicks", "state"]);
        assert_eq!(idx, vec![vec![0], vec![1, 2], vec![3], vec![4]]);
    }

    #[test]
    fn private_jobs_know_their_cost_before_training() {
        let h = Hyper::default();
        for f in Family::PRIVATE {
            let j = Job::private(f, 1.0, 1e-5, &h).unwrap();
            let (c, mech) = j.cost().unwrap().unwrap();
            assert!((c.epsilon - 1.0).abs() < 0.01, "{f:?}: {}", c.epsilon);
            assert_eq!(c.delta, 1e-5, "{f:?}");
            assert!(!mech.is_empty());
            assert!(j.name().starts_with("dp_"));
        }
        assert!(Job::plain(Family::Gbdt).cost().unwrap().is_none());
        assert!(Job::private(Family::Gbdt, -1.0, 1e-5, &h).is_err());
        assert!(Job::private(Family::LogisticRegression, 1.0, 1e-5, &h).is_err());
        assert!(!Family::LogisticRegression.has_private_variant());
        assert!(Job::plain(Family::LogisticRegression).cost().unwrap().is_none());
    }
}
