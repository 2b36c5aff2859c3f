//! What the gate reports: running [`Totals`] (readable in-process, e.g. by a benchmark) and the
//! Prometheus metrics, with the batch [`Phase`]s timed in both.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

/// The phases of a batch, in order (the `phase` label of `shopstream_gate_phase_seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for records.
    Poll,
    /// Parsing the batch and encoding its script call.
    Parse,
    /// The Redis script call (in the Redis task).
    Redis,
    /// Producing the outputs until the broker acknowledged them.
    Produce,
    /// Committing the batch's offsets.
    Commit,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 5] =
        [Phase::Poll, Phase::Parse, Phase::Redis, Phase::Produce, Phase::Commit];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Poll => "poll",
            Phase::Parse => "parse",
            Phase::Redis => "redis",
            Phase::Produce => "produce",
            Phase::Commit => "commit",
        }
    }
}

/// Running totals of one gate process (also exported as metrics).
#[derive(Debug, Default)]
pub struct Totals {
    /// Records consumed and fully processed (committed or about to be).
    pub records_in: AtomicU64,
    /// Records routed to the valid topic.
    pub valid: AtomicU64,
    /// Records routed to the suspicious topic.
    pub suspicious: AtomicU64,
    /// Records routed to the dead-letter topic.
    pub dead_letter: AtomicU64,
    /// Sessions whose verdict was already recorded (replays/duplicates).
    pub replayed: AtomicU64,
    /// Batches completed.
    pub batches: AtomicU64,
    /// Nanoseconds spent per [`Phase`] (indexed by `Phase as usize`), summed over batches.
    phase_nanos: [AtomicU64; 5],
}

impl Totals {
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Nanoseconds spent in `phase` so far, summed over batches.
    pub fn phase_nanos(&self, phase: Phase) -> u64 {
        Self::get(&self.phase_nanos[phase as usize])
    }
}

pub(crate) struct GateMetrics {
    pub(crate) records_in: IntCounter,
    pub(crate) records_out: IntCounterVec,
    pub(crate) records_failed: IntCounterVec,
    pub(crate) verdicts: IntCounterVec,
    pub(crate) replayed: IntCounter,
    pub(crate) batch_seconds: Histogram,
    pub(crate) phase_seconds: HistogramVec,
    pub(crate) retries: IntCounterVec,
}

impl GateMetrics {
    pub(crate) fn new(registry: &Registry) -> Result<GateMetrics, prometheus::Error> {
        let m = GateMetrics {
            records_in: IntCounter::new(
                "shopstream_gate_records_in_total",
                "Records consumed from the raw topic and fully processed",
            )?,
            records_out: IntCounterVec::new(
                Opts::new("shopstream_gate_records_out_total", "Records produced, by output"),
                &["output"],
            )?,
            records_failed: IntCounterVec::new(
                Opts::new(
                    "shopstream_gate_records_failed_total",
                    "Records that failed the schema (sent to the dead-letter topic), by reason",
                ),
                &["reason"],
            )?,
            verdicts: IntCounterVec::new(
                Opts::new("shopstream_gate_verdicts_total", "Session verdicts, by reason"),
                &["reason"],
            )?,
            replayed: IntCounter::new(
                "shopstream_gate_replayed_total",
                "Sessions that already had a recorded verdict (replays, duplicates)",
            )?,
            batch_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "shopstream_gate_batch_seconds",
                    "Time to process one batch (parse, Redis, produce+ack, commit)",
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 16)?),
            )?,
            phase_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "shopstream_gate_phase_seconds",
                    "Time per batch phase (poll, parse, redis, produce, commit)",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
                &["phase"],
            )?,
            retries: IntCounterVec::new(
                Opts::new("shopstream_gate_retries_total", "Failed attempts that were retried"),
                &["operation"],
            )?,
        };
        registry.register(Box::new(m.records_in.clone()))?;
        registry.register(Box::new(m.records_out.clone()))?;
        registry.register(Box::new(m.records_failed.clone()))?;
        registry.register(Box::new(m.verdicts.clone()))?;
        registry.register(Box::new(m.replayed.clone()))?;
        registry.register(Box::new(m.batch_seconds.clone()))?;
        registry.register(Box::new(m.phase_seconds.clone()))?;
        registry.register(Box::new(m.retries.clone()))?;
        Ok(m)
    }
}

/// Observes the time since `since` as `phase` in the histogram and the totals.
pub(crate) fn record_phase(hist: &HistogramVec, totals: &Totals, phase: Phase, since: Instant) {
    let d = since.elapsed();
    hist.with_label_values(&[phase.label()]).observe(d.as_secs_f64());
    let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    totals.phase_nanos[phase as usize].fetch_add(nanos, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_in_order_and_indexed_by_their_position() {
        for (i, p) in Phase::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i);
        }
        let labels: Vec<_> = Phase::ALL.iter().map(|p| p.label()).collect();
        assert_eq!(labels, ["poll", "parse", "redis", "produce", "commit"]);
        let t = Totals::default();
        let hist = HistogramVec::new(HistogramOpts::new("t", "t"), &["phase"]).unwrap();
        record_phase(&hist, &t, Phase::Redis, Instant::now() - std::time::Duration::from_millis(5));
        assert!(t.phase_nanos(Phase::Redis) >= 5_000_000);
        assert_eq!(t.phase_nanos(Phase::Poll), 0);
    }
}
