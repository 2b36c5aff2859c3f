//! Gate throughput on ONE core against the real broker and Redis, side by side with the
//! faithful Python port of the original per-message loop (`bench/gate/python_gate.py`) in the
//! same run. Not a test: it prints figures and ratios.
//!
//! ```text
//! eval "$(dev/stack env)"
//! cargo bench -p shopstream-gate --bench gate_throughput
//! ```
//!
//! The binary re-executes itself under `taskset -c 1`, so the Rust gate (its async thread and
//! librdkafka's threads) and the Python loop each get one and the same core. For the duration
//! of the run the broker and Redis (every thread of the local `tansu` and `redis-server`
//! processes) are pinned to the other cores and given back their affinity afterwards, so that
//! "one core" means a core of the gate's own, as in production where the services run on
//! other machines; without that the scheduler moves broker threads onto the gate's core
//! (`GATE_BENCH_PIN_SERVICES=0` leaves them alone).
//!
//! It runs `GATE_BENCH_ROUNDS` (default 3) paired rounds on one published topic: in each, the
//! Rust gate, then the Python loop, each with a consumer group, output topics and Redis keys
//! of its own. Every round's figures and ratio are printed, then the median and the lowest;
//! a target counts as met only if it was met in every round. On a shared VM either side varies
//! by ±15 % from run to run, so one pair of runs is a poor estimate in either direction.
//!
//! Two figures per side: the wall-clock rate (records / seconds from the end of the first batch
//! to the last record) and the rate per CPU-second (records / CPU time of the process, all its
//! threads, over the same window: `/proc/self/stat` for Rust, `getrusage` for Python). On a
//! shared, loaded machine the wall-clock rate shows how much of the core the gate got; the
//! per-CPU-second rate is what the gate would do with the core to itself. Each Rust round also
//! prints the Redis script's server time per session (`INFO commandstats`) and the services'
//! CPU over its window. Knobs: `GATE_BENCH_RECORDS` (Rust, default 150000),
//! `GATE_BENCH_PY_RECORDS` (Python, default 15000), `GATE_BENCH_ROUNDS` (default 3),
//! `GATE_BENCH_CPU` (default 1), `GATE_BENCH_MAX_BATCH` (the gate's `--max-batch`, default
//! 5000), `GATE_BENCH_PIN_SERVICES` (default 1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::Registry;
use rdkafka::producer::FutureProducer;
use shopstream_gate::{Gate, GateArgs, Totals};
use shopstream_generator::{Generator, GeneratorConfig};
use shopstream_kafka::produce::{self, RecordRef};
use shopstream_kafka::{KafkaArgs, TopicSpec};
use tokio_util::sync::CancellationToken;

/// The same allocator as the `shopstream` binary (see `workloads/cli/src/main.rs`).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `eval \"$(dev/stack env)\"` after `dev/stack up`")
    })
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let cpu = std::env::var("GATE_BENCH_CPU").unwrap_or_else(|_| "1".into());
    if std::env::var("GATE_BENCH_PINNED").is_err() {
        let exe = std::env::current_exe().unwrap();
        let status = Command::new("taskset")
            .args(["-c", &cpu])
            .arg(exe)
            .env("GATE_BENCH_PINNED", "1")
            .status()
            .expect("taskset (util-linux) is needed to pin the benchmark to one core");
        std::process::exit(status.code().unwrap_or(1));
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(bench(&cpu));
}

/// CPU time (user + system, all threads) this process has used so far, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    proc_cpu_seconds("self").expect("/proc/self/stat")
}

/// Minor page faults (all threads) of this process so far, from `/proc/self/stat`: each is a
/// page the allocator or the kernel touched for the first time (zeroed by the kernel).
fn minor_faults() -> u64 {
    proc_stat_fields("self").and_then(|f| f.get(7)?.parse().ok()).expect("/proc/self/stat")
}

/// Clock ticks per second of `/proc/*/stat` (`getconf CLK_TCK`, asked once: spawning it inside
/// a timed window would cost the window a process start).
fn clock_ticks() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
            .unwrap_or(100.0)
    })
}

