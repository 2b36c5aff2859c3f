//! The gate's engine: batches move through [`Phase`]s (poll, parse, Redis, produce, commit)
//! with up to `--pipeline-depth` batches in flight and commits in order (see the crate docs).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prometheus::{HistogramVec, IntCounterVec, Registry};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::Producer;
use shopstream_kafka::produce::{self, AckProducer, Acks, Failed, RecordRef};
use shopstream_kafka::{Backoff, TopicSpec, batch};
use shopstream_schema::{SchemaError, parse_record};
use shopstream_telemetry::Health;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::args::GateArgs;
use crate::error::GateError;
use crate::metrics::{GateMetrics, Phase, Totals, record_phase};
use crate::outputs::{self, InRecord, OutRecord, Route, dead_letter, session_output};
use crate::rules::{RuleConfig, Verdict, risk};
use crate::state::{BatchCall, BatchEncoder, BatchItem, Decision, GateState, StateConfig};

/// The gate: one consumer, one producer, one Redis connection.
pub struct Gate {
    args: GateArgs,
    rule: RuleConfig,
    consumer: Arc<StreamConsumer>,
    producer: AckProducer,
    /// Taken by [`Gate::run`] for the task that talks to Redis.
    state: Option<GateState>,
    encoder: BatchEncoder,
    metrics: GateMetrics,
    totals: Arc<Totals>,
    ready: Health,
    /// Highest offsets (exclusive) committed so far, per partition.
    committed: BTreeMap<i32, i64>,
}

/// What the gate decided for one record of a batch.
enum Plan {
    /// A session with its verdict.
    Session { user_id: String, verdict: Verdict },
    /// A record that failed the schema (`None`: no payload).
    Dead(Option<SchemaError>),
}

impl Plan {
    /// The topic the record goes to.
    fn route(&self) -> Route {
        match self {
            Plan::Session { verdict: Verdict::Valid, .. } => Route::Valid,
            Plan::Session { verdict: Verdict::Suspicious(_), .. } => Route::Suspicious,
            Plan::Dead(_) => Route::DeadLetter,
        }
    }
}

/// Records parsed (or outputs sent) between two yields to the other tasks on the thread.
const YIELD_EVERY: usize = 500;

/// A parsed record: the session's user id (its output key) or why it failed the schema.
type Parsed = Result<String, Option<SchemaError>>;

/// Redis's answer for a batch: `None` when the gate was cancelled while Redis was failing
/// (nothing of the batch was recorded).
type Decided = Option<Vec<Decision>>;

/// A batch on its way through the pipeline, from Redis to the commit of its offsets.
struct InFlight {
    batch: Vec<InRecord>,
    started: Instant,
    stage: Stage,
}

enum Stage {
    /// Parsed and handed to the Redis task; waiting for the verdicts.
    Deciding { parsed: Vec<Parsed>, decisions: oneshot::Receiver<Decided> },
    /// Outputs sent; waiting for the broker's acknowledgements.
    Producing {
        plans: Vec<Plan>,
        /// The delivery reports of the outputs (by position).
        acks: Acks<usize>,
        produce_started: Instant,
        replayed: u64,
    },
}

/// What [`Gate::advance`] did with a batch.
enum Advance {
    /// The batch's outputs are sent (now or earlier).
    Moved,
    /// Redis has not answered yet.
    Waiting,
    /// Redis never will: the gate was cancelled while Redis was failing.
    Cancelled,
}

/// One batch's script call for the Redis task, and where its verdicts go.
struct RedisJob {
    call: BatchCall,
    reply: oneshot::Sender<Decided>,
}

/// The task that owns the Redis connection: runs the batches' script calls one after the
/// other, in the order they were parsed (a batch's verdicts may depend on the users an earlier
/// batch made known), retrying a failing Redis with backoff. Once cancelled during a retry it
/// answers `None` to that job and every later one, so no batch is recorded after one that was
/// not.
fn spawn_redis_task(
    mut state: GateState,
    mut jobs: mpsc::UnboundedReceiver<RedisJob>,
    backoff: Backoff,
    obs: RedisObs,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stopped = false;
        while let Some(job) = jobs.recv().await {
            if stopped {
                let _ = job.reply.send(None);
                continue;
            }
            let started = Instant::now();
            let mut backoff = backoff.clone();
            let decided = loop {
                match state.apply_prepared(&job.call).await {
                    Ok(d) => break Some(d),
                    Err(e) => {
                        tracing::warn!(error = %e, attempt = backoff.attempts(), "redis batch failed; retrying");
                        obs.retries.with_label_values(&["redis"]).inc();
                        obs.ready.set_ready(false);
                        if !backoff.wait(&cancel).await {
                            stopped = true;
                            break None;
                        }
                    }
                }
            };
            record_phase(&obs.phase_seconds, &obs.totals, Phase::Redis, started);
            // The receiver is gone only when the gate stopped; nothing to tell then.
            let _ = job.reply.send(decided);
        }
    })
}

