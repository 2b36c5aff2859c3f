//! Utility of the private models against their non-private versions and against the ceiling
//! (the AUC of the generator's true purchase probability), on generated sessions.
//!
//! `cargo bench -p shopstream-train --bench dp_utility -- [sessions] [epsilon] [families] [runs]`
//! (defaults: 50000 sessions, epsilon 1, delta 1e-5, all families, 3 private runs per family,
//! each with fresh noise; the mean and the worst loss are printed).

use std::collections::HashMap;

use shopstream_generator::{Generator, GeneratorConfig};
use shopstream_privacy::DpRng;
use shopstream_train::models::{Family, Hyper, Job};
use shopstream_train::pipeline::{ShapSettings, prepare, train_and_evaluate};
use shopstream_trees::metrics::roc_auc;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let sessions: usize = args.first().map_or(Ok(50_000), |s| s.parse())?;
    let epsilon: f64 = args.get(1).map_or(Ok(1.0), |s| s.parse())?;
    let families: Vec<Family> = match args.get(2) {
        Some(s) => s
            .split(',')
            .map(|f| match f {
                "rf" | "random_forest" => Ok(Family::RandomForest),
                "gbdt" => Ok(Family::Gbdt),
                "mlp" => Ok(Family::Mlp),
                other => Err(anyhow::anyhow!("unknown family {other}")),
            })
            .collect::<Result<_, _>>()?,
        None => Family::PRIVATE.to_vec(),
    };
    let runs: usize = args.get(3).map_or(Ok(3), |s| s.parse())?;
    anyhow::ensure!(runs >= 1, "runs must be at least 1");
    let delta = 1e-5;
    let users = (sessions / 10).max(10);
    let generator = Generator::new(GeneratorConfig { seed: 7, users, ..Default::default() })?;
    let mut truth = HashMap::new();
    let mut all = Vec::with_capacity(sessions);
    for g in generator.take(sessions) {
        truth.insert(g.session.session_id.clone(), g.purchase_probability);
        all.push(g.session);
    }
    let prep = prepare(&all, 0.2, 7)?;
    let labels = prep.test().y.to_vec();
    let true_p: Vec<f64> = prep.test().session_ids.iter().map(|id| truth[id]).collect();
    let ceiling = roc_auc(&true_p, &labels);
    println!(
        "sessions {sessions} (users {users}), train {} test {}, positive rate {:.3}",
        prep.train().len(),
        prep.test().len(),
        prep.train().positive_rate()
    );
    println!("ceiling: AUC of the true purchase probability on the test set = {ceiling:.4}");
    let hyper = Hyper::default();
    let shap = ShapSettings { tree_rows: 1, mlp_rows: 1, background_rows: 5, nsamples: 64 };
    let mut rng = DpRng::from_os();
    println!("{:<18} {:>8} {:>8} {:>10} {:>9}", "model", "epsilon", "AUC", "vs-plain", "train-s");
    for f in families {
        let plain = train_and_evaluate(&Job::plain(f), &hyper, &prep, &mut rng, &shap)?;
        println!(
            "{:<18} {:>8} {:>8.4} {:>10} {:>9.1}   (ceiling - AUC = {:.4})",
            plain.job.name(),
            "-",
            plain.metrics.roc_auc,
            "",
            plain.train_seconds,
            ceiling - plain.metrics.roc_auc
        );
        let job = Job::private(f, epsilon, delta, &hyper)?;
        let (cost, _) = job.cost()?.ok_or_else(|| anyhow::anyhow!("private job without cost"))?;
        let mut losses = Vec::with_capacity(runs);
        for _ in 0..runs {
            let dp = train_and_evaluate(&job, &hyper, &prep, &mut rng, &shap)?;
            losses.push(plain.metrics.roc_auc - dp.metrics.roc_auc);
            println!(
                "{:<18} {:>8.3} {:>8.4} {:>+10.4} {:>9.1}",
                dp.job.name(),
                cost.epsilon,
                dp.metrics.roc_auc,
                dp.metrics.roc_auc - plain.metrics.roc_auc,
                dp.train_seconds
            );
        }
        let mean = losses.iter().sum::<f64>() / runs as f64;
        let worst = losses.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "{:<18} loss vs plain over {runs} runs: mean {mean:.4}, worst {worst:.4} (limit 0.05)",
            job.name()
        );
    }
    Ok(())
}