/// CPU time (user + system, all threads) of process `pid` (`self` for this one), from
/// `/proc/<pid>/stat`; `None` if it cannot be read.
fn proc_cpu_seconds(pid: &str) -> Option<f64> {
    let f = proc_stat_fields(pid)?;
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

/// The fields of `/proc/<pid>/stat` after the command name (which is in parentheses and may
/// contain spaces): index `i` is field `i + 3` of proc(5).
fn proc_stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The local services' processes (`tansu`: the broker, `redis-server`): pid and name.
fn service_pids() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else { continue };
        let name = comm.trim();
        if matches!(name, "tansu" | "redis-server") {
            out.push((pid, name.to_string()));
        }
    }
    out
}

/// Pins every thread of the local services to the CPUs other than `gate_cpu` while it lives,
/// and restores each process's affinity when dropped (also when the benchmark panics).
struct PinnedServices {
    /// pid, name and the CPU list it had.
    saved: Vec<(u32, String, String)>,
}

impl PinnedServices {
    fn new(gate_cpu: &str) -> PinnedServices {
        let mut saved = Vec::new();
        let others = other_cpus(gate_cpu);
        if others.is_empty() {
            println!("services not pinned: no CPU besides {gate_cpu}");
            return PinnedServices { saved };
        }
        for (pid, name) in service_pids() {
            let Some(list) = affinity(pid) else { continue };
            if set_affinity(pid, &others) {
                saved.push((pid, name, list));
            } else {
                println!("could not pin {name} (pid {pid}) to CPUs {others}");
            }
        }
        let names: Vec<String> = saved.iter().map(|(p, n, _)| format!("{n} {p}")).collect();
        println!("services pinned to CPUs {others} for the run: {}", names.join(", "));
        PinnedServices { saved }
    }
}

impl Drop for PinnedServices {
    fn drop(&mut self) {
        for (pid, name, list) in &self.saved {
            if !set_affinity(*pid, list) {
                eprintln!("could not restore the CPU affinity {list} of {name} (pid {pid})");
            }
        }
    }
}

/// Pins every thread of process `pid` to the CPUs of `list` (`taskset -c` syntax).
fn set_affinity(pid: u32, list: &str) -> bool {
    Command::new("taskset")
        .args(["-a", "-p", "-c", list, &pid.to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The online CPUs other than `cpu`, as a `taskset -c` list (empty if there are none, or if
/// the kernel does not say which are online).
fn other_cpus(cpu: &str) -> String {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let mut cpus = Vec::new();
    for part in online.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            cpus.extend(a..=b);
        }
    }
    cpus.iter().filter(|c| c.to_string() != cpu).map(usize::to_string).collect::<Vec<_>>().join(",")
}

/// A process's CPU affinity as a `taskset -c` list (`taskset -c -p PID`).
fn affinity(pid: u32) -> Option<String> {
    let out = Command::new("taskset").args(["-c", "-p", &pid.to_string()]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "pid 123's current affinity list: 0,1"
    Some(text.rsplit(':').next()?.trim().to_string()).filter(|l| !l.is_empty())
}

/// CPU seconds used so far by the local services, by process name (`tansu`: the broker,
/// `redis-server`), read from `/proc` (informational: the services run on the other cores).
fn service_cpu() -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for (pid, name) in service_pids() {
        let Some(secs) = proc_cpu_seconds(&pid.to_string()) else { continue };
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, t)) => *t += secs,
            None => out.push((name, secs)),
        }
    }
    out
}

async fn publish(producer: &FutureProducer, topic: &str, n: usize) {
    let config =
        GeneratorConfig { seed: 99, users: 20_000, unknown_share: 0.1, ..Default::default() };
    let mut futures = Vec::with_capacity(10_000);
    for g in Generator::new(config).unwrap().take(n) {
        let payload = g.session.to_json();
        let key = Some(g.session.user_id.as_bytes());
        let rec = RecordRef { topic, key, payload: payload.as_bytes(), headers: &[] };
        futures.push(produce::send(producer, rec).await.unwrap());
        if futures.len() == 10_000 {
            for f in futures.drain(..) {
                f.await.unwrap().unwrap();
            }
        }
    }
    for f in futures {
        f.await.unwrap().unwrap();
    }
}

