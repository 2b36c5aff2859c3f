//! `shopstream-process`: the processor alone (the same code as `shopstream process`), used by
//! the crash tests to run and kill the real binary.

use clap::Parser;

/// The stream processor: valid sessions to Elasticsearch.
#[derive(Debug, Parser)]
#[command(name = "shopstream-process", version, about)]
struct Cli {
    #[command(flatten)]
    args: shopstream_processor::ProcessArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shopstream_telemetry::init_tracing();
    shopstream_processor::run(Cli::parse().args).await
}
