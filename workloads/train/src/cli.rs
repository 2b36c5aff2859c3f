//! The `train`, `predict` and `explain` subcommands.

use shopstream_contract as contract;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ndarray::{Array2, Axis};
use shopstream_features::Dataset;
use shopstream_privacy::{Budget, BudgetStore, Cost, DpRng, SpendRequest};
use shopstream_registry::{
    DataSnapshot, FeatureImportance, ModelEntry, PrivacyInfo, Registry, bson_date,
};
use shopstream_schema::Session;

use crate::data;
use crate::models::{Family, Hyper, Job, StoredModel, explain_groups, feature_groups};
use crate::pipeline::{Outcome, ShapSettings, prepare, train_and_evaluate};
use crate::report::{CurvePoint, ModelRow, Report, render};

/// Which variants to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrivacyMode {
    /// Non-private and private versions of every family.
    Both,
    /// Private versions only.
    Private,
    /// Non-private versions only (spends no budget).
    None,
}

/// Parses a model family as the operator (`randomForest`, `boostedTrees`, `mlp`,
/// `logisticRegression`) or a person (`random-forest`, `rf`, `gbdt`, `logistic`, ...) spells it.
pub fn parse_family(s: &str) -> Result<Family, String> {
    match s.trim().to_ascii_lowercase().replace(['-', '_'], "").as_str() {
        "randomforest" | "rf" => Ok(Family::RandomForest),
        "boostedtrees" | "gbdt" | "gradientboosting" => Ok(Family::Gbdt),
        "mlp" => Ok(Family::Mlp),
        "logisticregression" | "logistic" | "lr" => Ok(Family::LogisticRegression),
        other => Err(format!(
            "unknown model {other:?} (randomForest, boostedTrees, mlp, logisticRegression)"
        )),
    }
}

pub use shopstream_clients::MongoArgs;

/// `shopstream train`: train, evaluate, explain and register the purchase models.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Read sessions from this JSON-lines file (original record format) instead of MongoDB.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// MongoDB settings.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Collection the sink writes sessions to.
    #[arg(long, default_value = shopstream_documents::user_sessions::COLLECTION)]
    pub sessions_collection: String,
    /// Pipeline name: the privacy budget's id.
    #[arg(long, env = contract::env::PIPELINE, default_value = "default")]
    pub pipeline: String,
    /// Model families, comma separated: randomForest, boostedTrees, mlp, logisticRegression
    /// (the last has no private variant).
    #[arg(long, env = contract::env::TRAIN_MODELS, value_delimiter = ',', value_parser = parse_family,
          default_value = "randomForest,boostedTrees,mlp")]
    pub models: Vec<Family>,
    /// Which variants to train.
    #[arg(long, env = contract::env::TRAIN_PRIVACY, value_enum, default_value = "both")]
    pub privacy: PrivacyMode,
    /// Do not add the logistic-regression baseline. By default every run that trains
    /// non-private models (`--privacy both` or `none`) also trains it, whatever `--models` says;
    /// a private-only run never does.
    #[arg(long)]
    pub no_baseline: bool,
    /// Epsilon one run spends on its production models, split evenly among the private models.
    #[arg(long, env = contract::env::PRIVACY_EPSILON_PER_RUN, default_value_t = 3.0)]
    pub epsilon_per_run: f64,
    /// Total epsilon of the pipeline's budget (over all runs).
    #[arg(long, env = contract::env::PRIVACY_TOTAL_EPSILON, default_value_t = 30.0)]
    pub total_epsilon: f64,
    /// Total delta of the pipeline's budget (over all runs).
    #[arg(long, env = contract::env::PRIVACY_DELTA, default_value_t = 1e-3)]
    pub total_delta: f64,
    /// Delta one run spends, split evenly among its private production models (default: the
    /// same share of --total-delta as --epsilon-per-run is of --total-epsilon, so both run out
    /// after the same number of runs).
    #[arg(long, env = contract::env::PRIVACY_DELTA_PER_RUN)]
    pub delta_per_run: Option<f64>,
    /// The run's identity for the budget: a run is charged once, however often it is retried
    /// (the operator passes the Job's uid). Empty or absent: every invocation is its own run.
    #[arg(long, env = contract::env::RUN_ID)]
    pub run_id: Option<String>,
    /// DP-SGD Poisson sampling rate.
    #[arg(long, default_value_t = 0.01)]
    pub dp_sampling_rate: f64,
    /// DP-SGD steps.
    #[arg(long, default_value_t = 1500)]
    pub dp_steps: u64,
    /// DP-SGD per-example clipping norm.
    #[arg(long, default_value_t = 1.0)]
    pub dp_clip_norm: f64,
    /// Also train the private models at these epsilons for the privacy-utility curve (each
    /// point is charged to the budget; the models are not registered).
    #[arg(long, value_delimiter = ',')]
    pub curve_epsilons: Vec<f64>,
    /// Share of users held out for testing.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Seed of the user-level split.
    #[arg(long, default_value_t = 7)]
    pub split_seed: u64,
    /// Write the HTML report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Similarity results (JSON lines from `shopstream similarity --output`) to show in the report.
    #[arg(long)]
    pub similarity: Option<PathBuf>,
    /// Write the results table as JSON here.
    #[arg(long)]
    pub results_json: Option<PathBuf>,
}