/// The benchmark's own Redis connection (statistics, clean-up).
type Redis = redis::aio::MultiplexedConnection;

/// What the benchmark needs in every round.
struct Ctx {
    bootstrap: String,
    redis_url: String,
    python: String,
    raw: String,
    tag: String,
    n_rust: usize,
    n_py: usize,
}

/// One side's figures in one round (the Rust gate or the Python loop).
struct Run {
    /// Sessions per wall-clock second.
    rate: f64,
    /// Sessions per CPU-second of the process.
    cpu_rate: f64,
}

/// The output topics of one round: valid, suspicious, dead-letter (Rust), valid, suspicious
/// (Python).
fn round_topics(ctx: &Ctx, round: usize) -> [String; 5] {
    ["valid", "suspicious", "dead-letter", "py-valid", "py-suspicious"]
        .map(|o| format!("bench-gate-{}.r{round}.{o}", ctx.tag))
}

/// The script's server time so far (`INFO commandstats`, `cmdstat_evalsha`): calls and
/// microseconds.
async fn evalsha_stats(con: &mut Redis) -> (u64, u64) {
    let info: String =
        redis::cmd("INFO").arg("commandstats").query_async(con).await.unwrap_or_default();
    let Some(line) = info.lines().find(|l| l.starts_with("cmdstat_evalsha:")) else {
        return (0, 0);
    };
    let field = |name: &str| {
        line.split([':', ',']).find_map(|kv| kv.strip_prefix(name)?.parse::<u64>().ok())
    };
    (field("calls=").unwrap_or(0), field("usec=").unwrap_or(0))
}

async fn run_rust(ctx: &Ctx, con: &mut Redis, round: usize, outs: &[String; 5]) -> Run {
    let mut args: GateArgs = shopstream_test_support::parse_args(&[]).unwrap();
    // Kafka options (`SHOPSTREAM_KAFKA_OPTIONS`, `SHOPSTREAM_KAFKA_COMPRESSION`) and gate
    // options (`SHOPSTREAM_GATE_*`) come from the environment like for `shopstream gate`.
    args.kafka.bootstrap = ctx.bootstrap.clone();
    args.group = format!("bench-gate-{}-r{round}", ctx.tag);
    args.input_topic = ctx.raw.clone();
    args.valid_topic = outs[0].clone();
    args.suspicious_topic = outs[1].clone();
    args.dead_letter_topic = outs[2].clone();
    args.redis.redis_url = ctx.redis_url.clone();
    args.redis_prefix = format!("bench:gate:{}:r{round}", ctx.tag);
    args.metrics_addr = "127.0.0.1:0".parse().unwrap();
    args.max_batch = env_or("GATE_BENCH_MAX_BATCH", args.max_batch);
    let script_before = evalsha_stats(con).await;
    let n_rust = ctx.n_rust as u64;
    let gate = Gate::new(args, &Registry::new()).unwrap();
    let totals: Arc<Totals> = gate.totals();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(gate.run(cancel.clone()));
    // Time from the end of the first batch (group join and start-up excluded, as for Python,
    // which starts its clock at its first record) to the last record.
    let (mut first, mut t_first, mut cpu_first, mut faults_first) = (0u64, None::<Instant>, 0.0, 0);
    let mut services_first = Vec::new();
    let (t_end, cpu_end, faults_end) = loop {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let done = Totals::get(&totals.records_in);
        if t_first.is_none() && done > 0 {
            first = done;
            t_first = Some(Instant::now());
            cpu_first = cpu_seconds();
            faults_first = minor_faults();
            services_first = service_cpu();
        }
        if done >= n_rust {
            break (Instant::now(), cpu_seconds(), minor_faults());
        }
    };
    let faults = faults_end - faults_first;
    let services: Vec<String> = service_cpu()
        .into_iter()
        .map(|(name, end)| {
            let start = services_first.iter().find(|(n, _)| *n == name).map_or(0.0, |(_, s)| *s);
            format!("{name} {:.2} s", end - start)
        })
        .collect();
    cancel.cancel();
    task.await.unwrap().unwrap();
    let script_after = evalsha_stats(con).await;
    let processed = Totals::get(&totals.records_in);
    assert!(processed >= n_rust);
    let secs = (t_end - t_first.unwrap()).as_secs_f64();
    let rate = (n_rust - first) as f64 / secs;
    let cpu = cpu_end - cpu_first;
    let cpu_rate = (n_rust - first) as f64 / cpu;
    println!(
        "[round {round}] rust gate:   {} records in {secs:.3} s after the first batch of {first} \
         -> {rate:.0} sessions/s (valid {}, suspicious {}, dead-letter {}, batches {})",
        n_rust - first,
        Totals::get(&totals.valid),
        Totals::get(&totals.suspicious),
        Totals::get(&totals.dead_letter),
        Totals::get(&totals.batches),
    );
    let phases: Vec<String> = shopstream_gate::Phase::ALL
        .iter()
        .map(|p| format!("{} {:.0} ms", p.label(), totals.phase_nanos(*p) as f64 / 1e6))
        .collect();
    println!("[round {round}] rust gate time per phase (whole run): {}", phases.join(", "));
    println!(
        "[round {round}] services' CPU over the same window (on the other cores): {}",
        services.join(", ")
    );
    // Saturating: someone may reset Redis's statistics during the run.
    let calls = script_after.0.saturating_sub(script_before.0);
    let usec = script_after.1.saturating_sub(script_before.1);
    println!(
        "[round {round}] redis script: {calls} calls, {:.2} us of server time per session",
        usec as f64 / processed as f64
    );
    println!(
        "[round {round}] rust gate CPU: {cpu:.2} s of CPU (all threads) -> {cpu_rate:.0} \
         sessions per CPU-second; {faults} minor page faults ({:.0} per 1000 sessions)",
        faults as f64 * 1000.0 / (n_rust - first) as f64
    );
    cleanup(con, &format!("{{bench:gate:{}:r{round}}}:*", ctx.tag)).await;
    Run { rate, cpu_rate }
}

