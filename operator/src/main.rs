//! `shopstream-operator`: `crd` prints the CRD; `run` runs the operator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use shopstream_operator::controller::{self, Context, Settings};
use shopstream_operator::leader::{LeaseSettings, run_with_election};
use shopstream_operator::metrics::{self, Metrics};

#[derive(Parser)]
#[command(name = "shopstream-operator", version, about = "Reconciles AnalyticsPipeline resources")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinition as YAML.
    Crd,
    /// Run the operator (uses KUBECONFIG or the in-cluster service account).
    Run(RunArgs),
}

/// Configuration of `shopstream-operator run`.
#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Watch only this namespace (all namespaces when absent).
    #[arg(long, env = "SHOPSTREAM_OPERATOR_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Address of the /metrics, /healthz and /readyz endpoint.
    #[arg(long, env = "SHOPSTREAM_OPERATOR_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Name of the leader-election Lease.
    #[arg(long, env = "SHOPSTREAM_OPERATOR_LEASE_NAME", default_value = "shopstream-operator")]
    lease_name: String,
    /// Namespace of the Lease (defaults to the watched namespace, else `default`).
    #[arg(long, env = "SHOPSTREAM_OPERATOR_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Identity of this replica (defaults to POD_NAME, else hostname-pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Lease duration in seconds.
    #[arg(long, env = "SHOPSTREAM_OPERATOR_LEASE_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(2..=600))]
    lease_seconds: u64,
    /// Lease renewal grace in seconds (must be below the duration).
    #[arg(long, env = "SHOPSTREAM_OPERATOR_LEASE_GRACE_SECONDS", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    lease_grace_seconds: u64,
    /// Requeue interval after a successful reconcile, in seconds.
    #[arg(long, env = "SHOPSTREAM_OPERATOR_REQUEUE_SECONDS",
          default_value_t = controller::DEFAULT_REQUEUE_SECS,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    requeue_seconds: u64,
    /// Coalesce bursts of watch events for this many milliseconds before reconciling.
    #[arg(long, env = "SHOPSTREAM_OPERATOR_DEBOUNCE_MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=60000))]
    debounce_ms: u64,
    /// Reconciles running at once (0 = unbounded).
    #[arg(long, env = "SHOPSTREAM_OPERATOR_CONCURRENCY",
          default_value_t = controller::DEFAULT_CONCURRENCY)]
    concurrency: u16,
    /// Apply an unchanged child again after this many seconds (corrects label and annotation
    /// drift; spec changes and deletions are corrected at once).
    #[arg(long, env = "SHOPSTREAM_OPERATOR_RESYNC_SECONDS",
          default_value_t = controller::DEFAULT_RESYNC_SECS,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    resync_seconds: u64,
    /// Print the bound metrics address on stdout (for tests and scripts).
    #[arg(long)]
    print_metrics_addr: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", shopstream_operator::crd_yaml()?);
            Ok(())
        }
        Command::Run(args) => run(args).await,
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        builder.init();
    } else {
        builder.json().init();
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_tracing();
    if args.lease_grace_seconds >= args.lease_seconds {
        anyhow::bail!(
            "--lease-grace-seconds ({}) must be below --lease-seconds ({})",
            args.lease_grace_seconds,
            args.lease_seconds
        );
    }
    let client = kube::Client::try_default()
        .await
        .context("cannot build a Kubernetes client (set KUBECONFIG or run in a cluster)")?;
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        format!("{host}-{}", std::process::id())
    });
    let metrics = Metrics::new().context("cannot register metrics")?;
    let (listener, addr) = metrics::bind(args.metrics_addr)
        .await
        .with_context(|| format!("cannot bind the metrics address {}", args.metrics_addr))?;
    if args.print_metrics_addr {
        println!("metrics {addr}");
    }
    tracing::info!(%addr, %identity, "serving metrics");
    let server = tokio::spawn(metrics::serve(listener, metrics.clone()));
    let settings = Settings {
        requeue: Duration::from_secs(args.requeue_seconds),
        debounce: Duration::from_millis(args.debounce_ms),
        concurrency: args.concurrency,
        resync: Duration::from_secs(args.resync_seconds),
        ..Settings::default()
    };
    let ctx = Arc::new(
        Context::new(client.clone(), metrics, &identity, settings)
            .await
            .context("cannot reach the Kubernetes API server")?,
    );
    match ctx.cronjob_api {
        Some(api) => {
            tracing::info!(api = api.api_version(), "CronJobs written in this API version")
        }
        None => tracing::warn!(
            "the API server serves no CronJob API: offline jobs will be reported as unsupported"
        ),
    }
    let lease = LeaseSettings {
        name: args.lease_name,
        namespace: args
            .lease_namespace
            .or_else(|| args.watch_namespace.clone())
            .unwrap_or_else(|| "default".into()),
        identity,
        duration_seconds: args.lease_seconds,
        grace_seconds: args.lease_grace_seconds,
    };
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let result = run_with_election(client, ctx, args.watch_namespace, lease, shutdown).await;
    server.abort();
    result.context("leader election failed")
}
