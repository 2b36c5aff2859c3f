//! The `shopstream` command line: one binary, a subcommand per workload, so one container image
//! serves every Deployment and CronJob the operator renders. [`Cli`] is the parser the binary
//! runs; the operator's contract test parses every rendered container with it.

pub mod generate;
pub mod summarize;

use clap::{Parser, Subcommand};

/// Real-time and offline analytics of a furniture shop.
#[derive(Debug, Parser)]
#[command(name = "shopstream", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    /// The workload to run.
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate synthetic shop sessions into Kafka or a JSON-lines file.
    Generate(generate::GenerateArgs),
    /// Read sessions back from a Kafka topic and print a summary.
    Summarize(summarize::SummarizeArgs),
    /// Security gate: raw sessions -> Redis checks -> valid / suspicious / dead-letter topics.
    Gate(shopstream_gate::GateArgs),
    /// Valid sessions -> MongoDB `user_sessions` (flattened, pseudonymised, upserted).
    Sink(shopstream_sink::SinkArgs),
    /// Stream processor: valid sessions to Elasticsearch summaries, product rows and sentiment.
    Process(shopstream_processor::ProcessArgs),
    /// Similar users (CronJob): MinHash LSH over behaviour tokens -> MongoDB + Elasticsearch.
    Similarity(shopstream_similarity::SimilarityArgs),
    /// Print a user's most similar users (from MongoDB, or a file with --from).
    Similar(shopstream_similarity::SimilarArgs),
    /// Train the purchase models (CronJob): RF, boosted trees, MLP, non-private and DP; registry + report.
    Train(shopstream_train::TrainArgs),
    /// Score sessions with a registered model.
    Predict(shopstream_train::PredictArgs),
    /// Explain sessions (SHAP) with a registered model.
    Explain(shopstream_train::ExplainArgs),
}

/// Runs the parsed command to its end.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Generate(args) => generate::run(args).await,
        Command::Summarize(args) => summarize::run(args).await,
        Command::Gate(args) => shopstream_gate::run(args).await,
        Command::Sink(args) => shopstream_sink::run(args).await,
        Command::Process(args) => shopstream_processor::run(args).await,
        Command::Similarity(args) => shopstream_similarity::run_similarity(args).await,
        Command::Similar(args) => shopstream_similarity::run_similar(args).await,
        Command::Train(args) => shopstream_train::run(args).await,
        Command::Predict(args) => shopstream_train::run_predict(args).await,
        Command::Explain(args) => shopstream_train::run_explain(args).await,
    }
}