/// The Python reference on the same core (it inherits the pinning).
async fn run_python(ctx: &Ctx, con: &mut Redis, round: usize, outs: &[String; 5]) -> Run {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/gate/python_gate.py");
    let prefix = format!("bench:pygate:{}:r{round}", ctx.tag);
    let out = Command::new(&ctx.python)
        .arg(script)
        .args(["--bootstrap", &ctx.bootstrap, "--redis-url", &ctx.redis_url, "--input", &ctx.raw])
        .args(["--valid", &outs[3], "--suspicious", &outs[4]])
        .args(["--prefix", &prefix, "--group", &format!("bench-py-{}-r{round}", ctx.tag)])
        .args(["--count", &ctx.n_py.to_string()])
        .output()
        .expect("run the Python reference");
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python failed: {line} {}", String::from_utf8_lossy(&out.stderr));
    let py: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    let rate = py["per_second"].as_f64().unwrap();
    let cpu_rate = py["per_cpu_second"].as_f64().unwrap_or(f64::NAN);
    println!(
        "[round {round}] python loop: {} records in {:.3} s -> {rate:.0} sessions/s; {:.2} s of \
         CPU -> {cpu_rate:.0} sessions per CPU-second",
        py["records"],
        py["seconds"].as_f64().unwrap_or(f64::NAN),
        py["cpu_seconds"].as_f64().unwrap_or(f64::NAN),
    );
    cleanup(con, &format!("{prefix}:*")).await;
    Run { rate, cpu_rate }
}

/// Deletes the keys matching `pattern`.
async fn cleanup(con: &mut Redis, pattern: &str) {
    let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(con).await.unwrap();
    for chunk in keys.chunks(1000) {
        let _: i64 = redis::cmd("DEL").arg(chunk).query_async(con).await.unwrap();
    }
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len().is_multiple_of(2) { (s[m - 1] + s[m]) / 2.0 } else { s[m] }
}

