//! Benchmark of the stream processor (not a test): sessions per second on one core, side by
//! side with a Python port of the original per-message consumer loop
//! (`bench/processor/original_loop.py`) on the same records, in the same run.
//!
//! Run on one core: `taskset -c 1 cargo bench -p shopstream-processor --bench processor`
//! (with the stack's environment: `eval "$(dev/stack env)"`; options after `--`, e.g.
//! `-- --skip-kafka --skip-es`). Figures:
//!
//! 1. memory: records already in memory -> parse and validate -> sentiment -> documents ->
//!    `_bulk` body -> counting sink (all the per-session work of the real loop but Kafka);
//! 2. kafka: records from a Kafka topic through the real consume/commit loop -> counting sink
//!    (the loop's Kafka options come from the environment, as for `shopstream process`);
//! 3. es: records in memory -> the real Elasticsearch API (`SHOPSTREAM_ES_URL`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;
use shopstream_kafka::{Backoff, KafkaArgs, TopicSpec};
use shopstream_processor::bulk::Batch;
use shopstream_processor::bulk::ItemOutcome;
use shopstream_processor::documents::PotentialCustomerRule;
use shopstream_processor::engine::{Transformer, write_batch};
use shopstream_processor::mapping::Indexes;
use shopstream_processor::store::{DocStore, EsStore, StoreError};
use tokio_util::sync::CancellationToken;

/// Counts what it is given, stores nothing, and notes when the first and last writes came (the
/// Kafka figure's window: from the first batch written to the last). Clones share the counts,
/// so the copy handed to the loop can be read from outside.
#[derive(Debug, Clone, Default)]
struct CountingSink {
    counts: std::sync::Arc<std::sync::Mutex<Counts>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    docs: u64,
    bytes: u64,
    first_write: Option<Instant>,
    last_write: Option<Instant>,
}

impl CountingSink {
    fn counts(&self) -> Counts {
        *self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl DocStore for CountingSink {
    async fn write(&mut self, batch: &Batch) -> Result<Vec<ItemOutcome>, StoreError> {
        let now = Instant::now();
        let mut c = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        c.docs += batch.len() as u64;
        c.bytes += batch.body().len() as u64;
        c.first_write.get_or_insert(now);
        c.last_write = Some(now);
        Ok(vec![ItemOutcome::Ok; batch.len()])
    }
}

/// Processor benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Sessions for the Rust in-memory and Kafka runs.
    #[arg(long, default_value_t = 200_000)]
    sessions: usize,
    /// Sessions for the Python runs (it is much slower).
    #[arg(long, default_value_t = 20_000)]
    python_sessions: usize,
    /// Sessions for the real-Elasticsearch runs (the stand-in ingests about 2k docs/s).
    #[arg(long, default_value_t = 4_000)]
    es_sessions: usize,
    /// Sessions for the Python real-Elasticsearch run (one HTTP request per document).
    #[arg(long, default_value_t = 300)]
    python_es_sessions: usize,
    /// Records per batch.
    #[arg(long, default_value_t = 2_000)]
    batch: usize,
    /// Skip the Kafka runs.
    #[arg(long)]
    skip_kafka: bool,
    /// Skip the Elasticsearch runs.
    #[arg(long)]
    skip_es: bool,
    /// Working directory for the records file.
    #[arg(long, default_value = "/tmp/shopstream-processor-bench")]
    work_dir: PathBuf,
}

fn script() -> String {
    format!("{}/../../bench/processor/original_loop.py", env!("CARGO_MANIFEST_DIR"))
}

/// The Python loop's arguments for reading `limit` sessions from the records file.
fn from_file(file: &std::path::Path, limit: usize) -> Vec<String> {
    let file = file.display().to_string();
    ["--source", "memory", "--input", &file, "--limit", &limit.to_string()]
        .map(String::from)
        .to_vec()
}

fn run_python(extra: &[String]) -> anyhow::Result<Value> {
    let out = Command::new(shopstream_test_support::python()).arg(script()).args(extra).output()?;
    if !out.status.success() {
        anyhow::bail!("python baseline failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

async fn rust_memory<S: DocStore>(
    records: &[Vec<u8>],
    batch_size: usize,
    sink: &mut S,
    cache: usize,
    prefix: &str,
) -> anyhow::Result<(f64, f64, u64, usize)> {
    let mut t =
        Transformer::new(Indexes::with_prefix(prefix), PotentialCustomerRule::default(), cache);
    let cancel = CancellationToken::new();
    let backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    let mut batch = Batch::with_capacity(batch_size * 2048);
    let mut dead = Vec::new();
    let mut docs = 0;
    let mut slow = 0;
    let start = Instant::now();
    let cpu = thread_cpu();
    for chunk in records.chunks(batch_size) {
        batch.clear();
        dead.clear();
        slow += t
            .transform(chunk.iter().map(|r| Some(r.as_slice())), &mut batch, &mut dead)
            .slow_parses;
        let report = write_batch(sink, &batch, backoff.clone(), &cancel, |_| {}, || {})
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        docs += report.stored;
        anyhow::ensure!(dead.is_empty() && report.rejected.is_empty(), "unexpected dead letters");
    }
    Ok((start.elapsed().as_secs_f64(), thread_cpu() - cpu, docs, slow))
}

/// CPU time of the calling thread in seconds (from the scheduler, nanosecond resolution), so
/// that rates stay meaningful while other processes share the core.
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|n| n.parse::<f64>().ok()))
        .map_or(f64::NAN, |ns| ns / 1e9)
}

/// CPU time of the whole process (all threads, librdkafka's included) in seconds.
fn process_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return f64::NAN };
    // Fields after the command name (which is in parentheses): utime is the 14th field overall.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return f64::NAN };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(11) + ticks(12)) / 100.0
}