impl TrainArgs {
    /// Start-up validation with messages that name the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.models.is_empty() {
            bail!("--models: name at least one model family");
        }
        if self.privacy == PrivacyMode::Private
            && !self.models.iter().any(|f| f.has_private_variant())
        {
            bail!(
                "--models: none of the named families has a private variant, and --privacy private trains only private models"
            );
        }
        for (flag, v) in [
            ("--epsilon-per-run", self.epsilon_per_run),
            ("--total-epsilon", self.total_epsilon),
            ("--dp-clip-norm", self.dp_clip_norm),
        ] {
            if !(v.is_finite() && v > 0.0) {
                bail!("{flag} must be a positive number, got {v}");
            }
        }
        for (flag, v) in
            [("--total-delta", self.total_delta), ("--delta-per-run", self.delta_per_run())]
        {
            if !(v > 0.0 && v < 1.0) {
                bail!("{flag} must be in (0, 1), got {v}");
            }
        }
        if self.epsilon_per_run > self.total_epsilon {
            bail!(
                "--epsilon-per-run {} exceeds --total-epsilon {}: no run fits the budget",
                self.epsilon_per_run,
                self.total_epsilon
            );
        }
        if self.delta_per_run() > self.total_delta {
            bail!(
                "--delta-per-run {:e} exceeds --total-delta {:e}: no run fits the budget",
                self.delta_per_run(),
                self.total_delta
            );
        }
        if !(self.dp_sampling_rate > 0.0 && self.dp_sampling_rate <= 1.0) {
            bail!("--dp-sampling-rate must be in (0, 1], got {}", self.dp_sampling_rate);
        }
        if self.dp_steps == 0 {
            bail!("--dp-steps must be at least 1");
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            bail!("--test-fraction must be in (0, 1), got {}", self.test_fraction);
        }
        if let Some(e) = self.curve_epsilons.iter().find(|e| !(e.is_finite() && **e > 0.0)) {
            bail!("--curve-epsilons must all be positive, got {e}");
        }
        if self.input.is_none() && self.mongo.mongo_url.is_none() {
            bail!("no sessions: give --input FILE.jsonl or --mongo-url (SHOPSTREAM_MONGO_URL)");
        }
        Ok(())
    }

    /// The delta one run spends (see `--delta-per-run`).
    pub fn delta_per_run(&self) -> f64 {
        self.delta_per_run.unwrap_or(self.total_delta * self.epsilon_per_run / self.total_epsilon)
    }

    /// The run id, if one was given (an empty value counts as none).
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref().map(str::trim).filter(|r| !r.is_empty())
    }

    fn hyper(&self) -> Hyper {
        Hyper {
            dp_sampling_rate: self.dp_sampling_rate,
            dp_steps: self.dp_steps,
            dp_clip_norm: self.dp_clip_norm,
            ..Hyper::default()
        }
    }

    /// The jobs of this run, with every private job's configuration (and so its cost) fixed.
    ///
    /// Per named family: the non-private model (`--privacy both|none`) and the private one
    /// (`--privacy both|private`, families with a private variant only; `--epsilon-per-run`
    /// split evenly among them); then the logistic-regression baseline when non-private models
    /// are trained (unless `--no-baseline` or already named); then the curve points.
    pub fn plan(&self) -> anyhow::Result<Vec<Job>> {
        let hyper = self.hyper();
        let mut families: Vec<Family> = Vec::new();
        for &f in &self.models {
            if !families.contains(&f) {
                families.push(f);
            }
        }
        let plain = matches!(self.privacy, PrivacyMode::Both | PrivacyMode::None);
        let private = matches!(self.privacy, PrivacyMode::Both | PrivacyMode::Private);
        let private_families: Vec<Family> =
            families.iter().copied().filter(|f| private && f.has_private_variant()).collect();
        // The run's delta, split evenly among its private production models.
        let model_delta = self.delta_per_run() / private_families.len().max(1) as f64;
        let mut jobs = Vec::new();
        for &f in &families {
            if plain {
                jobs.push(Job::plain(f));
            }
            if private_families.contains(&f) {
                let eps = self.epsilon_per_run / private_families.len() as f64;
                jobs.push(Job::private(f, eps, model_delta, &hyper)?);
            }
        }
        if plain && !self.no_baseline && !families.contains(&Family::LogisticRegression) {
            jobs.push(Job::plain(Family::LogisticRegression));
        }
        if private {
            for &f in &private_families {
                for &e in &self.curve_epsilons {
                    let mut j = Job::private(f, e, model_delta, &hyper)?;
                    j.curve_point = true;
                    jobs.push(j);
                }
            }
        }
        Ok(jobs)
    }
}

