//! Sweep of the private random forest's shape (depth, trees, threshold grid) at epsilon 1 on
//! 50,000 generated sessions, three noise seeds per setting, against the non-private forest
//! `shopstream train` uses. The figures chose `Hyper::default().dp_forest` (docs/models.md).
//!
//! `cargo run --release -p shopstream-train --example dp_forest_sweep`
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use shopstream_generator::{Generator, GeneratorConfig};
use shopstream_train::models::Family;
use shopstream_train::pipeline::prepare;
use shopstream_trees::dp_forest::{DpForestConfig, fit_dp_forest};
use shopstream_trees::forest::{ForestConfig, fit_forest};
use shopstream_trees::metrics::roc_auc;

fn main() -> anyhow::Result<()> {
    let generator = Generator::new(GeneratorConfig { seed: 7, users: 5000, ..Default::default() })?;
    let all: Vec<_> = generator.take(50_000).map(|g| g.session).collect();
    let prep = prepare(&all, 0.2, 7)?;
    let e = prep.for_family(Family::RandomForest);
    let y = e.train.y.as_slice().ok_or_else(|| anyhow::anyhow!("labels not contiguous"))?;
    let yt = e.test.y.to_vec();
    let ranges = e.encoder.public_ranges();
    let rf = fit_forest(
        &e.train.x,
        y,
        &ForestConfig { n_trees: 100, max_depth: 12, ..Default::default() },
    )?;
    let base = roc_auc(&rf.predict_proba_matrix(&e.test.x), &yt);
    println!("plain {base:.4}");
    for depth in [4usize, 5, 6, 7, 8] {
        for n_trees in [25usize, 50, 100, 200, 400] {
            for grid in [8usize, 32] {
                let mut aucs = vec![];
                for seed in 0..3u64 {
                    let mut rng = ChaCha20Rng::seed_from_u64(seed);
                    let cfg = DpForestConfig {
                        n_trees,
                        max_depth: depth,
                        grid,
                        epsilon: 1.0,
                        delta: 1e-5,
                        ..Default::default()
                    };
                    let (m, _) = fit_dp_forest(&e.train.x, y, ranges, &cfg, &mut rng)?;
                    aucs.push(roc_auc(&m.predict_proba_matrix(&e.test.x), &yt));
                }
                let mean = aucs.iter().sum::<f64>() / 3.0;
                let min = aucs.iter().cloned().fold(1.0, f64::min);
                println!(
                    "depth {depth} trees {n_trees:>3} grid {grid:>2}: mean loss {:.4} worst {:.4}",
                    base - mean,
                    base - min
                );
            }
        }
    }
    Ok(())
}