/// The load averages (1, 5, 15 minutes), to print beside the figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn rate(n: usize, secs: f64) -> f64 {
    n as f64 / secs
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.work_dir)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!(
        "processor benchmark: {} sessions, batch {}, cores available to this process: {cores}",
        args.sessions, args.batch
    );
    if cores != 1 {
        println!("  (not pinned: run under `taskset -c 1` for the one-core figure)");
    }
    println!("load average at start: {}", load_average());

    let mut g = shopstream_generator::Generator::new(shopstream_generator::GeneratorConfig {
        seed: 42,
        users: 5_000,
        ..Default::default()
    })?;
    let records: Vec<Vec<u8>> =
        (0..args.sessions).map(|_| g.next_session().session.to_json().into_bytes()).collect();
    let file = args.work_dir.join("sessions.jsonl");
    let mut text = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
    for r in &records {
        text.extend_from_slice(r);
        text.push(b'\n');
    }
    std::fs::write(&file, &text)?;
    // (run, sessions/s wall clock, sessions per CPU-second of the working thread, note)
    let mut rows: Vec<(String, f64, f64, String)> = Vec::new();

    // 1. memory -> counting sink.
    let mut warm = CountingSink::default();
    rust_memory(&records[..records.len().min(20_000)], args.batch, &mut warm, 65_536, "bench-")
        .await?;
    let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
    let (mut docs, mut slow, mut bytes) = (0, 0, 0);
    for _ in 0..3 {
        let mut sink = CountingSink::default();
        let (secs, cpu, d, sl) =
            rust_memory(&records, args.batch, &mut sink, 65_536, "bench-").await?;
        best = best.min(secs);
        best_cpu = best_cpu.min(cpu);
        (docs, slow, bytes) = (d, sl, sink.counts().bytes);
    }
    let rust_mem = rate(records.len(), best);
    let rust_mem_cpu = rate(records.len(), best_cpu);
    rows.push((
        "rust memory->count (sentiment cache on)".into(),
        rust_mem,
        rust_mem_cpu,
        format!(
            "{docs} docs, {:.0} MB of _bulk body, {slow} slow-path parses, best of 3, load {}",
            bytes as f64 / 1e6,
            load_average()
        ),
    ));
    let mut sink = CountingSink::default();
    let (secs, cpu, _, _) = rust_memory(&records, args.batch, &mut sink, 0, "bench-").await?;
    let rust_mem_nocache = rate(records.len(), secs);
    let rust_mem_nocache_cpu = rate(records.len(), cpu);
    rows.push((
        "rust memory->count (no sentiment cache)".into(),
        rust_mem_nocache,
        rust_mem_nocache_cpu,
        format!("every review scored, load {}", load_average()),
    ));

    let py = run_python(&from_file(&file, args.python_sessions))?;
    let py_mem = py["sessions_per_s"].as_f64().unwrap_or(0.0);
    let py_mem_cpu = py["sessions_per_cpu_s"].as_f64().unwrap_or(0.0);
    rows.push((
        "python original loop memory->count".into(),
        py_mem,
        py_mem_cpu,
        format!("{} sessions", py["sessions"]),
    ));

    // 2. kafka -> counting sink.
    let mut kafka_pair = None;
    if !args.skip_kafka {
        let bootstrap = std::env::var("SHOPSTREAM_KAFKA").map_err(|_| {
            anyhow::anyhow!(
                "SHOPSTREAM_KAFKA is not set: run `eval \"$(dev/stack env)\"` after `dev/stack up`"
            )
        })?;
        let kafka = KafkaArgs::for_bootstrap(&bootstrap);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let topic = format!("bench-{}.valid", &id[..8]);
        kafka.ensure_topics(&[TopicSpec::new(&topic, 3)]).await?;
        let producer = kafka.producer("processor-bench")?;
        for chunk in records.chunks(10_000) {
            let topic = topic.as_str();
            let sends = chunk.iter().enumerate().map(|(i, r)| {
                let key = format!("k{i}");
                let producer = &producer;
                async move {
                    producer
                        .send(
                            rdkafka::producer::FutureRecord::to(topic)
                                .key(key.as_bytes())
                                .payload(r.as_slice()),
                            Duration::from_secs(60),
                        )
                        .await
                        .map_err(|(e, _)| e)
                }
            });
            for r in futures::future::join_all(sends).await {
                r?;
            }
        }
        let mut pa: shopstream_processor::ProcessArgs = shopstream_test_support::parse_args(&[])?;
        // Kafka options (`SHOPSTREAM_KAFKA_OPTIONS`, `SHOPSTREAM_KAFKA_COMPRESSION`) come from
        // the environment like for `shopstream process`; only the bootstrap is the stack's.
        pa.kafka.bootstrap = bootstrap.clone();
        pa.input_topic = topic.clone();
        pa.dead_letter_topic = format!("{topic}.dead");
        pa.group = format!("bench-{}", &id[..8]);
        pa.metrics_addr = "127.0.0.1:0".parse()?;
        pa.batch_size = args.batch;
        pa.batch_wait_ms = 50;
        let cancel = CancellationToken::new();
        let target = records.len() as u64;
        let cpu0 = process_cpu();
        let sink = CountingSink::default();
        let task =
            tokio::spawn(shopstream_processor::run_with_sink(pa, sink.clone(), cancel.clone()));
        // Stop once every record went through: the loop reports its totals when it returns.
        let watcher = {
            let bootstrap = bootstrap.clone();
            let group = format!("bench-{}", &id[..8]);
            let topic = topic.clone();
            tokio::task::spawn_blocking(move || {
                use rdkafka::consumer::{BaseConsumer, Consumer};
                let k = KafkaArgs::for_bootstrap(bootstrap);
                let c: BaseConsumer = k
                    .client_config("bench-watch")
                    .expect("kafka config")
                    .set("group.id", &group)
                    .create()
                    .expect("consumer");
                loop {
                    std::thread::sleep(Duration::from_millis(200));
                    let mut tpl = rdkafka::TopicPartitionList::new();
                    for p in 0..3 {
                        tpl.add_partition(&topic, p);
                    }
                    if let Ok(co) = c.committed_offsets(tpl, Duration::from_secs(5)) {
                        let total: i64 = co
                            .elements()
                            .iter()
                            .map(|e| match e.offset() {
                                rdkafka::Offset::Offset(o) => o,
                                _ => 0,
                            })
                            .sum();
                        if total as u64 >= target {
                            return;
                        }
                    }
                }
            })
        };
        watcher.await?;
        cancel.cancel();
        task.await??;
        let counts = sink.counts();
        let secs = match (counts.first_write, counts.last_write) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => f64::NAN,
        };
        let rust_kafka = rate(records.len(), secs);
        let rust_kafka_cpu = rate(records.len(), process_cpu() - cpu0);
        rows.push((
            "rust kafka->count (consume, transform, commit)".into(),
            rust_kafka,
            rust_kafka_cpu,
            format!("{} records, {} docs; cpu = whole process", records.len(), counts.docs),
        ));
        let py = run_python(&[
            "--source".into(),
            "kafka".into(),
            "--topic".into(),
            topic.clone(),
            "--group".into(),
            format!("bench-py-{}", &id[..8]),
            "--bootstrap".into(),
            bootstrap.clone(),
            "--limit".into(),
            args.python_sessions.to_string(),
        ])?;
        let py_kafka = py["sessions_per_s"].as_f64().unwrap_or(0.0);
        rows.push((
            "python original loop kafka->count".into(),
            py_kafka,
            py["sessions_per_cpu_s"].as_f64().unwrap_or(0.0),
            format!("{} sessions; cpu = whole process", py["sessions"]),
        ));
        kafka_pair = Some((rust_kafka, py_kafka));
    }

    // 3. real Elasticsearch.
    let mut es_pair = None;
    if !args.skip_es {
        let url = std::env::var("SHOPSTREAM_ES_URL").map_err(|_| {
            anyhow::anyhow!(
                "SHOPSTREAM_ES_URL is not set: run `eval \"$(dev/stack env)\"` after `dev/stack up`"
            )
        })?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("bench-{}-", &id[..8]);
        let mut es = EsStore::new(
            &shopstream_clients::EsArgs::for_url(url.clone()),
            Duration::from_secs(60),
        )?;
        es.ensure_indexes(&Indexes::with_prefix(&prefix)).await?;
        let n = args.es_sessions.min(records.len());
        let (secs, cpu, docs, _) =
            rust_memory(&records[..n], args.batch, &mut es, 65_536, &prefix).await?;
        let rust_es = rate(n, secs);
        rows.push((
            "rust memory->elasticsearch (_bulk)".into(),
            rust_es,
            rate(n, cpu),
            format!("{docs} docs, {:.0} docs/s", docs as f64 / secs),
        ));
        let pyprefix = format!("bench-py-{}-", &id[..8]);
        let py = run_python(
            &[
                from_file(&file, args.python_es_sessions),
                vec![
                    "--sink".into(),
                    "es".into(),
                    "--es-url".into(),
                    url.clone(),
                    "--prefix".into(),
                    pyprefix.clone(),
                ],
            ]
            .concat(),
        )?;
        let py_es = py["sessions_per_s"].as_f64().unwrap_or(0.0);
        rows.push((
            "python original loop memory->elasticsearch (index per doc)".into(),
            py_es,
            py["sessions_per_cpu_s"].as_f64().unwrap_or(0.0),
            format!("{} sessions, {} docs", py["sessions"], py["docs"]),
        ));
        es_pair = Some((rust_es, py_es));
        for p in [&prefix, &pyprefix] {
            for ix in ["sessions", "products"] {
                for path in [format!("/{p}{ix}"), format!("/_index_template/{p}{ix}")] {
                    let _ = es
                        .client()
                        .send(
                            elasticsearch::http::Method::Delete,
                            &path,
                            elasticsearch::http::headers::HeaderMap::new(),
                            None::<&()>,
                            None::<&[u8]>,
                            None,
                        )
                        .await;
                }
            }
        }
    }

    println!();
    println!("load average at end: {}", load_average());
    println!("{:<62} {:>12} {:>14}  notes", "run", "sessions/s", "per CPU-s");
    for (name, r, c, note) in &rows {
        println!("{name:<62} {r:>12.0} {c:>14.0}  {note}");
    }
    println!();
    println!("ratios rust/python (wall clock; per CPU-second):");
    println!(
        "  memory->count:               {:>7.1}x; {:>7.1}x",
        rust_mem / py_mem,
        rust_mem_cpu / py_mem_cpu
    );
    println!(
        "  memory->count, no cache:     {:>7.1}x; {:>7.1}x",
        rust_mem_nocache / py_mem,
        rust_mem_nocache_cpu / py_mem_cpu
    );
    if let Some((r, p)) = kafka_pair {
        println!("  kafka->count:                {:>7.1}x", r / p);
    }
    if let Some((r, p)) = es_pair {
        println!("  elasticsearch:               {:>7.1}x", r / p);
    }
    println!(
        "target >= 100,000 sessions/s on one core (memory->count, cache on): wall {} ({rust_mem:.0}), per CPU-second {} ({rust_mem_cpu:.0})",
        if rust_mem >= 100_000.0 { "MET" } else { "MISSED" },
        if rust_mem_cpu >= 100_000.0 { "MET" } else { "MISSED" },
    );
    Ok(())
}
