//! Side-by-side benchmark of our tree models against the Python references and the Rust ML
//! crates, in one run: random forest vs scikit-learn, smartcore and linfa; one decision tree vs
//! scikit-learn and linfa-trees; GBDT vs XGBoost (hist); TreeSHAP vs the `shap` package on the
//! same trees. Everything single-threaded on every side.
//!
//! `cargo bench -p shopstream-trees --bench trees` (release profile). Environment:
//! `BENCH_SESSIONS` (default 50000), `BENCH_EXPLAIN` (rows explained, default 500),
//! `BENCH_REPEAT` (fits timed per side, best kept; default 3), `BENCH_ONLY=gbdt` (only the
//! GBDT vs XGBoost comparison), `BENCH_SHAP_REPEAT` (TreeSHAP timings repeated on both sides,
//! best kept; default 3), `BENCH_SHAP_THREADS` (threads for the extra multi-threaded TreeSHAP
//! row; default 0 = the available parallelism, and no row when that is 1), `SHOPSTREAM_PYTHON`
//! (default `<repo>/.venv/bin/python`), `BENCH_CRATES=0` (skip the Rust crates),
//! `BENCH_LINFA_TREES` (trees in the linfa forest; default 100, as ours).
//!
//! The Rust crates get the same matrices and the forest's settings (100 trees, depth 12, min
//! leaf 5, sqrt(columns) per node, bootstrap), one fit each (none of them uses threads):
//! smartcore 0.7 `RandomForestClassifier` (it predicts a majority vote only, so its AUC is that
//! of 0/1 votes) and `RandomForestRegressor` on the 0/1 label (mean of leaf purchase rates:
//! the same model as ours, which splits on Gini = variance reduction, with a score to rank
//! by); linfa 0.8 has no random forest in `linfa-trees`, and `linfa-ensemble`'s `RandomForest`
//! bags `linfa-trees` decision trees, each on a bootstrap and a random subset of columns
//! drawn once per tree (here sqrt(columns)/columns of them) rather than per node; its AUC is
//! that of the vote share. One depth-12 decision tree (min leaf 5, every column, no
//! bootstrap): ours, scikit-learn's `DecisionTreeClassifier`, `linfa-trees` `DecisionTree`
//! (which predicts a class only: AUC of 0/1 labels).
//!
//! The GBDT comparison uses the same matrices, rounds, depth (depth-wise growth), learning
//! rate, `lambda`, `min_child_weight`, 256 bins and the logistic objective on both sides, and
//! one thread on each (`nthread=1`); pin the whole run to one core with `taskset -c 1` to keep
//! both sides on the same CPU.
//!
//! TreeSHAP fairness: both sides explain the same rows (`x_test[..BENCH_EXPLAIN]`) on the same
//! trees (ours exported with `to_shap_dict`, checked equal to 1e-6), single-threaded (shap's C++
//! TreeSHAP runs on the calling thread; BLAS/OpenMP pools are pinned to 1 thread as well). Our
//! time includes building the explainer (`TreeShap::new`); shap's excludes building the
//! `TreeExplainer`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A bench binary: fail loudly.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use shopstream_features::{CategoricalEncoding, Dataset, FeatureSpec, split_sessions_by_user};
use shopstream_generator::{Generator, GeneratorConfig};
use shopstream_trees::forest::{ForestConfig, MaxFeatures, fit_forest};
use shopstream_trees::gbdt::{GbdtConfig, fit_gbdt};
use shopstream_trees::metrics::roc_auc;
use shopstream_trees::shap::TreeShap;

fn write_f64(dir: &Path, name: &str, values: impl Iterator<Item = f64>) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(name)).unwrap());
    for v in values {
        f.write_all(&v.to_le_bytes()).unwrap();
    }
}

/// CPU time consumed so far by the calling thread (Linux `/proc/thread-self/schedstat`, in
/// nanoseconds); `NaN` where unavailable.
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
        .map_or(f64::NAN, |ns| ns * 1e-9)
}

/// The 1/5/15-minute load averages, as `uptime` prints them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The CPUs this process may run on (`taskset` shows here).
fn cpus_allowed() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:").map(|v| v.trim().to_string()))
        })
        .unwrap_or_else(|| "unknown".into())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A fit by another Rust crate: seconds and test AUC.
struct CrateFit {
    seconds: f64,
    auc: f64,
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed().as_secs_f64())
}

