//! TreeSHAP is exact: it equals the Shapley values of the path-dependent game computed by
//! brute force, its values plus the base value equal the model output (1e-9) for every model
//! kind, and it matches the reference `shap` package's TreeExplainer (1e-6) on the same trees.
#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

mod common;

use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use shopstream_features::CategoricalEncoding;
use shopstream_trees::dp_forest::{DpForestConfig, fit_dp_forest};
use shopstream_trees::dp_gbdt::{DpGbdtConfig, fit_dp_gbdt};
use shopstream_trees::forest::{ForestConfig, fit_forest};
use shopstream_trees::gbdt::{GbdtConfig, fit_gbdt};
use shopstream_trees::shap::{TreeShap, conditional_expectation};
use shopstream_trees::{Node, OutputSpace, Tree, TreeEnsemble, TreeModel, TreeModelKind};

/// Four trained models of every kind on generated sessions, and some test rows.
fn models() -> (Vec<(&'static str, TreeEnsemble)>, Array2<f64>) {
    let data = common::generated(6000, 11, CategoricalEncoding::Ordinal);
    let x = &data.train.x;
    let y = data.train.y.as_slice().unwrap();
    let ranges = data.encoder.public_ranges();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let rf = fit_forest(x, y, &ForestConfig { n_trees: 20, max_depth: 8, ..Default::default() })
        .unwrap();
    let gb =
        fit_gbdt(x, y, &GbdtConfig { n_rounds: 30, max_depth: 5, ..Default::default() }).unwrap();
    let (dprf, _) = fit_dp_forest(x, y, ranges, &DpForestConfig::default(), &mut rng).unwrap();
    let (dpgb, _) = fit_dp_gbdt(x, y, ranges, &DpGbdtConfig::default(), &mut rng).unwrap();
    let rows = data.test.x.select(Axis(0), &(0..200).collect::<Vec<_>>());
    (vec![("random_forest", rf), ("gbdt", gb), ("dp_random_forest", dprf), ("dp_gbdt", dpgb)], rows)
}

#[test]
fn shap_values_add_up_to_the_model_output() {
    let (models, rows) = models();
    for (name, model) in &models {
        model.validate().unwrap();
        let mut explainer = TreeShap::new(model);
        let mut worst = 0.0f64;
        for row in rows.rows() {
            let row = row.to_vec();
            let e = explainer.explain(&row);
            let total = e.phi.iter().sum::<f64>() + e.base;
            worst = worst.max((total - model.raw(&row)).abs());
        }
        println!("{name}: max |sum(phi) + base - output| = {worst:.2e}");
        assert!(worst < 1e-9, "{name}: additivity error {worst}");
    }
}

#[test]
fn shap_matches_the_reference_package() {
    let (models, rows) = models();
    for (name, model) in &models {
        let ours = TreeShap::new(model).explain_matrix(&rows);
        let base = TreeShap::new(model).base_value();
        let (theirs, their_base) = common::reference_shap(model, &rows);
        assert_eq!(ours.dim(), theirs.dim(), "{name}");
        let worst = (&ours - &theirs).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        println!(
            "{name}: max |ours - shap.TreeExplainer| = {worst:.2e}, base {base:.9} vs {their_base:.9}"
        );
        assert!(worst < 1e-6, "{name}: differs from shap by {worst}");
        assert!((base - their_base).abs() < 1e-6, "{name}: base {base} vs {their_base}");
        // Not vacuous: the values are not all zero.
        assert!(ours.iter().any(|v| v.abs() > 1e-6), "{name}: all SHAP values are zero");
    }
}

/// Exact Shapley values of the path-dependent game by enumerating all subsets.
fn brute_force_shapley(model: &TreeEnsemble, row: &[f64]) -> Vec<f64> {
    let m = model.n_features;
    let value = |mask: usize| -> f64 {
        let subset: Vec<bool> = (0..m).map(|i| mask & (1 << i) != 0).collect();
        model.base_offset
            + model.tree_weight
                * model.trees.iter().map(|t| conditional_expectation(t, row, &subset)).sum::<f64>()
    };
    let fact = |k: usize| (1..=k).map(|v| v as f64).product::<f64>();
    let mut phi = vec![0.0; m];
    for (i, p) in phi.iter_mut().enumerate() {
        for mask in 0..(1usize << m) {
            if mask & (1 << i) != 0 {
                continue;
            }
            let k = mask.count_ones() as usize;
            let w = fact(k) * fact(m - k - 1) / fact(m);
            *p += w * (value(mask | (1 << i)) - value(mask));
        }
    }
    phi
}

#[test]
fn shap_equals_brute_force_shapley_values() {
    // Deep trees on few columns, so columns repeat along paths (exercises UNWIND).
    let data = common::generated(3000, 3, CategoricalEncoding::Ordinal);
    let cols = [0usize, 2, 8, 9, 11, 12, 24];
    let x = data.train.x.select(Axis(1), &cols);
    let y = data.train.y.as_slice().unwrap();
    let models = [
        fit_gbdt(&x, y, &GbdtConfig { n_rounds: 8, max_depth: 7, ..Default::default() }).unwrap(),
        fit_forest(&x, y, &ForestConfig { n_trees: 5, max_depth: 9, ..Default::default() })
            .unwrap(),
    ];
    for model in &models {
        assert!(model.trees.iter().any(|t| t.max_depth() >= 7));
        let mut explainer = TreeShap::new(model);
        for r in 0..20 {
            let row = data.test.x.select(Axis(1), &cols).row(r).to_vec();
            let fast = explainer.explain(&row).phi;
            let slow = brute_force_shapley(model, &row);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() < 1e-10, "TreeSHAP {fast:?} vs Shapley {slow:?}");
            }
        }
    }
}

