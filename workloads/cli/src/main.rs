//! `shopstream`: one binary, a subcommand per workload. Run `shopstream --help`.

use clap::Parser;

/// jemalloc for every allocation of the process, librdkafka's included (the `unprefixed`
/// feature replaces `malloc`/`free`): with glibc's allocator the gate spent ~40 % of its CPU in
/// `malloc`/`free` (fastbin consolidation under the mix of small and ~2 KB record buffers);
/// with jemalloc its CPU per session halved (see docs/gate-and-sink.md, Benchmark).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shopstream_telemetry::init_tracing();
    shopstream::run(shopstream::Cli::parse()).await
}