/// smartcore's forests on the same rows and settings as `cfg`.
fn smartcore_forests(
    x: &ndarray::Array2<f64>,
    y: &[f64],
    x_test: &ndarray::Array2<f64>,
    y_test: &[f64],
    cfg: &ForestConfig,
) -> (CrateFit, CrateFit) {
    use smartcore::ensemble::random_forest_classifier::{
        RandomForestClassifier, RandomForestClassifierParameters,
    };
    use smartcore::ensemble::random_forest_regressor::{
        RandomForestRegressor, RandomForestRegressorParameters,
    };
    use smartcore::linalg::basic::matrix::DenseMatrix;
    let dense = |m: &ndarray::Array2<f64>| {
        DenseMatrix::new(m.nrows(), m.ncols(), m.iter().copied().collect(), false).unwrap()
    };
    let (xs, xs_test) = (dense(x), dense(x_test));
    let m = MaxFeatures::Sqrt.count(x.ncols());
    let labels: Vec<u32> = y.iter().map(|&v| u32::from(v == 1.0)).collect();
    let params = RandomForestClassifierParameters::default()
        .with_n_trees(u16::try_from(cfg.n_trees).unwrap())
        .with_max_depth(u16::try_from(cfg.max_depth).unwrap())
        .with_min_samples_leaf(cfg.min_samples_leaf as usize)
        .with_m(m)
        .with_seed(cfg.seed);
    let (clf, seconds) = timed(|| RandomForestClassifier::fit(&xs, &labels, params).unwrap());
    let votes: Vec<f64> = clf.predict(&xs_test).unwrap().iter().map(|&c| f64::from(c)).collect();
    let classifier = CrateFit { seconds, auc: roc_auc(&votes, y_test) };
    let targets: Vec<f64> = y.to_vec();
    let params = RandomForestRegressorParameters::default()
        .with_n_trees(cfg.n_trees)
        .with_max_depth(u16::try_from(cfg.max_depth).unwrap())
        .with_min_samples_leaf(cfg.min_samples_leaf as usize)
        .with_m(m)
        .with_seed(cfg.seed);
    let (reg, seconds) = timed(|| RandomForestRegressor::fit(&xs, &targets, params).unwrap());
    let scores: Vec<f64> = reg.predict(&xs_test).unwrap();
    (classifier, CrateFit { seconds, auc: roc_auc(&scores, y_test) })
}