/// The privacy budget: persisted in MongoDB, or in memory for file-only local runs.
enum Ledger {
    Mongo(BudgetStore),
    Memory(Budget),
}

fn spend_requests(jobs: &[Job], versions: &[Option<i64>]) -> anyhow::Result<Vec<SpendRequest>> {
    let mut out = Vec::new();
    for (job, version) in jobs.iter().zip(versions) {
        if let Some((cost, mechanism)) = job.cost()? {
            let what = if job.curve_point {
                format!("privacy-utility curve: train {} at epsilon {}", job.name(), cost.epsilon)
            } else {
                format!("train {}", job.name())
            };
            out.push(SpendRequest {
                what,
                mechanism,
                cost,
                model: (!job.curve_point).then(|| job.name()),
                version: *version,
            });
        }
    }
    Ok(out)
}

fn row_for(o: &Outcome, version: Option<i64>) -> anyhow::Result<ModelRow> {
    let cost = o.job.cost()?.map(|c| c.0);
    Ok(ModelRow {
        name: o.job.name(),
        version,
        epsilon: cost.map(|c| c.epsilon),
        delta: cost.map(|c| c.delta),
        roc_auc: o.metrics.roc_auc,
        accuracy: o.metrics.accuracy,
        f1: o.metrics.f1,
        log_loss: o.metrics.log_loss,
        train_seconds: o.train_seconds,
        roc: o.roc.clone(),
        importance: o.importance.clone(),
        shap_space: o.payload.shap_method(),
    })
}

/// A user and their most similar users with estimated Jaccard similarity.
pub type SimilarRow = (String, Vec<(String, f64)>);

