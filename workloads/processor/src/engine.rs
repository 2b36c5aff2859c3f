//! The processing engine, independent of Kafka: records in, a `_bulk` batch plus dead letters
//! out ([`Transformer`]), and the retrying write of a batch to any [`DocStore`] ([`write_batch`]).

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;

use shopstream_kafka::Backoff;
use shopstream_kafka::dead_letter;
use shopstream_sentiment::{Scores, SentimentAnalyzer};
use tokio_util::sync::CancellationToken;

use crate::bulk::{Batch, ItemOutcome};
use crate::documents::{PotentialCustomerRule, check_ids};
use crate::mapping::Indexes;
use crate::store::{DocStore, StoreError};
use crate::writer::DocWriter;

/// Reason code of a record without payload (the shared dead-letter envelope's).
pub use shopstream_kafka::dead_letter::REASON_EMPTY;

/// A record that cannot be stored, bound for the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Position of the record in its processing batch.
    pub record: usize,
    /// Stable reason code (`malformed_json`, `id_too_long`, `es_rejected`, ...).
    pub reason: String,
    /// JSON path of the offending field (`$` for the whole record).
    pub field: String,
    /// Human-readable detail.
    pub message: String,
}

/// Memoised VADER scores: review texts repeat (templates, copy-paste), and scoring is a pure
/// function of the text. Bounded: cleared when it reaches its capacity.
#[derive(Debug)]
pub struct SentimentCache {
    analyzer: &'static SentimentAnalyzer,
    map: HashMap<String, Scores>,
    capacity: usize,
}

impl SentimentCache {
    /// A cache of at most `capacity` texts (0 disables caching).
    pub fn new(capacity: usize) -> SentimentCache {
        SentimentCache {
            analyzer: shopstream_sentiment::analyzer(),
            map: HashMap::with_capacity_and_hasher(capacity.min(4096), Default::default()),
            capacity,
        }
    }

    /// The scores of `text`.
    pub fn scores(&mut self, text: &str) -> Scores {
        if let Some(s) = self.map.get(text) {
            return *s;
        }
        let s = self.analyzer.polarity_scores(text);
        if self.capacity > 0 {
            if self.map.len() >= self.capacity {
                self.map.clear();
            }
            self.map.insert(text.to_string(), s);
        }
        s
    }
}

/// Turns input records into documents.
#[derive(Debug)]
pub struct Transformer {
    indexes: Indexes,
    writer: DocWriter,
    cache: SentimentCache,
    scores: Vec<Option<Scores>>,
}

/// What one [`Transformer::transform`] call produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TransformStats {
    /// Sessions turned into documents.
    pub sessions: usize,
    /// Session summary documents.
    pub session_docs: usize,
    /// Product row documents.
    pub product_docs: usize,
    /// Valid sessions the fast parser left to the reference parser (see [`shopstream_schema::parse_record`]).
    pub slow_parses: usize,
}

impl Transformer {
    /// A transformer writing to `indexes` with the given potential-customer rule and a
    /// sentiment cache of `cache_capacity` texts.
    pub fn new(indexes: Indexes, rule: PotentialCustomerRule, cache_capacity: usize) -> Self {
        Transformer {
            writer: DocWriter::new(&indexes, rule),
            indexes,
            cache: SentimentCache::new(cache_capacity),
            scores: Vec::new(),
        }
    }

    /// The target indexes.
    pub fn indexes(&self) -> &Indexes {
        &self.indexes
    }

