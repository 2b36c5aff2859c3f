//! Batch consumption with manual commits, shared by the gate, the sink and the processor:
//! poll a batch, process it, commit the offsets after it only when its outputs are safe. The
//! functions take a consumer with any client context (the processor's reports consumer lag).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;

/// One consumed record, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InRecord {
    /// Partition it came from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its payload (`None` for a tombstone).
    pub payload: Option<Vec<u8>>,
}

/// How to poll a batch: size, linger and the wait for its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPoll {
    /// Most records per batch.
    pub max: usize,
    /// Most bytes (keys + payloads) per batch: a batch stops at the record that reaches it
    /// (it holds at least one record), so a backlog of large records cannot hold gigabytes.
    pub max_bytes: usize,
    /// Longest wait for the batch to fill once its first record arrived.
    pub linger: Duration,
    /// Longest wait for the first record (`None`: until cancelled, giving an empty batch).
    pub first_wait: Option<Duration>,
}

/// The size of a batch being filled, against its limits.
#[derive(Debug, Clone, Copy, Default)]
struct Fill {
    records: usize,
    bytes: usize,
}

impl Fill {
    fn add(&mut self, r: &InRecord) {
        self.records += 1;
        self.bytes += r.key.as_ref().map_or(0, Vec::len) + r.payload.as_ref().map_or(0, Vec::len);
    }

    fn full(&self, poll: &BatchPoll) -> bool {
        self.records >= poll.max || self.bytes >= poll.max_bytes
    }
}

/// Up to `poll.max` records and about `poll.max_bytes` bytes: waits for the first one (at most
/// `poll.first_wait` if given; until cancellation otherwise, giving an empty batch), then takes
/// whatever arrives within `poll.linger`.
pub async fn poll_batch<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    poll: BatchPoll,
    cancel: &CancellationToken,
) -> Result<Vec<InRecord>, KafkaError> {
    let BatchPoll { max, linger, first_wait, .. } = poll;
    let mut batch = Vec::with_capacity(max.min(16_384));
    let mut fill = Fill::default();
    let limit = async {
        match first_wait {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let first = tokio::select! {
        m = consumer.recv() => m?,
        _ = cancel.cancelled() => return Ok(batch),
        _ = limit => return Ok(batch),
    };
    let owned = own(&first);
    drop(first);
    fill.add(&owned);
    batch.push(owned);
    let linger = tokio::time::sleep(linger);
    tokio::pin!(linger);
    while !fill.full(&poll) {
        tokio::select! {
            biased;
            m = consumer.recv() => match m {
                Ok(m) => {
                    let r = own(&m);
                    fill.add(&r);
                    batch.push(r);
                }
                Err(e) => {
                    // Keep what we have; a lasting error shows again on the next poll.
                    tracing::debug!(error = %e, "consume error while filling a batch");
                    break;
                }
            },
            _ = &mut linger => break,
        }
    }
    Ok(batch)
}

/// [`poll_batch`] for a loop that retries: a consumer error is logged, reported to
/// `on_error` (metrics, readiness) and followed by a `backoff` wait, then an empty batch is
/// returned so the caller's loop goes round again (finishing other work first); a successful
/// poll resets `backoff`. `None` when `cancel` fired during the wait.
pub async fn poll_batch_retrying<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    poll: BatchPoll,
    backoff: &mut Backoff,
    cancel: &CancellationToken,
    on_error: impl FnOnce(&KafkaError),
) -> Option<Vec<InRecord>> {
    match poll_batch(consumer, poll, cancel).await {
        Ok(batch) => {
            backoff.reset();
            Some(batch)
        }
        Err(e) => {
            tracing::warn!(error = %e, attempt = backoff.attempts(), "kafka consume failed; retrying");
            on_error(&e);
            backoff.wait(cancel).await.then(Vec::new)
        }
    }
}

/// The offsets to commit after `batch`: per partition, one past the highest offset.
pub fn next_offsets(batch: &[InRecord]) -> BTreeMap<i32, i64> {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for r in batch {
        let e = next.entry(r.partition).or_insert(r.offset + 1);
        *e = (*e).max(r.offset + 1);
    }
    next
}

/// Commits (synchronously, off the async threads) the offsets after `batch` on `topic`.
pub async fn commit_batch<C: ConsumerContext + 'static>(
    consumer: &Arc<StreamConsumer<C>>,
    topic: &str,
    batch: &[InRecord],
) -> Result<(), KafkaError> {
    commit_offsets(consumer, topic, &next_offsets(batch), CommitMode::Sync).await
}

/// Commits `offsets` (partition -> next offset) on `topic`: `Sync` waits for the broker (off
/// the async threads), `Async` only enqueues the commit.
pub async fn commit_offsets<C: ConsumerContext + 'static>(
    consumer: &Arc<StreamConsumer<C>>,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
    mode: CommitMode,
) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in offsets {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))?;
    }
    if tpl.count() == 0 {
        return Ok(());
    }
    if matches!(mode, CommitMode::Async) {
        return consumer.commit(&tpl, CommitMode::Async);
    }
    let consumer = consumer.clone();
    match tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "commit task failed");
            Err(KafkaError::Canceled)
        }
    }
}

/// Copies a consumed message.
pub fn own<M: Message>(m: &M) -> InRecord {
    InRecord {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_offsets_are_one_past_the_highest_per_partition() {
        let r = |partition, offset| InRecord { partition, offset, key: None, payload: None };
        let next = next_offsets(&[r(0, 5), r(1, 2), r(0, 3), r(0, 9), r(1, 1)]);
        assert_eq!(next.into_iter().collect::<Vec<_>>(), vec![(0, 10), (1, 3)]);
        assert!(next_offsets(&[]).is_empty());
    }

    #[test]
    fn a_batch_is_full_at_its_record_count_or_its_byte_cap() {
        let poll = BatchPoll { max: 3, max_bytes: 1_000, linger: Duration::ZERO, first_wait: None };
        let rec = |n: usize| InRecord {
            partition: 0,
            offset: 0,
            key: Some(vec![0; 10]),
            payload: Some(vec![0; n]),
        };
        let mut by_count = Fill::default();
        for _ in 0..3 {
            assert!(!by_count.full(&poll));
            by_count.add(&rec(1));
        }
        assert!(by_count.full(&poll), "three records");
        let mut by_bytes = Fill::default();
        by_bytes.add(&rec(600));
        assert!(!by_bytes.full(&poll), "610 bytes");
        by_bytes.add(&rec(400));
        assert!(by_bytes.full(&poll), "1,020 bytes reach the cap before the third record");
        let mut huge = Fill::default();
        huge.add(&rec(5_000_000));
        assert!(huge.full(&poll), "one record over the cap is a batch of its own");
        let mut tombstones = Fill::default();
        tombstones.add(&InRecord { partition: 0, offset: 0, key: None, payload: None });
        assert_eq!(tombstones.bytes, 0);
    }
}
