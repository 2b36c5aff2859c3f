//! `shopstream generate`: synthetic sessions into Kafka or a JSON-lines file.

use shopstream_contract as contract;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::NaiveDateTime;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressStyle};
use shopstream_generator::{Generator, GeneratorConfig};
use shopstream_kafka::rdkafka::error::{KafkaError, RDKafkaErrorCode};
use shopstream_kafka::rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use shopstream_kafka::{KafkaArgs, TopicSpec};
use shopstream_schema::TIMESTAMP_FORMAT;
use shopstream_telemetry::prometheus::{IntCounter, Registry};
use shopstream_telemetry::{Health, shutdown_signal};

/// Most deliveries awaited at once before the generator waits for the broker.
const MAX_IN_FLIGHT: usize = 100_000;

/// Settings of `shopstream generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Seed of every random choice (same seed, same sessions).
    #[arg(long, env = contract::env::SEED, default_value_t = 1)]
    pub seed: u64,
    /// Number of distinct users.
    #[arg(long, env = "SHOPSTREAM_USERS", default_value_t = 5_000)]
    pub users: usize,
    /// Sessions to generate; without it the generator runs until stopped.
    #[arg(long, env = "SHOPSTREAM_COUNT")]
    pub count: Option<u64>,
    /// Sessions per second; without it, as fast as the output takes them.
    #[arg(long, env = contract::env::RATE)]
    pub rate: Option<f64>,
    /// Time of the first possible session (YYYY-MM-DDTHH:MM:SS).
    #[arg(long, env = "SHOPSTREAM_START", default_value = "2026-11-01T00:00:00")]
    pub start: String,
    /// Write JSON lines to this file (`-` for stdout) instead of Kafka.
    #[arg(long, conflicts_with = "topic")]
    pub output: Option<PathBuf>,
    /// Kafka topic for the sessions (keyed by userId).
    #[arg(long, env = contract::env::TOPIC_RAW)]
    pub topic: Option<String>,
    /// Create the topic with this many partitions when it does not exist.
    #[arg(long, env = "SHOPSTREAM_CREATE_TOPIC_PARTITIONS")]
    pub create_topic_partitions: Option<i32>,
    /// Also write `{"sessionId", "purchaseProbability"}` lines: the hidden truth, for evaluation.
    #[arg(long)]
    pub truth_file: Option<PathBuf>,
    /// Address of the metrics and health endpoints (e.g. 0.0.0.0:9100).
    #[arg(long, env = contract::env::METRICS_ADDR)]
    pub metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// Checked settings.
struct Plan {
    generator: Generator,
    count: Option<u64>,
    rate: Option<f64>,
}

impl GenerateArgs {
    fn plan(&self) -> anyhow::Result<Plan> {
        if self.output.is_none() && self.topic.is_none() {
            bail!("say where the sessions go: --output FILE (or -) or --topic TOPIC");
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            bail!("--rate must be a positive number of sessions per second, got {rate}");
        }
        if self.create_topic_partitions.is_some_and(|p| p < 1) {
            bail!("--create-topic-partitions must be at least 1");
        }
        let start = NaiveDateTime::parse_from_str(&self.start, TIMESTAMP_FORMAT)
            .with_context(|| format!("--start {:?} is not YYYY-MM-DDTHH:MM:SS", self.start))?;
        let config =
            GeneratorConfig { seed: self.seed, users: self.users, start, ..Default::default() };
        // Built here so a bad config is reported before any output is opened.
        let generator = Generator::new(config).context("generator settings")?;
        Ok(Plan { generator, count: self.count, rate: self.rate })
    }
}

struct Counters {
    generated: IntCounter,
    delivered: IntCounter,
}

impl Counters {
    fn new(registry: &Registry) -> anyhow::Result<Self> {
        let generated =
            IntCounter::new("shopstream_generator_sessions_total", "Sessions generated")?;
        let delivered = IntCounter::new(
            "shopstream_generator_sessions_delivered_total",
            "Sessions acknowledged by the output (broker or file)",
        )?;
        registry.register(Box::new(generated.clone()))?;
        registry.register(Box::new(delivered.clone()))?;
        Ok(Counters { generated, delivered })
    }
}

enum Output {
    Lines(BufWriter<Box<dyn Write + Send>>),
    Kafka { producer: FutureProducer, topic: String, in_flight: FuturesUnordered<DeliveryFuture> },
}

impl Output {
    async fn open(args: &GenerateArgs) -> anyhow::Result<Output> {
        if let Some(path) = &args.output {
            let sink: Box<dyn Write + Send> = if path.as_os_str() == "-" {
                Box::new(std::io::stdout())
            } else {
                Box::new(
                    File::create(path).with_context(|| format!("creating {}", path.display()))?,
                )
            };
            return Ok(Output::Lines(BufWriter::with_capacity(1 << 20, sink)));
        }
        let topic = args.topic.clone().context("no topic")?;
        if let Some(partitions) = args.create_topic_partitions {
            args.kafka.ensure_topics(&[TopicSpec::new(&topic, partitions)]).await?;
        }
        let producer = args.kafka.producer("shopstream-generator")?;
        Ok(Output::Kafka { producer, topic, in_flight: FuturesUnordered::new() })
    }