    /// Appends the documents of each payload to `batch` (tagged with the payload's position)
    /// and a [`DeadLetter`] for each payload that cannot be stored.
    pub fn transform<'p>(
        &mut self,
        payloads: impl IntoIterator<Item = Option<&'p [u8]>>,
        batch: &mut Batch,
        dead: &mut Vec<DeadLetter>,
    ) -> TransformStats {
        let mut stats = TransformStats::default();
        for (record, payload) in payloads.into_iter().enumerate() {
            let Some(payload) = payload else {
                let empty = dead_letter::empty_failure();
                dead.push(DeadLetter {
                    record,
                    reason: empty.reason.into(),
                    field: empty.field.into(),
                    message: empty.message.into(),
                });
                continue;
            };
            let parsed = match shopstream_schema::parse_record(payload) {
                Ok(r) => r,
                Err(e) => {
                    dead.push(DeadLetter {
                        record,
                        reason: e.reason().into(),
                        field: e.field().into(),
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            if !parsed.is_fast() {
                stats.slow_parses += 1;
            }
            let session = parsed.view();
            if let Err(e) = check_ids(session.session_id, session.page_views) {
                dead.push(DeadLetter {
                    record,
                    reason: e.reason.into(),
                    field: "sessionId".into(),
                    message: e.message,
                });
                continue;
            }
            self.scores.clear();
            for review in &session.product_reviews {
                let s = review.map(|t| self.cache.scores(t));
                self.scores.push(s);
            }
            let rows = self.writer.write(batch, record, &session, &self.scores);
            stats.sessions += 1;
            stats.session_docs += 1;
            stats.product_docs += rows;
        }
        stats
    }
}

/// What [`write_batch`] observed, for metrics and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// Records with at least one document refused for good: `(record, reason, message)`.
    pub rejected: Vec<DeadLetter>,
    /// Requests sent (including retries).
    pub requests: u64,
    /// Item retries after a transient item failure.
    pub item_retries: u64,
    /// Whole-request failures because the store was unavailable.
    pub unavailable: u64,
    /// Documents stored.
    pub stored: u64,
}

/// [`write_batch`] stopped because shutdown was requested while the store was failing; the
/// batch is not fully written and its offsets must not be committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shutdown requested before the batch was written")]
pub struct Interrupted;

/// Writes every document of `batch`, waiting out outages: whole-request failures and
/// transient item failures are retried with backoff until they pass (or shutdown is
/// requested); documents refused for good mark their record as rejected. A request refused as
/// a whole (HTTP 4xx) is split per record to find the records at fault.
///
/// `backoff` paces the retries (it starts again for each record split off a refused
/// request). `on_unavailable` is told about each outage (for readiness and metrics);
/// `on_recovered` when a request succeeds after one.
pub async fn write_batch<S: DocStore>(
    sink: &mut S,
    batch: &Batch,
    mut backoff: Backoff,
    cancel: &CancellationToken,
    mut on_unavailable: impl FnMut(&StoreError) + Send,
    mut on_recovered: impl FnMut() + Send,
) -> Result<WriteReport, Interrupted> {
    let mut report = WriteReport::default();
    let mut queue: Vec<(Cow<'_, Batch>, bool)> = vec![(Cow::Borrowed(batch), false)];
    while let Some((mut pending, single_record)) = queue.pop() {
        backoff.reset();
        let mut failing = false;
        while !pending.is_empty() {
            if failing {
                // The store may have restarted without its indexes: set them up again first.
                if let Err(e) = sink.recover().await {
                    report.unavailable += 1;
                    on_unavailable(&e);
                    if !backoff.wait(cancel).await {
                        return Err(Interrupted);
                    }
                    continue;
                }
            }
            report.requests += 1;
            match sink.write(&pending).await {
                Ok(outcomes) => {
                    if failing {
                        on_recovered();
                        failing = false;
                    }
                    let mut retry = Vec::new();
                    for (pos, outcome) in outcomes.iter().enumerate() {
                        let record = pending.items()[pos].record;
                        match outcome {
                            ItemOutcome::Ok => report.stored += 1,
                            ItemOutcome::Retry { .. } => retry.push(pos),
                            ItemOutcome::Rejected { status, kind, message } => {
                                if !report.rejected.iter().any(|d| d.record == record) {
                                    report.rejected.push(DeadLetter {
                                        record,
                                        reason: "es_rejected".into(),
                                        field: "$".into(),
                                        message: format!("HTTP {status} {kind}: {message}"),
                                    });
                                }
                            }
                        }
                    }
                    if retry.is_empty() {
                        break;
                    }
                    report.item_retries += retry.len() as u64;
                    pending = Cow::Owned(pending.subset(&retry));
                    if !backoff.wait(cancel).await {
                        return Err(Interrupted);
                    }
                }
                Err(e @ StoreError::Unavailable(_)) => {
                    report.unavailable += 1;
                    failing = true;
                    on_unavailable(&e);
                    if !backoff.wait(cancel).await {
                        return Err(Interrupted);
                    }
                }
                Err(StoreError::Refused { status, message }) => {
                    if failing {
                        on_recovered();
                    }
                    if single_record {
                        let record = pending.items()[0].record;
                        report.rejected.push(DeadLetter {
                            record,
                            reason: "es_rejected".into(),
                            field: "$".into(),
                            message: format!("HTTP {status}: {message}"),
                        });
                    } else {
                        // Split per record and try each alone.
                        let mut by_record: Vec<(usize, Vec<usize>)> = Vec::new();
                        for (pos, item) in pending.items().iter().enumerate() {
                            match by_record.last_mut() {
                                Some((r, v)) if *r == item.record => v.push(pos),
                                _ => by_record.push((item.record, vec![pos])),
                            }
                        }
                        for (_, positions) in by_record.into_iter().rev() {
                            queue.push((Cow::Owned(pending.subset(&positions)), true));
                        }
                    }
                    break;
                }
            }
        }
    }
    report.rejected.sort_by_key(|d| d.record);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CountingSink;
    use std::time::Duration;

    fn backoff(initial_ms: u64, max_ms: u64) -> Backoff {
        Backoff::new(Duration::from_millis(initial_ms), Duration::from_millis(max_ms))
    }

    const SEED: &str = include_str!("../tests/data/seed-format-example.jsonl");

    fn transformer() -> Transformer {
        Transformer::new(Indexes::with_prefix("t-"), PotentialCustomerRule::default(), 100)
    }

    #[test]
    fn records_become_documents_or_dead_letters() {
        let lines: Vec<&[u8]> = SEED.lines().map(str::as_bytes).collect();
        let long_id = SEED
            .lines()
            .next()
            .map(|l| l.replace("3f1c2a9e-8b1d-4c55-9a0e-2d7b6f4e1a01", &"y".repeat(511)))
            .unwrap_or_default();
        let payloads: Vec<Option<&[u8]>> = vec![
            Some(lines[0]),
            None,
            Some(b"{\"sessionId\": \"ab"),
            Some(lines[1]),
            Some(b"\xff\xfe junk"),
            Some(long_id.as_bytes()),
        ];
        let mut batch = Batch::new();
        let mut dead = Vec::new();
        let stats = transformer().transform(payloads, &mut batch, &mut dead);
        assert_eq!(
            stats,
            TransformStats { sessions: 2, session_docs: 2, product_docs: 7, slow_parses: 0 }
        );
        assert_eq!(batch.len(), 9);
        let records: Vec<usize> = batch.items().iter().map(|i| i.record).collect();
        assert_eq!(records, vec![0, 0, 0, 0, 0, 3, 3, 3, 3]);
        let reasons: Vec<(usize, &str)> =
            dead.iter().map(|d| (d.record, d.reason.as_str())).collect();
        assert_eq!(
            reasons,
            vec![
                (1, "empty_payload"),
                (2, "malformed_json"),
                (4, "invalid_utf8"),
                (5, "id_too_long")
            ]
        );
        let body = String::from_utf8(batch.body().to_vec()).expect("utf8");
        assert!(body.contains(
            r#"{"index":{"_index":"t-sessions","_id":"3f1c2a9e-8b1d-4c55-9a0e-2d7b6f4e1a01"}}"#
        ));
        assert!(body.contains(
            r#"{"index":{"_index":"t-products","_id":"9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d:3"}}"#
        ));
    }

    #[test]
    fn the_same_records_give_the_same_bytes() {
        let payloads = || SEED.lines().map(|l| Some(l.as_bytes()));
        let (mut a, mut b) = (Batch::new(), Batch::new());
        transformer().transform(payloads(), &mut a, &mut Vec::new());
        let mut t = transformer();
        t.transform(payloads(), &mut Batch::new(), &mut Vec::new());
        t.transform(payloads(), &mut b, &mut Vec::new());
        assert_eq!(a.body(), b.body());
    }

    #[test]
    fn cache_agrees_with_the_analyzer_and_stays_bounded() {
        let mut c = SentimentCache::new(2);
        for t in ["good", "bad", "fine", "good", "awful"] {
            assert_eq!(c.scores(t), shopstream_sentiment::analyzer().polarity_scores(t));
            assert!(c.map.len() <= 2);
        }
    }

    /// A sink that fails in scripted ways, to check the retry logic of `write_batch` (the real
    /// Elasticsearch paths are covered by the integration tests).
    struct Scripted {
        script: Vec<Result<Vec<ItemOutcome>, StoreError>>,
        seen: Vec<usize>,
    }

    impl DocStore for Scripted {
        async fn write(&mut self, batch: &Batch) -> Result<Vec<ItemOutcome>, StoreError> {
            self.seen.push(batch.len());
            if self.script.is_empty() {
                return Ok(vec![ItemOutcome::Ok; batch.len()]);
            }
            self.script.remove(0)
        }
    }

    fn batch_of(records: &[usize]) -> Batch {
        let mut b = Batch::new();
        for (i, &r) in records.iter().enumerate() {
            b.push("ix", &format!("id{i}"), r, &serde_json::json!({ "n": i })).expect("push");
        }
        b
    }

    #[tokio::test]
    async fn outages_are_waited_out_and_failed_items_retried_alone() {
        let fast = backoff(1, 4);
        let cancel = CancellationToken::new();
        let retry = ItemOutcome::Retry { status: 429, message: "busy".into() };
        let reject = ItemOutcome::Rejected {
            status: 400,
            kind: "mapper_parsing_exception".into(),
            message: "bad".into(),
        };
        let mut sink = Scripted {
            script: vec![
                Err(StoreError::Unavailable("down".into())),
                Err(StoreError::Unavailable("down".into())),
                Ok(vec![ItemOutcome::Ok, retry.clone(), reject, ItemOutcome::Ok]),
                Ok(vec![retry]),
            ],
            seen: Vec::new(),
        };
        let (mut outages, mut recoveries) = (0, 0);
        let report = write_batch(
            &mut sink,
            &batch_of(&[0, 0, 1, 2]),
            fast,
            &cancel,
            |_| outages += 1,
            || recoveries += 1,
        )
        .await
        .expect("written");
        assert_eq!(sink.seen, vec![4, 4, 4, 1, 1]);
        assert_eq!((outages, recoveries), (2, 1));
        assert_eq!(report.stored, 3);
        assert_eq!(report.item_retries, 2);
        assert_eq!(report.rejected.len(), 1);
        assert_eq!(report.rejected[0].record, 1);
        assert_eq!(report.rejected[0].reason, "es_rejected");
    }

    #[tokio::test]
    async fn a_refused_request_is_split_per_record() {
        let fast = backoff(1, 4);
        let cancel = CancellationToken::new();
        let refused = || Err(StoreError::Refused { status: 400, message: "validation".into() });
        let mut sink = Scripted {
            // Whole batch refused; then record 0 passes, record 1 is refused alone, record 2 passes.
            script: vec![
                refused(),
                Ok(vec![ItemOutcome::Ok; 2]),
                refused(),
                Ok(vec![ItemOutcome::Ok]),
            ],
            seen: Vec::new(),
        };
        let report = write_batch(&mut sink, &batch_of(&[0, 0, 1, 2]), fast, &cancel, |_| {}, || {})
            .await
            .expect("written");
        assert_eq!(sink.seen, vec![4, 2, 1, 1]);
        assert_eq!(report.rejected.iter().map(|d| d.record).collect::<Vec<_>>(), vec![1]);
        assert_eq!(report.stored, 3);
    }

    #[tokio::test]
    async fn shutdown_interrupts_an_outage() {
        let slow = backoff(60_000, 60_000);
        let cancel = CancellationToken::new();
        let stopper = cancel.clone();
        let mut sink = Scripted {
            script: vec![Err(StoreError::Unavailable("down".into()))],
            seen: Vec::new(),
        };
        let stop = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            stopper.cancel();
        });
        let r = write_batch(&mut sink, &batch_of(&[0]), slow, &cancel, |_| {}, || {}).await;
        assert_eq!(r, Err(Interrupted));
        stop.await.expect("join");
    }

    #[tokio::test]
    async fn counting_sink_counts() {
        let cancel = CancellationToken::new();
        let mut sink = CountingSink::default();
        let r =
            write_batch(&mut sink, &batch_of(&[0, 1, 1]), backoff(1, 1), &cancel, |_| {}, || {})
                .await
                .expect("ok");
        assert_eq!((r.stored, sink.docs, sink.requests), (3, 3, 1));
    }
}
