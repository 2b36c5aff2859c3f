//! Producing records and waiting until the broker has them: the one path every workload's
//! outputs and dead letters take.
//!
//! [`send`] hands one record to the producer, waiting while librdkafka's queue is full;
//! [`await_deliveries`] collects the delivery reports of records already sent; and
//! [`send_all_acked`] does both for a whole set, re-sending what failed with [`Backoff`] until
//! every record is acknowledged (or the caller cancels). A workload commits its input offsets
//! only after that, so nothing it read is lost when the broker has a bad moment.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

use crate::Backoff;

/// One record to produce, borrowed from wherever the caller keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Destination topic.
    pub topic: &'a str,
    /// Key, if any.
    pub key: Option<&'a [u8]>,
    /// Payload.
    pub payload: &'a [u8],
    /// Headers, in order.
    pub headers: &'a [(&'static str, String)],
}

/// Records [`send_each`] hands over between two yields to the other tasks on the thread.
const YIELD_EVERY: usize = 500;

/// How long to wait before offering a record again while the producer's queue is full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(2);

/// Hands `record` to the producer (waiting while its queue is full); the future resolves with
/// the broker's acknowledgement or the delivery error.
pub async fn send(
    producer: &FutureProducer,
    record: RecordRef<'_>,
) -> Result<DeliveryFuture, KafkaError> {
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (k, v) in record.headers {
        headers = headers.insert(Header { key: k, value: Some(v.as_bytes()) });
    }
    let mut out: FutureRecord<'_, [u8], [u8]> =
        FutureRecord::to(record.topic).payload(record.payload).headers(headers);
    if let Some(k) = record.key {
        out = out.key(k);
    }
    loop {
        match producer.send_result(out) {
            Ok(f) => return Ok(f),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                out = back;
                tokio::time::sleep(QUEUE_FULL_PAUSE).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Records that were not acknowledged, and why the first of them failed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Failed<T> {
    /// The items whose record was not acknowledged, in the order they were sent.
    pub items: Vec<T>,
    /// The first error seen (the producer's, or "delivery report lost").
    pub first_error: Option<String>,
}

impl<T> Failed<T> {
    /// Nothing failed.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Notes that `item` failed with `error` (kept if it is the first).
    pub fn push(&mut self, item: T, error: impl FnOnce() -> String) {
        if self.first_error.is_none() {
            self.first_error = Some(error());
        }
        self.items.push(item);
    }
}

/// Sends the record of every item (`record` says what it is), yielding to the other tasks of
/// the thread every few hundred records; the items that could not even
/// be handed to the producer are in the returned [`Failed`], the rest come with their
/// delivery future, for [`await_deliveries`].
pub async fn send_each<'a, T: Copy>(
    producer: &FutureProducer,
    items: impl IntoIterator<Item = T>,
    record: impl Fn(T) -> RecordRef<'a>,
) -> (Vec<(T, DeliveryFuture)>, Failed<T>) {
    let items = items.into_iter();
    let mut sent = Vec::with_capacity(items.size_hint().0);
    let mut failed = Failed { items: Vec::new(), first_error: None };
    for (i, item) in items.enumerate() {
        match send(producer, record(item)).await {
            Ok(f) => sent.push((item, f)),
            Err(e) => failed.push(item, || e.to_string()),
        }
        if i % YIELD_EVERY == YIELD_EVERY - 1 {
            // Let the other tasks of the thread run (e.g. one waiting for a Redis reply).
            tokio::task::yield_now().await;
        }
    }
    (sent, failed)
}

/// Waits for the delivery reports of records already handed to the producer; the item of
/// every record that was not acknowledged goes to `failed`.
pub async fn await_deliveries<T>(deliveries: Vec<(T, DeliveryFuture)>, failed: &mut Failed<T>) {
    let (items, reports): (Vec<T>, Vec<_>) = deliveries.into_iter().unzip();
    for (item, report) in items.into_iter().zip(futures::future::join_all(reports).await) {
        match report {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => failed.push(item, || e.to_string()),
            Err(_) => failed.push(item, || "delivery report lost".to_string()),
        }
    }
}

/// Sends the record of every item and waits until the broker has acknowledged all of them,
/// re-sending the failed ones after each `backoff` delay. `on_retry` hears of every round that
/// left failures (to log, count and mark the workload unready). `false` if `cancel` fired
/// before everything was acknowledged.
pub async fn send_all_acked<'a, T: Copy>(
    producer: &FutureProducer,
    items: impl IntoIterator<Item = T>,
    record: impl Fn(T) -> RecordRef<'a>,
    mut backoff: Backoff,
    cancel: &CancellationToken,
    mut on_retry: impl FnMut(&Failed<T>),
) -> bool {
    let mut pending: Vec<T> = items.into_iter().collect();
    loop {
        let (sent, mut failed) = send_each(producer, pending.iter().copied(), &record).await;
        await_deliveries(sent, &mut failed).await;
        if failed.is_empty() {
            return true;
        }
        on_retry(&failed);
        pending = failed.items;
        if !backoff.wait(cancel).await {
            return false;
        }
    }
}