#[test]
fn models_round_trip_through_serde_and_explain_by_name() {
    let (models, rows) = models();
    let names: Vec<String> = (0..rows.ncols()).map(|i| format!("f{i}")).collect();
    let (_, gb) = &models[1];
    let model = TreeModel::new(TreeModelKind::Gbdt, gb.clone(), names, None).unwrap();
    let json = serde_json::to_string(&model).unwrap();
    let back: TreeModel = serde_json::from_str(&json).unwrap();
    back.validate().unwrap();
    assert!(back == model, "model changed in a serde round trip");
    let row = rows.row(0).to_vec();
    assert_eq!(back.predict_proba(&row).unwrap(), model.predict_proba(&row).unwrap());
    let (phi, base) = back.explain(&row).unwrap();
    let total: f64 = phi.iter().map(|(_, v)| v).sum::<f64>() + base;
    assert!((total - gb.raw(&row)).abs() < 1e-9);
    assert!(phi.windows(2).all(|w| w[0].1.abs() >= w[1].1.abs()), "sorted by |phi|");
    let global = back.global_importance(&rows).unwrap();
    assert_eq!(global.len(), rows.ncols());
    assert!(global[0].1 > 0.0);
    // A wrong-width row is an error, not a panic.
    assert!(back.predict_proba(&row[1..]).is_err());
    // A private kind without privacy recorded is rejected.
    assert!(
        TreeModel::new(TreeModelKind::DpGbdt, gb.clone(), model.feature_names.clone(), None)
            .is_err()
    );
}

/// Grows a random subtree: on the spine every split continues to `depth_left` on one side;
/// off the spine subtrees stop at depth 4 or earlier.
fn grow(
    nodes: &mut Vec<Node>,
    rng: &mut ChaCha20Rng,
    m: usize,
    depth_left: usize,
    spine: bool,
) -> u32 {
    let i = nodes.len();
    if depth_left == 0 || (!spine && rng.random_bool(0.3)) {
        nodes.push(Node::leaf(rng.random_range(-1.0..1.0), rng.random_range(0.5..10.0)));
        return i as u32;
    }
    let split = Node {
        feature: rng.random_range(0..m) as u32,
        threshold: rng.random_range(0.0..1.0),
        left: 0,
        right: 0,
        value: 0.0,
        cover: 0.0,
    };
    nodes.push(split);
    let hot = rng.random_bool(0.5);
    let off = (depth_left - 1).min(4);
    let l = grow(nodes, rng, m, if spine && hot { depth_left - 1 } else { off }, spine && hot);
    let r = grow(nodes, rng, m, if spine && !hot { depth_left - 1 } else { off }, spine && !hot);
    nodes[i].left = l;
    nodes[i].right = r;
    i as u32
}

#[test]
fn shap_is_exact_on_very_deep_trees_that_reuse_features() {
    // Paths 40 splits long over 4 features: every feature is split on many times per path, so
    // the walk divides factors out and in again, in both satisfied and unsatisfied states, and
    // the scratch space must hold 40 levels.
    let m = 4;
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    let trees: Vec<Tree> = (0..3)
        .map(|_| {
            let mut nodes = Vec::new();
            grow(&mut nodes, &mut rng, m, 40, true);
            let mut tree = Tree { nodes };
            tree.finish();
            tree
        })
        .collect();
    let model = TreeEnsemble {
        trees,
        tree_weight: 0.5,
        base_offset: 0.25,
        output: OutputSpace::LogOdds,
        n_features: m,
    };
    model.validate().unwrap();
    assert!(model.trees.iter().all(|t| t.max_depth() == 40));
    let rows = Array2::from_shape_fn((30, m), |_| rng.random_range(0.0..1.0));
    let mut explainer = TreeShap::new(&model);
    let ours = explainer.explain_matrix(&rows);
    for (r, row) in rows.rows().into_iter().enumerate() {
        let row = row.to_vec();
        let slow = brute_force_shapley(&model, &row);
        for (a, b) in ours.row(r).iter().zip(&slow) {
            assert!(
                (a - b).abs() < 1e-10,
                "row {r}: TreeSHAP {:?} vs Shapley {slow:?}",
                ours.row(r)
            );
        }
        let total = ours.row(r).sum() + explainer.base_value();
        assert!((total - model.raw(&row)).abs() < 1e-9, "row {r}: additivity");
    }
    let (theirs, _) = common::reference_shap(&model, &rows);
    let worst = (&ours - &theirs).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(worst < 1e-6, "deep trees: differs from shap by {worst}");
    assert!(ours.iter().any(|v| v.abs() > 1e-6), "all SHAP values are zero");
}

#[test]
fn parallel_explanations_equal_sequential_ones() {
    let (models, rows) = models();
    for (name, model) in &models {
        let sequential = TreeShap::new(model).explain_matrix(&rows);
        for threads in [0, 1, 3] {
            let parallel = TreeShap::new(model).explain_matrix_parallel(&rows, threads);
            assert!(parallel == sequential, "{name}: {threads} threads differ");
        }
    }
}