/// linfa-ensemble's random forest (bagged linfa-trees) and one linfa-trees decision tree.
fn linfa_models(
    x: &ndarray::Array2<f64>,
    y: &[f64],
    x_test: &ndarray::Array2<f64>,
    y_test: &[f64],
    cfg: &ForestConfig,
    n_trees: usize,
) -> (Option<CrateFit>, CrateFit) {
    use linfa::prelude::*;
    use linfa_ensemble::EnsembleLearnerParams;
    use linfa_trees::DecisionTree;
    use rand_08::SeedableRng;
    let labels: ndarray::Array1<usize> = y.iter().map(|&v| usize::from(v == 1.0)).collect();
    let data = linfa::Dataset::new(x.clone(), labels);
    let tree = DecisionTree::params()
        .max_depth(Some(cfg.max_depth))
        .min_weight_leaf(cfg.min_samples_leaf as f32);
    let (dt, seconds) = timed(|| tree.clone().fit(&data).unwrap());
    let pred: ndarray::Array1<usize> = dt.predict(x_test);
    let hard: Vec<f64> = pred.iter().map(|&c| c as f64).collect();
    let single = CrateFit { seconds, auc: roc_auc(&hard, y_test) };
    if n_trees == 0 {
        return (None, single);
    }
    let share = MaxFeatures::Sqrt.count(x.ncols()) as f64 / x.ncols() as f64;
    let rng = rand_08::rngs::SmallRng::seed_from_u64(cfg.seed);
    let params = EnsembleLearnerParams::new_fixed_rng(tree, rng)
        .ensemble_size(n_trees)
        .bootstrap_proportion(1.0)
        .feature_proportion(share);
    let (forest, seconds) = timed(|| params.fit(&data).unwrap());
    // Vote share of the purchase class over the trees, each on its own columns.
    let mut votes = vec![0.0; x_test.nrows()];
    for (model, cols) in forest.models.iter().zip(&forest.model_features) {
        let p: ndarray::Array1<usize> = model.predict(&x_test.select(ndarray::Axis(1), cols));
        for (v, c) in votes.iter_mut().zip(p) {
            *v += c as f64;
        }
    }
    let share: Vec<f64> = votes.iter().map(|v| v / forest.models.len() as f64).collect();
    (Some(CrateFit { seconds, auc: roc_auc(&share, y_test) }), single)
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let n_sessions = env_usize("BENCH_SESSIONS", 50_000);
    let n_explain = env_usize("BENCH_EXPLAIN", 500);
    let repeat = env_usize("BENCH_REPEAT", 3).max(1);
    let only_gbdt = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "gbdt");
    let shap_repeat = env_usize("BENCH_SHAP_REPEAT", 3).max(1);
    let with_crates = env_usize("BENCH_CRATES", 1) != 0;
    let linfa_trees = env_usize("BENCH_LINFA_TREES", 100);
    let shap_threads = match env_usize("BENCH_SHAP_THREADS", 0) {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        t => t,
    };
    let manifest = env!("CARGO_MANIFEST_DIR");
    let python = std::env::var("SHOPSTREAM_PYTHON")
        .unwrap_or_else(|_| format!("{manifest}/../../.venv/bin/python"));
    let script = format!("{manifest}/../../bench/trees/reference.py");

    let sessions: Vec<_> =
        Generator::new(GeneratorConfig { seed: 7, users: n_sessions / 10, ..Default::default() })
            .unwrap()
            .take(n_sessions)
            .map(|g| g.session)
            .collect();
    let (train_s, test_s) = split_sessions_by_user(&sessions, 0.2, 7).unwrap();
    let spec = FeatureSpec { categorical: CategoricalEncoding::Ordinal, ..Default::default() };
    let enc = spec.fit(&train_s);
    let train = Dataset::from_sessions(&enc, &train_s);
    let test = Dataset::from_sessions(&enc, &test_s);
    let (x, y) = (&train.x, train.y.as_slice().unwrap());
    let y_test = test.y.as_slice().unwrap();
    let n_explain = n_explain.min(test.len());
    let x_ex = test.x.select(ndarray::Axis(0), &(0..n_explain).collect::<Vec<_>>());

    let rf_cfg =
        ForestConfig { n_trees: 100, max_depth: 12, min_samples_leaf: 5.0, ..Default::default() };
    let gb_cfg =
        GbdtConfig { n_rounds: 200, max_depth: 6, learning_rate: 0.1, ..Default::default() };

    let load_before = load_average();
    let (mut gb_s, mut gb_cpu) = (f64::INFINITY, f64::INFINITY);
    let mut gb = None;
    for _ in 0..repeat {
        let (t, c) = (Instant::now(), thread_cpu_seconds());
        let m = fit_gbdt(x, y, &gb_cfg).unwrap();
        gb_s = gb_s.min(t.elapsed().as_secs_f64());
        gb_cpu = gb_cpu.min(thread_cpu_seconds() - c);
        gb = Some(m);
    }
    let gb = gb.unwrap();
    let gb_auc = roc_auc(&gb.predict_proba_matrix(&test.x), y_test);

    let (rf, rf_s) = if only_gbdt {
        (gb.clone(), f64::NAN)
    } else {
        let t = Instant::now();
        let rf = fit_forest(x, y, &rf_cfg).unwrap();
        (rf, t.elapsed().as_secs_f64())
    };
    let rf_auc = roc_auc(&rf.predict_proba_matrix(&test.x), y_test);

    // One decision tree (ours, to compare with linfa-trees' and scikit-learn's).
    let dt_cfg = ForestConfig {
        n_trees: 1,
        max_features: MaxFeatures::All,
        bootstrap: false,
        ..rf_cfg.clone()
    };
    let (dt, dt_s) = timed(|| fit_forest(x, y, &dt_cfg).unwrap());
    let dt_auc = roc_auc(&dt.predict_proba_matrix(&test.x), y_test);
    // The Rust crates, same rows and settings.
    let crates = (with_crates && !only_gbdt).then(|| {
        let (sc_clf, sc_reg) = smartcore_forests(x, y, &test.x, y_test, &rf_cfg);
        let (linfa_rf, linfa_dt) = linfa_models(x, y, &test.x, y_test, &rf_cfg, linfa_trees);
        (sc_clf, sc_reg, linfa_rf, linfa_dt)
    });

    // TreeSHAP, best of `shap_repeat` runs, single-threaded; then multi-threaded if asked.
    let mut shap_s = Vec::new();
    let mut shap_par_s = Vec::new();
    let mut ours = Vec::new();
    for model in [&rf, &gb].into_iter().filter(|_| !only_gbdt) {
        let mut best = f64::INFINITY;
        let mut phi = None;
        for _ in 0..shap_repeat {
            let t = Instant::now();
            let p = TreeShap::new(model).explain_matrix(&x_ex);
            best = best.min(t.elapsed().as_secs_f64());
            phi = Some(p);
        }
        let phi = phi.unwrap();
        shap_s.push(best);
        if shap_threads > 1 {
            let mut best = f64::INFINITY;
            for _ in 0..shap_repeat {
                let t = Instant::now();
                let p = TreeShap::new(model).explain_matrix_parallel(&x_ex, shap_threads);
                best = best.min(t.elapsed().as_secs_f64());
                assert!(p == phi, "parallel TreeSHAP differs from sequential");
            }
            shap_par_s.push(best);
        }
        ours.push(phi);
    }

    // Hand the same data and trees to the Python side.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_f64(d, "x_train.f64", x.iter().copied());
    write_f64(d, "y_train.f64", y.iter().copied());
    write_f64(d, "x_test.f64", test.x.iter().copied());
    write_f64(d, "y_test.f64", y_test.iter().copied());
    std::fs::write(d.join("rf_model.json"), rf.to_shap_dict().to_string()).unwrap();
    std::fs::write(d.join("gbdt_model.json"), gb.to_shap_dict().to_string()).unwrap();
    let meta = serde_json::json!({
        "n_train": train.len(), "n_test": test.len(), "n_features": x.ncols(),
        "n_explain": n_explain, "rf": rf_cfg, "dt": dt_cfg, "gbdt": gb_cfg,
        "threads": 1, "repeat": repeat, "only_gbdt": only_gbdt, "shap_repeat": shap_repeat,
    });
    std::fs::write(d.join("meta.json"), meta.to_string()).unwrap();
    let out = Command::new(&python)
        .arg(&script)
        .arg(d)
        .envs(["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"].map(|k| (k, "1")))
        .output()
        .expect("run the Python reference");
    assert!(out.status.success(), "reference.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let py: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = |k: &str| py[k].as_f64().unwrap();

    let load_after = load_average();
    // Our SHAP equals theirs on the same trees (sanity check of the comparison).
    for (i, name) in ["rf", "gbdt"].iter().enumerate().filter(|_| !only_gbdt) {
        let bytes = std::fs::read(d.join(format!("shap_{name}.f64"))).unwrap();
        let theirs: Vec<f64> =
            bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
        let worst = ours[i].iter().zip(&theirs).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst < 1e-6, "{name}: SHAP differs from the shap package by {worst}");
    }

    println!(
        "shopstream-trees benchmark (1 thread each side, xgboost nthread={}; best of {repeat} \
         fits per side; load average before {load_before}, after {load_after})",
        py["xgb_nthread"]
    );
    println!(
        "data: {} train / {} test sessions, {} features (ordinal encoding); versions {}",
        train.len(),
        test.len(),
        x.ncols(),
        py["versions"]
    );
    println!(
        "{:<44} {:>10} {:>10} {:>8} {:>8} {:>8}",
        "task", "ours s", "ref s", "ref/ours", "our AUC", "ref AUC"
    );
    let row = |task: &str, ours: f64, theirs: f64, a: Option<(f64, f64)>| {
        let (oa, ta) = a.map_or((String::new(), String::new()), |(o, t)| {
            (format!("{o:.4}"), format!("{t:.4}"))
        });
        println!("{task:<44} {ours:>10.3} {theirs:>10.3} {:>8.2} {oa:>8} {ta:>8}", theirs / ours);
    };
    row(
        &format!("gbdt {} rounds depth {} vs xgboost hist", gb_cfg.n_rounds, gb_cfg.max_depth),
        gb_s,
        f("xgb_fit_s"),
        Some((gb_auc, f("xgb_auc"))),
    );
    println!(
        "gbdt: ours/xgboost fit time = {:.2} (target <= 1.5: {}); settings: {} rounds, depth {} \
         (depth-wise), eta {}, lambda {}, min_child_weight {}, gamma {}, {} bins, logistic",
        gb_s / f("xgb_fit_s"),
        if gb_s <= 1.5 * f("xgb_fit_s") { "met" } else { "MISSED" },
        gb_cfg.n_rounds,
        gb_cfg.max_depth,
        gb_cfg.learning_rate,
        gb_cfg.lambda,
        gb_cfg.min_child_weight,
        gb_cfg.min_split_gain,
        gb_cfg.max_bins,
    );
    println!(
        "gbdt: CPU time of the fitting thread (what time-slicing with other processes does not \
         inflate): ours {gb_cpu:.3} s, xgboost {:.3} s, ours/xgboost = {:.2}",
        f("xgb_fit_cpu_s"),
        gb_cpu / f("xgb_fit_cpu_s"),
    );
    println!(
        "gbdt: trees have {} leaves in all (xgboost: {})",
        gb.trees.iter().map(|t| t.leaves()).sum::<usize>(),
        py["xgb_leaves"]
    );
    println!(
        "gbdt: for reference, xgboost with its bins already cached on the DMatrix (boosting \
         only, no sketch) took {:.3} s wall, {:.3} s CPU; ours (which always bins) / that = \
         {:.2} wall, {:.2} CPU",
        f("xgb_fit_cached_bins_s"),
        f("xgb_fit_cached_bins_cpu_s"),
        gb_s / f("xgb_fit_cached_bins_s"),
        gb_cpu / f("xgb_fit_cached_bins_cpu_s"),
    );
    if only_gbdt {
        return;
    }
    row(
        &format!("random forest {} trees depth {} vs sklearn", rf_cfg.n_trees, rf_cfg.max_depth),
        rf_s,
        f("rf_fit_s"),
        Some((rf_auc, f("rf_auc"))),
    );
    row(
        &format!("decision tree depth {} vs sklearn", dt_cfg.max_depth),
        dt_s,
        f("dt_fit_s"),
        Some((dt_auc, f("dt_auc"))),
    );
    if let Some((sc_clf, sc_reg, linfa_rf, linfa_dt)) = &crates {
        row(
            "forest vs smartcore RandomForestClassifier",
            rf_s,
            sc_clf.seconds,
            Some((rf_auc, sc_clf.auc)),
        );
        row(
            "forest vs smartcore RandomForestRegressor",
            rf_s,
            sc_reg.seconds,
            Some((rf_auc, sc_reg.auc)),
        );
        if let Some(l) = linfa_rf {
            row(
                &format!("forest vs linfa-ensemble RF, {linfa_trees} trees"),
                rf_s,
                l.seconds,
                Some((rf_auc, l.auc)),
            );
        }
        row(
            "decision tree vs linfa-trees DecisionTree",
            dt_s,
            linfa_dt.seconds,
            Some((dt_auc, linfa_dt.auc)),
        );
    }
    row(&format!("TreeSHAP forest, {n_explain} rows vs shap"), shap_s[0], f("shap_rf_s"), None);
    row(&format!("TreeSHAP gbdt, {n_explain} rows vs shap"), shap_s[1], f("shap_gbdt_s"), None);
    for (i, (name, key)) in [("forest", "shap_rf_s"), ("gbdt", "shap_gbdt_s")].iter().enumerate() {
        if let Some(&t) = shap_par_s.get(i) {
            row(&format!("  (ours {shap_threads} threads vs shap 1) {name}"), t, f(key), None);
        }
    }
    println!(
        "TreeSHAP: best of {shap_repeat} on each side, single-threaded, same rows and exported \
         trees; cpus allowed {}",
        cpus_allowed(),
    );
    if crates.is_some() {
        println!(
            "crates: smartcore 0.7, linfa 0.8 (linfa-trees, linfa-ensemble), one fit each, \
             single-threaded; the smartcore classifier and linfa rows are scored on votes or \
             classes (neither predicts a probability), the smartcore regressor on its mean"
        );
    }
    println!(
        "targets: gbdt time <= 1.5x xgboost ({}), forest faster than sklearn ({}), \
         TreeSHAP faster than shap ({}, {})",
        if gb_s <= 1.5 * f("xgb_fit_s") { "met" } else { "MISSED" },
        if rf_s < f("rf_fit_s") { "met" } else { "MISSED" },
        if shap_s[0] < f("shap_rf_s") { "met" } else { "MISSED" },
        if shap_s[1] < f("shap_gbdt_s") { "met" } else { "MISSED" },
    );
}
