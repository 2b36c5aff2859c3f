//! `shopstream train`, `shopstream predict` and `shopstream explain`.
//!
//! A training run: plan the models and their privacy cost from the configuration alone; charge
//! the pipeline's privacy budget for every private model at once (refusing the whole run
//! before any data is read if it does not fit); load sessions (MongoDB `user_sessions` or a
//! JSON-lines file); split by user; fit the feature transform on the training side; train,
//! evaluate on the test side, explain (TreeSHAP / KernelSHAP / exact linear SHAP); register
//! every model; print a results table and write an HTML report. Runs that train non-private
//! models also train a logistic-regression baseline ([`logistic`]).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod data;
pub mod evaluation;
pub mod logistic;
pub mod models;
pub mod pipeline;
pub mod report;

mod cli;

pub use cli::{
    ExplainArgs, ModelInput, MongoArgs, PredictArgs, PrivacyMode, TrainArgs, parse_family,
    read_similarity,
};

/// `shopstream train`.
pub async fn run(args: TrainArgs) -> anyhow::Result<()> {
    cli::run_train(args).await
}

/// `shopstream predict`.
pub async fn run_predict(args: PredictArgs) -> anyhow::Result<()> {
    cli::run_predict(args).await
}

/// `shopstream explain`.
pub async fn run_explain(args: ExplainArgs) -> anyhow::Result<()> {
    cli::run_explain(args).await
}