/// What the Redis task reports to.
struct RedisObs {
    retries: IntCounterVec,
    phase_seconds: HistogramVec,
    totals: Arc<Totals>,
    ready: Health,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("args", &self.args).finish_non_exhaustive()
    }
}

impl Gate {
    /// Builds the gate (validates the configuration, creates clients, registers metrics);
    /// contacts no server yet.
    pub fn new(args: GateArgs, registry: &Registry) -> Result<Gate, GateError> {
        args.validate()?;
        let consumer = args.kafka.consumer(&args.group, "shopstream-gate")?;
        let producer = args.kafka.ack_producer("shopstream-gate")?;
        let state = GateState::new(
            &args.redis,
            StateConfig {
                prefix: args.redis_prefix.clone(),
                bloom_error_rate: args.bloom_error_rate,
                bloom_capacity: args.bloom_capacity,
                verdict_ttl: Duration::from_secs(args.verdict_ttl_secs),
            },
        )?;
        Ok(Gate {
            rule: args.rule(),
            consumer: Arc::new(consumer),
            producer,
            encoder: state.encoder(),
            state: Some(state),
            metrics: GateMetrics::new(registry)?,
            totals: Arc::new(Totals::default()),
            ready: Health::new(),
            committed: BTreeMap::new(),
            args,
        })
    }

    /// Live totals, readable while the gate runs.
    pub fn totals(&self) -> Arc<Totals> {
        self.totals.clone()
    }

    /// The readiness flag served on `/readyz`.
    pub fn health(&self) -> Health {
        self.ready.clone()
    }

