//! The CPU part of a training run, free of I/O: split, encode, train, evaluate, explain.

use std::time::Instant;

use ndarray::{Array2, Axis};
use shopstream_features::{
    CategoricalEncoding, Dataset, Encoder, FeatureSpec, split_sessions_by_user,
};
use shopstream_privacy::DpRng;
use shopstream_registry::Metrics;
use shopstream_schema::Session;

use crate::evaluation::{evaluate, roc_curve};
use crate::models::{
    Family, Hyper, Job, Payload, explain_groups, feature_groups, global_importance, train_job,
};

/// The data of a run after the user-level split, encoded both ways the model families need
/// (see [`Family::encoding`]). Both encodings hold the same sessions in the same order.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// One-hot categoricals (the MLP's and the logistic regression's input).
    pub one_hot: Encoded,
    /// Ordinal categoricals (the tree models' input).
    pub ordinal: Encoded,
}

impl Prepared {
    /// The encoding `family` trains on.
    pub fn for_family(&self, family: Family) -> &Encoded {
        match family.encoding() {
            CategoricalEncoding::OneHot => &self.one_hot,
            CategoricalEncoding::Ordinal => &self.ordinal,
        }
    }

    /// Training rows (the same in both encodings).
    pub fn train(&self) -> &Dataset {
        &self.one_hot.train
    }

    /// Test rows (the same in both encodings).
    pub fn test(&self) -> &Dataset {
        &self.one_hot.test
    }
}

/// One encoding of the split data.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Transform fitted on the training sessions only.
    pub encoder: Encoder,
    /// Training rows.
    pub train: Dataset,
    /// Test rows (users disjoint from training).
    pub test: Dataset,
    /// Feature group names (for SHAP).
    pub group_names: Vec<String>,
    /// Columns of each group.
    pub groups: Vec<Vec<usize>>,
}

/// Splits by user (before any fitting), fits the transform on the training side, encodes both.
pub fn prepare(sessions: &[Session], test_fraction: f64, seed: u64) -> anyhow::Result<Prepared> {
    let (train_s, test_s) = split_sessions_by_user(sessions, test_fraction, seed)?;
    if train_s.is_empty() || test_s.is_empty() {
        anyhow::bail!(
            "the user-level split left {} training and {} test sessions; need both non-empty (more users?)",
            train_s.len(),
            test_s.len()
        );
    }
    let encode = |categorical| {
        let encoder = FeatureSpec { categorical, ..FeatureSpec::default() }.fit(&train_s);
        let train = Dataset::from_sessions(&encoder, &train_s);
        let test = Dataset::from_sessions(&encoder, &test_s);
        let (group_names, groups) = feature_groups(&train.names);
        Encoded { encoder, train, test, group_names, groups }
    };
    let prep = Prepared {
        one_hot: encode(CategoricalEncoding::OneHot),
        ordinal: encode(CategoricalEncoding::Ordinal),
    };
    for (side, d) in [("training", prep.train()), ("test", prep.test())] {
        let rate = d.positive_rate();
        if !(rate > 0.0 && rate < 1.0) {
            anyhow::bail!(
                "the {side} set has a single class (purchase rate {rate}); cannot train/evaluate"
            );
        }
    }
    Ok(prep)
}

/// How much SHAP work to do per model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShapSettings {
    /// Test rows explained for the global importance of tree models and the logistic
    /// regression (both exact and cheap).
    pub tree_rows: usize,
    /// Test rows explained for the MLP (KernelSHAP is far more expensive).
    pub mlp_rows: usize,
    /// Background rows for KernelSHAP (taken from the test set; see docs/models.md).
    pub background_rows: usize,
    /// KernelSHAP coalitions per explanation.
    pub nsamples: usize,
}

impl Default for ShapSettings {
    fn default() -> Self {
        Self { tree_rows: 500, mlp_rows: 40, background_rows: 30, nsamples: 512 }
    }
}

/// A trained and evaluated model.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What was trained.
    pub job: Job,
    /// The model.
    pub payload: Payload,
    /// Test-set probabilities.
    pub probs: Vec<f64>,
    /// Test-set metrics.
    pub metrics: Metrics,
    /// ROC curve on the test set.
    pub roc: Vec<(f64, f64)>,
    /// Mean |SHAP| per group, largest first (empty for curve points).
    pub importance: Vec<(String, f64)>,
    /// Training wall time.
    pub train_seconds: f64,
}

fn head(x: &Array2<f64>, n: usize) -> Array2<f64> {
    let idx: Vec<usize> = (0..n.min(x.nrows())).collect();
    x.select(Axis(0), &idx)
}

/// Rows spread evenly over the matrix (deterministic).
fn spread(x: &Array2<f64>, n: usize, offset: usize) -> Array2<f64> {
    let n = n.min(x.nrows());
    let step = (x.nrows() / n.max(1)).max(1);
    let idx: Vec<usize> = (0..n).map(|k| (offset + k * step) % x.nrows()).collect();
    x.select(Axis(0), &idx)
}