/// Reads a similarity results file: JSON lines `{ "_id": user, "similar": [{ "userId", "similarity" }] }`.
pub fn read_similarity(path: &Path, limit: usize) -> anyhow::Result<Vec<SimilarRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("parsing {}", path.display()))?;
        let user = v["_id"].as_str().unwrap_or_default().to_string();
        let sims: Vec<(String, f64)> = v["similar"]
            .as_array()
            .map(|a| {
                a.iter()
                    .take(5)
                    .filter_map(|s| {
                        Some((s["userId"].as_str()?.to_string(), s["similarity"].as_f64()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !user.is_empty() && !sims.is_empty() {
            out.push((user, sims));
        }
    }
    out.sort_by(|a, b| b.1[0].1.total_cmp(&a.1[0].1).then(a.0.cmp(&b.0)));
    out.truncate(limit);
    Ok(out)
}

fn time_range(
    d: &Dataset,
    e: &Dataset,
) -> (Option<mongodb::bson::DateTime>, Option<mongodb::bson::DateTime>) {
    let all = d.timestamps.iter().chain(&e.timestamps);
    let min = all.clone().min().map(|t| bson_date(t.and_utc()));
    let max = all.max().map(|t| bson_date(t.and_utc()));
    (min, max)
}

/// Runs `shopstream train`.
pub async fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    args.validate()?;
    let hyper = args.hyper();
    let jobs = args.plan()?;
    let db = args.mongo.database().await?;

    // 1. Pay for every private release of the run before reading any data.
    let pending: Vec<SpendRequest> = spend_requests(&jobs, &vec![None; jobs.len()])?;
    let run_cost = Cost::sum(pending.iter().map(|r| r.cost));
    let mut ledger = match &db {
        Some(db) => {
            let store = BudgetStore::new(db);
            let doc = store.ensure(&args.pipeline, args.total_epsilon, args.total_delta).await?;
            let paid = args.run_id().is_some_and(|run| doc.paid_by(run));
            // Refuse early (nothing allocated) when it cannot fit; spend_all re-checks atomically.
            // A retry of a run that has paid is not refused (it pays nothing).
            if !paid {
                doc.budget().check(&args.pipeline, "this training run", run_cost)?;
            }
            Ledger::Mongo(store)
        }
        None => {
            tracing::warn!(
                "no MongoDB: the privacy budget is in memory only and models are not registered"
            );
            Ledger::Memory(Budget::new(args.total_epsilon, args.total_delta)?)
        }
    };
    let registry = db.as_ref().map(Registry::new);
    let mut versions: Vec<Option<i64>> = vec![None; jobs.len()];
    if let Some(reg) = &registry {
        reg.ensure_indexes().await?;
        for (job, v) in jobs.iter().zip(versions.iter_mut()) {
            if !job.curve_point {
                *v = Some(reg.allocate_version(&job.name()).await?);
            }
        }
    }
    let requests = spend_requests(&jobs, &versions)?;
    if !requests.is_empty() {
        match &mut ledger {
            Ledger::Mongo(store) => {
                let charge = store.spend_all(&args.pipeline, &requests, args.run_id()).await?;
                let doc = charge.doc;
                if charge.already_paid {
                    println!(
                        "privacy budget '{}': run {} has already paid; nothing charged (spent {:.4} of {}, delta {:e} of {:e})",
                        args.pipeline,
                        args.run_id().unwrap_or_default(),
                        doc.spent_epsilon,
                        doc.total_epsilon,
                        doc.spent_delta,
                        doc.delta
                    );
                } else {
                    println!(
                        "privacy budget '{}': charged epsilon {:.4}, delta {:e}; spent {:.4} of {} (delta {:e} of {:e})",
                        args.pipeline,
                        run_cost.epsilon,
                        run_cost.delta,
                        doc.spent_epsilon,
                        doc.total_epsilon,
                        doc.spent_delta,
                        doc.delta
                    );
                }
            }
            Ledger::Memory(b) => b.spend(&args.pipeline, "this training run", run_cost)?,
        }
    }

    // 2. Data.
    let (sessions, stats): (Vec<Session>, data::LoadStats) = match (&args.input, &db) {
        (Some(path), _) => data::from_jsonl(path)?,
        (None, Some(db)) => data::from_mongo(db, &args.sessions_collection).await?,
        (None, None) => bail!("no sessions source"),
    };
    println!(
        "loaded {} sessions ({} rejected, {} duplicates dropped)",
        stats.sessions, stats.rejected, stats.duplicates
    );
    let test_fraction = args.test_fraction;
    let split_seed = args.split_seed;
    let prep = tokio::task::spawn_blocking(move || prepare(&sessions, test_fraction, split_seed))
        .await??;
    println!(
        "split by user: {} training sessions, {} test sessions, {} feature groups ({} one-hot columns, {} ordinal)",
        prep.train().len(),
        prep.test().len(),
        prep.one_hot.group_names.len(),
        prep.one_hot.train.names.len(),
        prep.ordinal.train.names.len()
    );

    // 3. Train, evaluate, explain (CPU-bound: off the async runtime).
    let shap = ShapSettings::default();
    let prep = std::sync::Arc::new(prep);
    let mut outcomes: Vec<(Outcome, Option<i64>)> = Vec::new();
    for (job, version) in jobs.iter().zip(&versions) {
        let (job2, hyper2, prep2) = (job.clone(), hyper.clone(), prep.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let mut rng = DpRng::from_os();
            train_and_evaluate(&job2, &hyper2, &prep2, &mut rng, &shap)
        })
        .await??;
        outcomes.push((outcome, *version));
    }

    // 4. Register.
    let (from, to) = time_range(prep.train(), prep.test());
    if let Some(reg) = &registry {
        for (o, version) in &outcomes {
            let Some(version) = version else { continue };
            let cost = o.job.cost()?;
            let stored = StoredModel {
                encoder: prep.for_family(o.job.family).encoder.clone(),
                payload: o.payload.clone(),
            };
            let entry = ModelEntry {
                name: o.job.name(),
                version: *version,
                kind: stored.kind().to_string(),
                trained_at: mongodb::bson::DateTime::now(),
                data: DataSnapshot {
                    rows: (prep.train().len() + prep.test().len()) as i64,
                    train_rows: prep.train().len() as i64,
                    test_rows: prep.test().len() as i64,
                    from,
                    to,
                },
                metrics: o.metrics,
                privacy: match cost {
                    Some((c, mechanism)) => {
                        PrivacyInfo { mechanism, epsilon: Some(c.epsilon), delta: Some(c.delta) }
                    }
                    None => PrivacyInfo { mechanism: "none".into(), epsilon: None, delta: None },
                },
                top_features: o
                    .importance
                    .iter()
                    .take(10)
                    .map(|(f, v)| FeatureImportance { feature: f.clone(), mean_abs_shap: *v })
                    .collect(),
                model: stored.to_bytes()?,
            };
            reg.insert(&entry).await?;
        }
    }

    // 5. Results table, JSON, report.
    let rows: Vec<ModelRow> = outcomes
        .iter()
        .filter(|(o, _)| !o.job.curve_point)
        .map(|(o, v)| row_for(o, *v))
        .collect::<anyhow::Result<_>>()?;
    print_table(&rows);
    let curve: Vec<CurvePoint> = outcomes
        .iter()
        .filter(|(o, _)| o.job.cost().ok().flatten().is_some())
        .filter_map(|(o, _)| {
            let eps = o.job.cost().ok().flatten()?.0.epsilon;
            Some(CurvePoint { series: o.job.name(), epsilon: eps, roc_auc: o.metrics.roc_auc })
        })
        .collect();
    let curve_reference: Vec<(String, f64)> =
        rows.iter().filter(|r| r.epsilon.is_none()).map(|r| (r.name.clone(), r.roc_auc)).collect();
    if let Some(path) = &args.results_json {
        let json = serde_json::json!({
            "pipeline": args.pipeline,
            "rows": prep.train().len() + prep.test().len(),
            "models": rows.iter().map(|r| serde_json::json!({
                "name": r.name, "version": r.version, "epsilon": r.epsilon, "delta": r.delta,
                "rocAuc": r.roc_auc, "accuracy": r.accuracy, "f1": r.f1, "logLoss": r.log_loss,
                "trainSeconds": r.train_seconds,
                "topFeatures": r.importance.iter().take(5).map(|(f, v)| serde_json::json!({"feature": f, "meanAbsShap": v})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "curve": curve.iter().map(|p| serde_json::json!({"model": p.series, "epsilon": p.epsilon, "rocAuc": p.roc_auc})).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.report {
        let similar = match &args.similarity {
            Some(p) => read_similarity(p, 15)?,
            None => Vec::new(),
        };
        let report = Report {
            title: format!("shopstream purchase models - pipeline {}", args.pipeline),
            facts: vec![
                (
                    "sessions".into(),
                    format!(
                        "{} loaded, {} rejected, {} duplicates",
                        stats.sessions, stats.rejected, stats.duplicates
                    ),
                ),
                (
                    "split".into(),
                    format!(
                        "by user: {} train / {} test sessions",
                        prep.train().len(),
                        prep.test().len()
                    ),
                ),
                (
                    "purchase rate".into(),
                    format!(
                        "train {:.3}, test {:.3}",
                        prep.train().positive_rate(),
                        prep.test().positive_rate()
                    ),
                ),
                (
                    "privacy charged by this run".into(),
                    format!(
                        "epsilon {:.4}, delta {:e} (basic composition)",
                        run_cost.epsilon, run_cost.delta
                    ),
                ),
                (
                    "unit of privacy".into(),
                    "one session record (a user with k sessions: k x epsilon)".into(),
                ),
            ],
            models: rows.clone(),
            curve,
            curve_reference,
            similar,
        };
        std::fs::write(path, render(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(())
}

fn print_table(rows: &[ModelRow]) {
    println!(
        "{:<18} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  top features",
        "model", "version", "epsilon", "delta", "ROC AUC", "accuracy", "F1", "logloss", "train s"
    );
    for r in rows {
        let top: Vec<&str> = r.importance.iter().take(3).map(|(f, _)| f.as_str()).collect();
        println!(
            "{:<18} {:>7} {:>8} {:>8} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.1}  {}",
            r.name,
            r.version.map_or("-".into(), |v| v.to_string()),
            r.epsilon.map_or("-".into(), |e| format!("{e:.3}")),
            r.delta.map_or("-".into(), |d| format!("{d:.0e}")),
            r.roc_auc,
            r.accuracy,
            r.f1,
            r.log_loss,
            r.train_seconds,
            top.join(", ")
        );
    }
}

/// A registered model and the sessions to apply it to (`predict`, `explain`).
#[derive(Debug, Clone, clap::Args)]
pub struct ModelInput {
    /// Registered model name (e.g. gbdt, dp_mlp).
    #[arg(long)]
    pub model: String,
    /// Version (default: the latest).
    #[arg(long)]
    pub version: Option<i64>,
    /// Sessions (JSON lines, original record format).
    #[arg(long)]
    pub input: PathBuf,
}

/// `shopstream predict`: score sessions with a registered model.
#[derive(Debug, Clone, clap::Args)]
pub struct PredictArgs {
    /// The model and the sessions.
    #[command(flatten)]
    pub target: ModelInput,
    /// Write JSON lines here (default: stdout).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// MongoDB settings (the registry).
    #[command(flatten)]
    pub mongo: MongoArgs,
}

/// `shopstream explain`: per-session SHAP explanations from a registered model.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// The model and the sessions.
    #[command(flatten)]
    pub target: ModelInput,
    /// Features per session in the output.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// KernelSHAP background rows for MLP models, taken from the input file (the registry
    /// stores no training rows).
    #[arg(long, default_value_t = 30)]
    pub background: usize,
    /// KernelSHAP coalitions per session (MLP models).
    #[arg(long, default_value_t = 1024)]
    pub nsamples: usize,
    /// Write JSON lines here (default: stdout).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// MongoDB settings (the registry).
    #[command(flatten)]
    pub mongo: MongoArgs,
}

async fn load_registered(
    mongo: &MongoArgs,
    name: &str,
    version: Option<i64>,
) -> anyhow::Result<(ModelEntry, StoredModel)> {
    let db =
        mongo.database().await?.context("the registry needs --mongo-url (SHOPSTREAM_MONGO_URL)")?;
    let entry = Registry::new(&db).get(name, version).await?;
    let stored = StoredModel::from_bytes(&entry.model).with_context(|| {
        format!("model {} version {} is not a readable shopstream model", entry.name, entry.version)
    })?;
    Ok((entry, stored))
}

fn output(path: &Option<PathBuf>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    })
}

fn encode(stored: &StoredModel, input: &Path) -> anyhow::Result<(Vec<Session>, Array2<f64>)> {
    let (sessions, stats) = data::from_jsonl(input)?;
    if sessions.is_empty() {
        bail!("{}: no valid sessions ({} rejected)", input.display(), stats.rejected);
    }
    let x = stored.encoder.transform(&sessions);
    Ok((sessions, x))
}

/// Runs `shopstream predict`.
pub async fn run_predict(args: PredictArgs) -> anyhow::Result<()> {
    let t = &args.target;
    let (entry, stored) = load_registered(&args.mongo, &t.model, t.version).await?;
    let (sessions, x) = encode(&stored, &t.input)?;
    let probs = stored.predict(&x)?;
    let mut out = output(&args.output)?;
    for (s, p) in sessions.iter().zip(probs) {
        let line = serde_json::json!({
            "sessionId": s.session_id, "userId": s.user_id, "model": entry.name,
            "version": entry.version, "purchaseProbability": p,
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Runs `shopstream explain`.
pub async fn run_explain(args: ExplainArgs) -> anyhow::Result<()> {
    if args.background == 0 || args.nsamples == 0 {
        bail!("--background and --nsamples must be at least 1");
    }
    let t = &args.target;
    let (entry, stored) = load_registered(&args.mongo, &t.model, t.version).await?;
    let (sessions, x) = encode(&stored, &t.input)?;
    let (group_names, groups) = feature_groups(stored.encoder.names());
    let n = args.background.min(x.nrows());
    let step = (x.nrows() / n).max(1);
    let idx: Vec<usize> = (0..n).map(|k| (k * step) % x.nrows()).collect();
    let background = x.select(Axis(0), &idx);
    let probs = stored.predict(&x)?;
    let (payload, nsamples) = (stored.payload.clone(), args.nsamples);
    let x2 = x.clone();
    let (phi, base) = tokio::task::spawn_blocking(move || {
        explain_groups(&payload, &x2, &background, &groups, Some(nsamples))
    })
    .await??;
    let space = stored.payload.shap_space();
    let mut out = output(&args.output)?;
    for ((s, p), row) in sessions.iter().zip(probs).zip(phi) {
        let mut named: Vec<(&String, f64)> = group_names.iter().zip(row).collect();
        named.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        let line = serde_json::json!({
            "sessionId": s.session_id, "model": entry.name, "version": entry.version,
            "purchaseProbability": p, "shapSpace": space, "baseValue": base,
            "shap": named.iter().take(args.top).map(|(f, v)| serde_json::json!({"feature": f, "value": v})).collect::<Vec<_>>(),
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: TrainArgs,
    }

    #[test]
    fn operator_spelling_of_models_and_run_plan() {
        let t = T::try_parse_from([
            "t",
            "--input",
            "x.jsonl",
            "--models",
            "randomForest,boostedTrees,mlp",
            "--epsilon-per-run",
            "3",
            "--curve-epsilons",
            "0.5,2",
        ])
        .unwrap();
        t.a.validate().unwrap();
        assert_eq!(t.a.models, vec![Family::RandomForest, Family::Gbdt, Family::Mlp]);
        let jobs = t.a.plan().unwrap();
        // 3 plain + 3 private + the logistic baseline + 3 x 2 curve points.
        assert_eq!(jobs.len(), 13);
        assert_eq!(jobs.iter().filter(|j| j.family == Family::LogisticRegression).count(), 1);
        let reqs = spend_requests(&jobs, &vec![None; jobs.len()]).unwrap();
        assert_eq!(reqs.len(), 9);
        let total = Cost::sum(reqs.iter().map(|r| r.cost));
        // Production models: 3 x 1.0; curve: 3 x (0.5 + 2).
        assert!((total.epsilon - 10.5).abs() < 0.01, "{}", total.epsilon);
        // The run's delta (default: --total-delta 1e-3 x 3 / 30 = 1e-4) split over its three
        // private models; each curve point spends a model's share too.
        assert!(reqs.iter().all(|r| (r.cost.delta - 1e-4 / 3.0).abs() < 1e-18), "{reqs:?}");
        assert!((total.delta - 3e-4).abs() < 1e-12, "{total:?}");
        let production: f64 = reqs.iter().filter(|r| r.model.is_some()).map(|r| r.cost.delta).sum();
        assert!((production - t.a.delta_per_run()).abs() < 1e-18);
    }

    #[test]
    fn the_logistic_baseline_comes_with_non_private_models_only() {
        let names = |argv: &[&str]| -> Vec<String> {
            let mut a = vec!["t", "--input", "x.jsonl"];
            a.extend(argv);
            let t = T::try_parse_from(a).unwrap();
            t.a.validate().unwrap();
            t.a.plan().unwrap().iter().map(Job::name).collect()
        };
        assert_eq!(names(&["--models", "gbdt"]), ["gbdt", "dp_gbdt", "logistic_regression"]);
        assert_eq!(
            names(&["--models", "gbdt", "--privacy", "none"]),
            ["gbdt", "logistic_regression"]
        );
        assert_eq!(names(&["--models", "gbdt", "--privacy", "private"]), ["dp_gbdt"]);
        assert_eq!(names(&["--models", "gbdt", "--no-baseline"]), ["gbdt", "dp_gbdt"]);
        // Named explicitly: trained once, and the private epsilon is split among the private
        // families only.
        let t = T::try_parse_from([
            "t",
            "--input",
            "x",
            "--models",
            "logisticRegression,mlp",
            "--epsilon-per-run",
            "2",
        ])
        .unwrap();
        let jobs = t.a.plan().unwrap();
        let names: Vec<String> = jobs.iter().map(Job::name).collect();
        assert_eq!(names, ["logistic_regression", "mlp", "dp_mlp"]);
        let reqs = spend_requests(&jobs, &vec![None; jobs.len()]).unwrap();
        assert_eq!(reqs.len(), 1);
        assert!((reqs[0].cost.epsilon - 2.0).abs() < 0.01);
        // Private-only with nothing private to train is refused.
        let t = T::try_parse_from(["t", "--input", "x", "--models", "lr", "--privacy", "private"])
            .unwrap();
        assert!(t.a.validate().unwrap_err().to_string().contains("--models"));
    }

    #[test]
    fn invalid_settings_name_the_flag() {
        let t = T::try_parse_from(["t", "--input", "x", "--epsilon-per-run=-1"]).unwrap();
        assert!(t.a.validate().unwrap_err().to_string().contains("--epsilon-per-run"));
        assert!(T::try_parse_from(["t", "--models", "svm"]).is_err());
        let t = T::try_parse_from(["t", "--input", "x", "--dp-sampling-rate", "1.5"]).unwrap();
        assert!(t.a.validate().unwrap_err().to_string().contains("--dp-sampling-rate"));
    }
}