    /// Runs until `cancel` fires: then finishes the batches in hand (unless a service is
    /// down, in which case they are left uncommitted for the next run), and returns.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), GateError> {
        let Some(mut state) = self.state.take() else {
            unreachable!("`run` consumes the gate, so the state is taken once")
        };
        let mut backoff = self.args.backoff();
        loop {
            match state.init().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "redis not ready; retrying");
                    self.metrics.retries.with_label_values(&["redis"]).inc();
                    if !backoff.wait(&cancel).await {
                        return Ok(());
                    }
                }
            }
        }
        let specs: Vec<TopicSpec> =
            [&self.args.valid_topic, &self.args.suspicious_topic, &self.args.dead_letter_topic]
                .into_iter()
                .map(|t| TopicSpec::new(t.as_str(), self.args.output_partitions))
                .collect();
        if let Err(e) = self.args.kafka.ensure_topics(&specs).await {
            // Topics may be managed elsewhere (e.g. KafkaTopic resources) without admin rights
            // for us; producing will tell if they are really missing.
            tracing::warn!(error = %e, "could not ensure the output topics");
        }
        self.consumer.subscribe(&[&self.args.input_topic])?;
        let (jobs, jobs_rx) = mpsc::unbounded_channel();
        let obs = RedisObs {
            retries: self.metrics.retries.clone(),
            phase_seconds: self.metrics.phase_seconds.clone(),
            totals: self.totals.clone(),
            ready: self.ready.clone(),
        };
        let redis_task = spawn_redis_task(state, jobs_rx, self.args.backoff(), obs, cancel.clone());
        self.ready.set_ready(true);
        tracing::info!(topic = %self.args.input_topic, group = %self.args.group, "gate started");

        // Batches in order: a batch is decided by Redis while the next ones are polled and
        // parsed, and acknowledged while later ones are decided; commits stay in order.
        let depth = self.args.pipeline_depth;
        let mut inflight: VecDeque<InFlight> = VecDeque::new();
        let mut backoff = self.args.backoff();
        let mut unfinished = false;
        'outer: loop {
            // Verdicts arrive in order: send the outputs of every decided batch.
            for f in inflight.iter_mut() {
                match self.advance(f, false).await {
                    Advance::Moved => {}
                    Advance::Waiting => break,
                    Advance::Cancelled => {
                        unfinished = true;
                        break 'outer;
                    }
                }
            }
            // Finish (ack -> commit) batches in order: those whose deliveries are done, and the
            // oldest one whenever the pipeline is full.
            loop {
                let full = inflight.len() >= depth;
                let Some(front) = inflight.front_mut() else { break };
                let acked = match &front.stage {
                    Stage::Producing { acks, .. } => acks.is_done(),
                    Stage::Deciding { .. } => false,
                };
                if !(acked || full) {
                    break;
                }
                if let Advance::Cancelled = self.advance(front, true).await {
                    unfinished = true;
                    break 'outer;
                }
                let Some(f) = inflight.pop_front() else { break };
                if !self.finish(f, &cancel).await {
                    unfinished = true;
                    break 'outer;
                }
            }
            if cancel.is_cancelled() {
                break;
            }
            let poll_started = Instant::now();
            // With batches in flight, do not wait long for new records: their verdicts or
            // acks may be due.
            let first_wait =
                if inflight.is_empty() { None } else { Some(Duration::from_millis(2)) };
            let poll = batch::BatchPoll {
                max: self.args.max_batch,
                max_bytes: self.args.kafka.max_batch_bytes,
                linger: Duration::from_millis(self.args.batch_linger_ms),
                first_wait,
            };
            let (metrics, ready) = (&self.metrics, &self.ready);
            let polled =
                batch::poll_batch_retrying(&self.consumer, poll, &mut backoff, &cancel, |_| {
                    metrics.retries.with_label_values(&["kafka_consume"]).inc();
                    ready.set_ready(false);
                })
                .await;
            let Some(batch) = polled else { break };
            if batch.is_empty() {
                continue;
            }
            self.phase(Phase::Poll, poll_started);
            inflight.push_back(self.start(batch, &jobs).await);
        }
        // Shutdown: finish what is in flight, in order (unless a service is down).
        if !unfinished {
            while let Some(mut f) = inflight.pop_front() {
                if let Advance::Cancelled = self.advance(&mut f, true).await {
                    unfinished = true;
                    break;
                }
                if !self.finish(f, &cancel).await {
                    unfinished = true;
                    break;
                }
            }
        }
        if unfinished || !inflight.is_empty() {
            tracing::info!(
                batches = inflight.len() + usize::from(unfinished),
                "stopping with unfinished batches; they were not committed and will be re-read"
            );
        }
        drop(jobs);
        if let Err(e) = redis_task.await {
            tracing::error!(error = %e, "the redis task failed");
        }
        // Make the last asynchronous commits durable before leaving the group.
        if let Err(e) = batch::commit_offsets(
            &self.consumer,
            &self.args.input_topic,
            &self.committed,
            rdkafka::consumer::CommitMode::Sync,
        )
        .await
        {
            tracing::warn!(error = %e, "final offset commit failed; some records may be re-read");
        }
        self.ready.set_ready(false);
        let _ = self.producer.flush(Duration::from_secs(10));
        self.consumer.unsubscribe();
        tracing::info!(
            records_in = Totals::get(&self.totals.records_in),
            valid = Totals::get(&self.totals.valid),
            suspicious = Totals::get(&self.totals.suspicious),
            dead_letter = Totals::get(&self.totals.dead_letter),
            "gate stopped"
        );
        Ok(())
    }

    /// Parses a batch and hands its script call to the Redis task. Yields to the other tasks
    /// every [`YIELD_EVERY`] records, so that the Redis task, sharing the thread, can take its
    /// reply and send the next call without waiting for the whole batch.
    async fn start(
        &self,
        batch: Vec<InRecord>,
        jobs: &mpsc::UnboundedSender<RedisJob>,
    ) -> InFlight {
        let started = Instant::now();
        // Borrowing parse: a well-formed record's strings are not copied (see
        // `shopstream_schema::parse_record`; same verdicts and errors as `parse_session`). Only
        // the few fields the gate needs are kept: a whole `Record` is over 1 KB, and a batch of
        // them cost more in memory traffic than the parse.
        let mut days: Vec<(chrono::NaiveDate, Arc<str>)> = Vec::new();
        let mut items: Vec<Result<BatchItem<'_>, Option<SchemaError>>> =
            Vec::with_capacity(batch.len());
        for chunk in batch.chunks(YIELD_EVERY) {
            for r in chunk {
                items.push(self.parse(r, &mut days));
            }
            tokio::task::yield_now().await;
        }
        let sessions: Vec<&BatchItem<'_>> = items.iter().filter_map(|p| p.as_ref().ok()).collect();
        let call = self.encoder.encode(&sessions);
        drop(sessions);
        let parsed: Vec<Parsed> =
            items.into_iter().map(|p| p.map(|s| s.user_id.into_owned())).collect();
        self.phase(Phase::Parse, started);
        let (reply, decisions) = oneshot::channel();
        if jobs.send(RedisJob { call, reply }).is_err() {
            // Only if the Redis task panicked; the batch then reads as cancelled.
            tracing::error!("the redis task is gone");
        }
        InFlight { batch, started, stage: Stage::Deciding { parsed, decisions } }
    }

    /// The gate's view of one record: ids, risk and day (`days` keeps each day's text once).
    fn parse<'a>(
        &self,
        r: &'a InRecord,
        days: &mut Vec<(chrono::NaiveDate, Arc<str>)>,
    ) -> Result<BatchItem<'a>, Option<SchemaError>> {
        let record = match &r.payload {
            Some(p) => parse_record(p).map_err(Some)?,
            None => return Err(None),
        };
        let (risk, date) = {
            let view = record.view();
            (risk(&view, &self.rule), view.timestamp.date())
        };
        // A batch spans few days: format each day once, not once per session.
        let day = match days.iter().find(|(d, _)| *d == date) {
            Some((_, text)) => text.clone(),
            None => {
                let text: Arc<str> = date.to_string().into();
                days.push((date, text.clone()));
                text
            }
        };
        let (session_id, user_id) = record.into_ids();
        Ok(BatchItem { session_id, user_id, risk, day })
    }

    /// Moves a batch on from `Deciding` once Redis answered (waiting for that if `wait`): builds
    /// its plans and sends every output; the deliveries are awaited by [`Gate::finish`].
    async fn advance(&self, f: &mut InFlight, wait: bool) -> Advance {
        let Stage::Deciding { decisions, parsed } = &mut f.stage else { return Advance::Moved };
        let decided = if wait {
            decisions.await.ok().flatten()
        } else {
            match decisions.try_recv() {
                Ok(d) => d,
                Err(oneshot::error::TryRecvError::Empty) => return Advance::Waiting,
                Err(oneshot::error::TryRecvError::Closed) => None,
            }
        };
        let Some(decisions) = decided else { return Advance::Cancelled };
        // The stage is replaced below, before anything can look at the batch again.
        let plans = self.plan(std::mem::take(parsed), &decisions);
        let produce_started = Instant::now();
        let replayed = decisions.iter().map(|d| u64::from(d.replayed)).sum();
        let outs = self.outputs(&f.batch, &plans);
        let acks =
            produce::send_counted(&self.producer, 0..outs.len(), |i| self.record(&outs[i])).await;
        drop(outs);
        f.stage = Stage::Producing { plans, acks, produce_started, replayed };
        Advance::Moved
    }

    /// The plan of every record of a batch, from its parse and Redis's verdicts (counted in
    /// the metrics here, once per batch).
    fn plan(&self, parsed: Vec<Parsed>, decisions: &[Decision]) -> Vec<Plan> {
        let mut decision = decisions.iter();
        parsed
            .into_iter()
            .map(|p| match p {
                Ok(user_id) => {
                    let Some(d) = decision.next() else { unreachable!("one decision per session") };
                    if !d.replayed {
                        self.metrics.verdicts.with_label_values(&[d.verdict.reason()]).inc();
                    }
                    Plan::Session { user_id, verdict: d.verdict }
                }
                Err(e) => {
                    let reason = e.as_ref().map_or(outputs::REASON_EMPTY, SchemaError::reason);
                    self.metrics.records_failed.with_label_values(&[reason]).inc();
                    Plan::Dead(e)
                }
            })
            .collect()
    }

    /// Waits for a batch's deliveries (re-sending failed ones with backoff), then commits its
    /// offsets. `false` if cancelled before every output was acknowledged (nothing committed).
    async fn finish(&mut self, f: InFlight, cancel: &CancellationToken) -> bool {
        let Stage::Producing { plans, acks, produce_started, replayed } = f.stage else {
            unreachable!("`advance` runs before `finish`")
        };
        let failed = acks.wait().await;
        if !failed.is_empty() {
            let outs = self.outputs(&f.batch, &plans);
            self.on_produce_retry(&failed);
            if !self.args.backoff().wait(cancel).await
                || !self.produce_all(&outs, &failed.items, cancel).await
            {
                return false;
            }
        }
        self.phase(Phase::Produce, produce_started);

        let commit_started = Instant::now();
        for (p, o) in batch::next_offsets(&f.batch) {
            let e = self.committed.entry(p).or_insert(o);
            *e = (*e).max(o);
        }
        let r = batch::commit_offsets(
            &self.consumer,
            &self.args.input_topic,
            &batch::next_offsets(&f.batch),
            rdkafka::consumer::CommitMode::Async,
        )
        .await;
        if let Err(e) = r {
            // After a rebalance the partition belongs to another replica, which re-reads the
            // batch; the recorded verdicts make that a no-op.
            tracing::warn!(error = %e, "offset commit failed; the batch may be re-read");
            self.metrics.retries.with_label_values(&["kafka_commit"]).inc();
        }
        self.phase(Phase::Commit, commit_started);
        self.ready.set_ready(true);

        let mut counts = [0u64; 3];
        for plan in &plans {
            counts[plan.route() as usize] += 1;
        }
        for (route, n) in [Route::Valid, Route::Suspicious, Route::DeadLetter].iter().zip(counts) {
            self.metrics.records_out.with_label_values(&[route.label()]).inc_by(n);
        }
        let n = f.batch.len() as u64;
        self.metrics.records_in.inc_by(n);
        self.metrics.replayed.inc_by(replayed);
        self.metrics.batch_seconds.observe(f.started.elapsed().as_secs_f64());
        let t = &self.totals;
        t.valid.fetch_add(counts[Route::Valid as usize], Ordering::Relaxed);
        t.suspicious.fetch_add(counts[Route::Suspicious as usize], Ordering::Relaxed);
        t.dead_letter.fetch_add(counts[Route::DeadLetter as usize], Ordering::Relaxed);
        t.replayed.fetch_add(replayed, Ordering::Relaxed);
        t.batches.fetch_add(1, Ordering::Relaxed);
        t.records_in.fetch_add(n, Ordering::Relaxed);
        true
    }

    /// The output records of a planned batch (pure; the same every time).
    fn outputs<'a>(&self, batch: &'a [InRecord], plans: &'a [Plan]) -> Vec<OutRecord<'a>> {
        let topic = self.args.input_topic.as_str();
        batch
            .iter()
            .zip(plans)
            .map(|(rec, plan)| match plan {
                Plan::Session { user_id, verdict } => session_output(topic, rec, user_id, *verdict),
                Plan::Dead(e) => {
                    dead_letter(topic, rec, e.as_ref(), self.args.max_dead_letter_bytes)
                }
            })
            .collect()
    }

    fn phase(&self, phase: Phase, since: Instant) {
        record_phase(&self.metrics.phase_seconds, &self.totals, phase, since);
    }

    fn topic_of(&self, route: Route) -> &str {
        match route {
            Route::Valid => &self.args.valid_topic,
            Route::Suspicious => &self.args.suspicious_topic,
            Route::DeadLetter => &self.args.dead_letter_topic,
        }
    }

    /// What `out` is for the producer.
    fn record<'a>(&'a self, out: &'a OutRecord<'_>) -> RecordRef<'a> {
        RecordRef {
            topic: self.topic_of(out.route),
            key: out.key,
            payload: out.payload,
            headers: &out.headers,
        }
    }

    fn on_produce_retry(&self, failed: &Failed<usize>) {
        tracing::warn!(
            failed = failed.items.len(),
            error = failed.first_error.as_deref().unwrap_or("?"),
            "produce failed; retrying"
        );
        self.metrics.retries.with_label_values(&["kafka_produce"]).inc();
        self.ready.set_ready(false);
    }

    /// Produces the outputs at `indices` and waits for the broker's acknowledgements; failed
    /// ones are retried with backoff. `false` if cancelled before all were acknowledged.
    async fn produce_all(
        &self,
        outs: &[OutRecord<'_>],
        indices: &[usize],
        cancel: &CancellationToken,
    ) -> bool {
        let record = |i: usize| self.record(&outs[i]);
        let backoff = self.args.backoff();
        let indices = indices.iter().copied();
        produce::send_all_acked(&self.producer, indices, record, backoff, cancel, |failed| {
            self.on_produce_retry(failed)
        })
        .await
    }
}
