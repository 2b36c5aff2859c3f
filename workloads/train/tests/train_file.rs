//! `train` from a JSON-lines file without MongoDB (in-memory budget, nothing registered): the
//! results and the HTML report cover every model, the logistic-regression baseline included,
//! and every chart. Needs no services.

#![allow(clippy::unwrap_used)]

use std::io::Write;

use clap::Parser;
use shopstream_generator::{Generator, GeneratorConfig};
use shopstream_train::TrainArgs;

#[derive(Parser)]
struct Train {
    #[command(flatten)]
    a: TrainArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_run_reports_every_model_and_chart() {
    let dir = std::env::temp_dir()
        .join(format!("shopstream-train-file-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let sessions = dir.join("sessions.jsonl");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&sessions).unwrap());
        let generator =
            Generator::new(GeneratorConfig { seed: 21, users: 400, ..Default::default() }).unwrap();
        for g in generator.take(3_000) {
            writeln!(f, "{}", serde_json::to_string(&g.session).unwrap()).unwrap();
        }
    }
    let (report, results) = (dir.join("report.html"), dir.join("results.json"));
    let argv = [
        "train",
        "--input",
        sessions.to_str().unwrap(),
        "--models",
        "boostedTrees",
        "--curve-epsilons",
        "0.5",
        "--report",
        report.to_str().unwrap(),
        "--results-json",
        results.to_str().unwrap(),
    ];
    shopstream_train::run(Train::try_parse_from(argv).unwrap().a).await.unwrap();

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();
    let models = json["models"].as_array().unwrap();
    let names: Vec<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["gbdt", "dp_gbdt", "logistic_regression"]);
    for m in models.iter().filter(|m| m["epsilon"].is_null()) {
        let auc = m["rocAuc"].as_f64().unwrap();
        assert!(auc > 0.7, "{}: AUC {auc}", m["name"]);
        assert!(!m["topFeatures"].as_array().unwrap().is_empty());
    }

    let html = std::fs::read_to_string(&report).unwrap();
    // ROC, one SHAP chart per model, the privacy-utility curve: each an SVG with its title.
    assert_eq!(html.matches("<svg").count(), 5);
    assert_eq!(html.matches("</svg>").count(), 5);
    for title in [
        "ROC curves (test set)",
        "gbdt: mean |SHAP| (TreeSHAP, log-odds)",
        "dp_gbdt: mean |SHAP| (TreeSHAP, log-odds)",
        "logistic_regression: mean |SHAP| (exact linear SHAP, log-odds)",
        "Privacy-utility curve",
        "gbdt (non-private)",
    ] {
        assert!(html.contains(title), "report lacks {title}");
    }
    std::fs::remove_dir_all(dir).ok();
}
