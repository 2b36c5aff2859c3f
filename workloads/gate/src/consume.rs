//! Batch consumption with manual commits, shared by the gate and the sink.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::outputs::InRecord;

/// Up to `max` records: waits for the first one (at most `first_wait` if given; until
/// cancellation otherwise, giving an empty batch), then takes whatever arrives within `linger`.
pub async fn poll_batch(
    consumer: &StreamConsumer,
    max: usize,
    linger: Duration,
    first_wait: Option<Duration>,
    cancel: &CancellationToken,
) -> Result<Vec<InRecord>, KafkaError> {
    let mut batch = Vec::new();
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
    batch.push(own(&first));
    drop(first);
    let linger = tokio::time::sleep(linger);
    tokio::pin!(linger);
    while batch.len() < max {
        tokio::select! {
            biased;
            m = consumer.recv() => match m {
                Ok(m) => batch.push(own(&m)),
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
pub async fn commit_batch(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
    batch: &[InRecord],
) -> Result<(), KafkaError> {
    commit_offsets(consumer, topic, &next_offsets(batch), CommitMode::Sync).await
}

/// Commits `offsets` (partition -> next offset) on `topic`: `Sync` waits for the broker (off
/// the async threads), `Async` only enqueues the commit.
pub async fn commit_offsets(
    consumer: &Arc<StreamConsumer>,
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
}