async fn bench(cpu: &str) {
    let bootstrap = env("SHOPSTREAM_KAFKA");
    let n_rust = env_or("GATE_BENCH_RECORDS", 150_000);
    let n_py = env_or("GATE_BENCH_PY_RECORDS", 15_000);
    let rounds = env_or("GATE_BENCH_ROUNDS", 3).max(1);
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    clock_ticks(); // asked once here, not inside the first timed window
    let ctx = Ctx {
        redis_url: env("SHOPSTREAM_REDIS_URL"),
        python: std::env::var("SHOPSTREAM_PYTHON").unwrap_or_else(|_| ".venv/bin/python".into()),
        raw: format!("bench-gate-{tag}.raw"),
        bootstrap,
        tag,
        n_rust,
        n_py,
    };
    let kafka = KafkaArgs::for_bootstrap(&ctx.bootstrap);
    let mut specs = vec![TopicSpec::new(&ctx.raw, 6)];
    for round in 1..=rounds {
        specs.extend(round_topics(&ctx, round).iter().map(|t| TopicSpec::new(t, 6)));
    }
    kafka.ensure_topics(&specs).await.unwrap();

    let _pinned = (std::env::var("GATE_BENCH_PIN_SERVICES").as_deref() != Ok("0"))
        .then(|| PinnedServices::new(cpu));
    println!(
        "load average before the run: {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    let n_total = n_rust.max(n_py);
    println!(
        "gate benchmark: pinned to CPU {cpu}; {rounds} rounds of Rust then Python on the same \
         topic; publishing {n_total} generated sessions to {}",
        ctx.raw
    );
    let producer = kafka.producer("gate-bench").unwrap();
    publish(&producer, &ctx.raw, n_total).await;

    // Paired rounds: each round runs the Rust gate, then the Python loop, each with a group,
    // output topics and Redis keys of its own, so that both sides of a round see the stack in
    // the same state, and the spread between rounds shows the machine's noise.
    let client = redis::Client::open(ctx.redis_url.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let mut runs = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let outs = round_topics(&ctx, round);
        let rust = run_rust(&ctx, &mut con, round, &outs).await;
        let py = run_python(&ctx, &mut con, round, &outs).await;
        println!(
            "[round {round}] ratio rust/python: {:.1}x wall clock, {:.1}x per CPU-second",
            rust.rate / py.rate,
            rust.cpu_rate / py.cpu_rate
        );
        runs.push((rust, py));
    }
    println!(
        "load average during the run: {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );

    println!();
    println!(
        "round | rust /s wall | rust /CPU-s | python /s wall | python /CPU-s | ratio wall | ratio /CPU-s"
    );
    for (i, (r, p)) in runs.iter().enumerate() {
        println!(
            "{:>5} | {:>12.0} | {:>11.0} | {:>14.0} | {:>13.0} | {:>9.1}x | {:>11.1}x",
            i + 1,
            r.rate,
            r.cpu_rate,
            p.rate,
            p.cpu_rate,
            r.rate / p.rate,
            r.cpu_rate / p.cpu_rate
        );
    }
    let ratios: Vec<f64> = runs.iter().map(|(r, p)| r.rate / p.rate).collect();
    let cpu_ratios: Vec<f64> = runs.iter().map(|(r, p)| r.cpu_rate / p.cpu_rate).collect();
    let rates: Vec<f64> = runs.iter().map(|(r, _)| r.rate).collect();
    let lowest = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "ratio rust/python (wall clock): median {:.1}x, lowest {:.1}x, highest {:.1}x over {rounds} rounds (target >= 50x)",
        median(&ratios),
        lowest(&ratios),
        ratios.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "ratio rust/python (per CPU-second): median {:.1}x, lowest {:.1}x",
        median(&cpu_ratios),
        lowest(&cpu_ratios)
    );
    // A target counts as met only if every round met it; the median alone is not the verdict.
    let met = |ok: usize| {
        if ok == rounds {
            "met".to_string()
        } else {
            format!("MISSED in {} of {rounds} rounds", rounds - ok)
        }
    };
    println!(
        "target >= 50,000 sessions/s on one core: {} (median {:.0}, lowest {:.0})",
        met(rates.iter().filter(|r| **r >= 50_000.0).count()),
        median(&rates),
        lowest(&rates)
    );
    println!(
        "target >= 50x the Python loop: {} (median {:.1}x, lowest {:.1}x)",
        met(ratios.iter().filter(|r| **r >= 50.0).count()),
        median(&ratios),
        lowest(&ratios)
    );
}