    /// Sends one record; waits for the broker when the local queue or window is full.
    async fn send(
        &mut self,
        key: &str,
        payload: &str,
        delivered: &IntCounter,
    ) -> anyhow::Result<()> {
        match self {
            Output::Lines(w) => {
                w.write_all(payload.as_bytes())?;
                w.write_all(b"\n")?;
                delivered.inc();
            }
            Output::Kafka { producer, topic, in_flight } => {
                while in_flight.len() >= MAX_IN_FLIGHT {
                    settle_one(in_flight, delivered).await?;
                }
                loop {
                    let record = FutureRecord::to(topic.as_str()).key(key).payload(payload);
                    match producer.send_result(record) {
                        Ok(delivery) => {
                            in_flight.push(delivery);
                            break;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                            if in_flight.is_empty() {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            } else {
                                settle_one(in_flight, delivered).await?;
                            }
                        }
                        Err((e, _)) => bail!("producing to {topic}: {e}"),
                    }
                }
            }
        }
        Ok(())
    }

    /// Waits until everything sent is acknowledged.
    async fn finish(self, delivered: &IntCounter) -> anyhow::Result<()> {
        match self {
            Output::Lines(mut w) => w.flush()?,
            Output::Kafka { mut in_flight, .. } => {
                while !in_flight.is_empty() {
                    settle_one(&mut in_flight, delivered).await?;
                }
            }
        }
        Ok(())
    }
}

async fn settle_one(
    in_flight: &mut FuturesUnordered<DeliveryFuture>,
    delivered: &IntCounter,
) -> anyhow::Result<()> {
    match in_flight.next().await {
        Some(Ok(Ok(_))) => {
            delivered.inc();
            Ok(())
        }
        Some(Ok(Err((e, _)))) => bail!("the broker did not take a session: {e}"),
        Some(Err(_)) => bail!("the producer was dropped before delivery"),
        None => Ok(()),
    }
}

/// Runs the generator until `--count` sessions were delivered or a shutdown signal arrives.
pub async fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let mut plan = args.plan()?;
    let registry = Registry::new();
    let counters = Counters::new(&registry)?;
    let health = Health::new();
    if let Some(addr) = args.metrics_addr {
        shopstream_telemetry::serve(addr, registry.clone(), health.clone()).await?;
    }
    let mut output = Output::open(&args).await?;
    let mut truth = match &args.truth_file {
        Some(path) => Some(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    health.set_ready(true);

    let progress = progress_bar(plan.count);
    let started = Instant::now();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let mut produced: u64 = 0;
    let mut last_log = Instant::now();
    while plan.count.is_none_or(|c| produced < c) {
        if let Some(rate) = plan.rate {
            let due = Duration::from_secs_f64(produced as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed())
                && wait > Duration::from_millis(2)
            {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {},
                    () = &mut shutdown => break,
                }
            }
        } else if produced.is_multiple_of(4096) {
            // Stay responsive to signals when running flat out.
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = std::future::ready(()) => {},
            }
        }
        let g = plan.generator.next_session();
        let payload = g.session.to_json();
        output.send(&g.session.user_id, &payload, &counters.delivered).await?;
        if let Some(t) = truth.as_mut() {
            writeln!(
                t,
                "{}",
                serde_json::json!({"sessionId": g.session.session_id, "purchaseProbability": g.purchase_probability})
            )?;
        }
        counters.generated.inc();
        produced += 1;
        if let Some(p) = &progress {
            p.inc(1);
        } else if last_log.elapsed() >= Duration::from_secs(10) {
            tracing::info!(generated = produced, delivered = counters.delivered.get(), "progress");
            last_log = Instant::now();
        }
    }
    output.finish(&counters.delivered).await?;
    if let Some(mut t) = truth {
        t.flush()?;
    }
    if let Some(p) = progress {
        p.finish();
    }
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        sessions = produced,
        delivered = counters.delivered.get(),
        seconds = secs,
        per_second = produced as f64 / secs.max(1e-9),
        "generator finished"
    );
    Ok(())
}

fn progress_bar(count: Option<u64>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match count {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {pos}/{len} sessions [{elapsed_precise}] {per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GenerateArgs,
    }

    fn args(extra: &[&str]) -> GenerateArgs {
        let mut argv = vec!["generate"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("parse").args
    }

    #[test]
    fn settings_are_checked_at_start_up() {
        let err = |a: &[&str]| args(a).plan().err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(err(&[]).contains("--output"));
        assert!(err(&["--output", "-", "--rate", "0"]).contains("--rate"));
        assert!(err(&["--output", "-", "--start", "yesterday"]).contains("--start"));
        assert!(err(&["--output", "-", "--users", "0"]).contains("users"));
        assert!(args(&["--output", "-", "--count", "5"]).plan().is_ok());
        // The operator renders the generator Deployment with `--kafka-topic`.
        assert_eq!(args(&["--topic", "t"]).topic.as_deref(), Some("t"));
    }

    #[tokio::test]
    async fn writes_valid_json_lines_and_the_truth_beside_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("s.jsonl");
        let truth = dir.path().join("t.jsonl");
        let a = args(&[
            "--output",
            out.to_str().expect("utf-8"),
            "--truth-file",
            truth.to_str().expect("utf-8"),
            "--count",
            "250",
            "--seed",
            "3",
        ]);
        run(a).await.expect("run");
        let lines = std::fs::read_to_string(&out).expect("read");
        let truths = std::fs::read_to_string(&truth).expect("read");
        assert_eq!(lines.lines().count(), 250);
        for (line, t) in lines.lines().zip(truths.lines()) {
            let s = shopstream_schema::parse_session(line.as_bytes()).expect("valid record");
            let t: serde_json::Value = serde_json::from_str(t).expect("json");
            assert_eq!(t["sessionId"], s.session_id.as_str());
            let p = t["purchaseProbability"].as_f64().expect("number");
            assert!((p - shopstream_generator::purchase_propensity(&s)).abs() < 1e-12);
        }
    }
}