/// Trains `job`, evaluates it on the test set and (unless it is a curve point) explains it.
pub fn train_and_evaluate(
    job: &Job,
    hyper: &Hyper,
    prep: &Prepared,
    rng: &mut DpRng,
    shap: &ShapSettings,
) -> anyhow::Result<Outcome> {
    let prep = prep.for_family(job.family);
    let t0 = Instant::now();
    let payload = train_job(job, hyper, &prep.encoder, &prep.train, rng)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let probs = crate::models::predict_payload(&payload, &prep.test.x)?;
    let labels = prep.test.y.to_vec();
    let metrics = evaluate(&probs, &labels);
    let roc = roc_curve(&probs, &labels);
    let importance = if job.curve_point {
        Vec::new()
    } else {
        let (rows, background) = match &payload {
            Payload::Tree { .. } | Payload::Logistic { .. } => {
                (spread(&prep.test.x, shap.tree_rows, 0), head(&prep.test.x, 1))
            }
            Payload::Mlp { .. } => (
                spread(&prep.test.x, shap.mlp_rows, 1),
                spread(&prep.test.x, shap.background_rows, 0),
            ),
        };
        let (phi, _) =
            explain_groups(&payload, &rows, &background, &prep.groups, Some(shap.nsamples))?;
        global_importance(&prep.group_names, &phi)
    };
    tracing::info!(model = %job.name(), auc = metrics.roc_auc, train_seconds, "model trained");
    Ok(Outcome { job: job.clone(), payload, probs, metrics, roc, importance, train_seconds })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use shopstream_generator::{Generator, GeneratorConfig};

    #[test]
    fn trees_read_ordinal_and_the_mlp_one_hot_over_the_same_rows() {
        let sessions: Vec<Session> =
            Generator::new(GeneratorConfig { seed: 3, users: 200, ..Default::default() })
                .unwrap()
                .take(2_000)
                .map(|g| g.session)
                .collect();
        let prep = prepare(&sessions, 0.2, 1).unwrap();
        let (oh, ord) = (&prep.one_hot, &prep.ordinal);
        assert_eq!(oh.train.session_ids, ord.train.session_ids);
        assert_eq!(oh.test.session_ids, ord.test.session_ids);
        assert_eq!(oh.train.y, ord.train.y);
        // Same fields, grouped the same way, but one column per categorical field in ordinal.
        assert_eq!(oh.group_names, ord.group_names);
        assert_eq!(ord.train.names.len(), ord.group_names.len());
        assert!(oh.train.names.len() > ord.train.names.len() + 40, "one-hot has the state columns");
        for f in [Family::RandomForest, Family::Gbdt] {
            assert!(std::ptr::eq(prep.for_family(f), ord));
        }
        assert!(std::ptr::eq(prep.for_family(Family::Mlp), oh));
        assert!(std::ptr::eq(prep.for_family(Family::LogisticRegression), oh));
    }

    #[test]
    fn logistic_baseline_trains_stores_predicts_and_explains() {
        use crate::models::{StoredModel, explain_groups};
        let sessions: Vec<Session> =
            Generator::new(GeneratorConfig { seed: 5, users: 400, ..Default::default() })
                .unwrap()
                .take(4_000)
                .map(|g| g.session)
                .collect();
        let prep = prepare(&sessions, 0.2, 1).unwrap();
        let job = Job::plain(Family::LogisticRegression);
        assert_eq!(job.name(), "logistic_regression");
        let mut rng = DpRng::seeded(1);
        let o =
            train_and_evaluate(&job, &Hyper::default(), &prep, &mut rng, &ShapSettings::default())
                .unwrap();
        assert!(o.metrics.roc_auc > 0.7, "AUC {}", o.metrics.roc_auc);
        assert!(!o.importance.is_empty());
        assert_eq!(o.payload.shap_method(), "exact linear SHAP, log-odds");

        // The registry form: our own JSON, loadable and predicting the same.
        let enc = prep.for_family(job.family);
        let stored = StoredModel { encoder: enc.encoder.clone(), payload: o.payload.clone() };
        assert_eq!(stored.kind(), "logistic_regression");
        let bytes = stored.to_bytes().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["payload"]["type"], "logistic");
        for k in ["feature_names", "mean", "scale", "weights", "intercept"] {
            assert!(!json["payload"]["model"][k].is_null(), "stored model lacks {k}");
        }
        let back = StoredModel::from_bytes(&bytes).unwrap();
        let x = enc.encoder.transform(&sessions[..50]);
        let p = back.predict(&x).unwrap();
        assert_eq!(p, stored.predict(&x).unwrap());

        // explain: grouped SHAP sums to the log-odds minus the base value.
        let (phi, base) = explain_groups(&back.payload, &x, &x, &enc.groups, None).unwrap();
        for (row, p) in phi.iter().zip(&p) {
            let logit = (p / (1.0 - p)).ln();
            assert!((base + row.iter().sum::<f64>() - logit).abs() < 1e-9);
        }
    }
}
