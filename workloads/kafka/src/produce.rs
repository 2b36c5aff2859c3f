//! Producing records and waiting until the broker has them: the one path every workload's
//! outputs and dead letters take.
//!
//! [`send`] hands one record to the producer, waiting while librdkafka's queue is full;
//! [`await_deliveries`] collects the delivery reports of records already sent; and
//! [`send_all_acked`] does both for a whole set, re-sending what failed with [`Backoff`] until
//! every record is acknowledged (or the caller cancels). A workload commits its input offsets
//! only after that, so nothing it read is lost when the broker has a bad moment.
//!
//! Two producers do this. A [`FutureProducer`] gives one future per record (a channel, a boxed
//! sender and a wake-up each). An [`AckProducer`] counts a whole batch's acknowledgements in
//! its context instead ([`send_counted`], [`Acks`]): one small box and one atomic decrement
//! per record, one wake-up per batch. The gate, which produces every record it reads, uses
//! the latter ([`send_all_acked`] takes either, as an [`AnyProducer`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryFuture, DeliveryResult, FutureProducer, FutureRecord, ProducerContext,
    ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::Notify;
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
    let headers = headers(&record);
    let mut out: FutureRecord<'_, [u8], [u8]> =
        FutureRecord::to(record.topic).payload(record.payload).headers(headers);
    if let Some(k) = record.key {
        out = out.key(k);
    }
    // rdkafka's own shape: a refused record comes back with the error (rdkafka allows the
    // lint on these methods too).
    #[allow(clippy::result_large_err)]
    let try_send = |r| producer.send_result(r);
    offer(out, try_send).await
}

/// Offers `record` to a producer with `try_send`, pausing while the producer's queue is full
/// (the record comes back to be offered again); any other refusal is the error.
async fn offer<R, T>(
    mut record: R,
    mut try_send: impl FnMut(R) -> Result<T, (KafkaError, R)>,
) -> Result<T, KafkaError> {
    loop {
        match try_send(record) {
            Ok(sent) => return Ok(sent),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(QUEUE_FULL_PAUSE).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

fn headers(record: &RecordRef<'_>) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (k, v) in record.headers {
        headers = headers.insert(Header { key: k, value: Some(v.as_bytes()) });
    }
    headers
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

/// A producer [`send_all_acked`] can use: a [`FutureProducer`] (a delivery future per record)
/// or an [`AckProducer`] (delivery reports counted per batch).
#[derive(Clone, Copy)]
pub enum AnyProducer<'p> {
    /// Delivery futures.
    Future(&'p FutureProducer),
    /// Counted delivery reports.
    Counted(&'p AckProducer),
}

impl<'p> From<&'p FutureProducer> for AnyProducer<'p> {
    fn from(p: &'p FutureProducer) -> Self {
        AnyProducer::Future(p)
    }
}

impl<'p> From<&'p AckProducer> for AnyProducer<'p> {
    fn from(p: &'p AckProducer) -> Self {
        AnyProducer::Counted(p)
    }
}

/// Sends the record of every item and waits until the broker has acknowledged all of them,
/// re-sending the failed ones after each `backoff` delay. `on_retry` hears of every round that
/// left failures (to log, count and mark the workload unready). `false` if `cancel` fired
/// before everything was acknowledged.
pub async fn send_all_acked<'a, 'p, T: Copy>(
    producer: impl Into<AnyProducer<'p>>,
    items: impl IntoIterator<Item = T>,
    record: impl Fn(T) -> RecordRef<'a>,
    backoff: Backoff,
    cancel: &CancellationToken,
    on_retry: impl FnMut(&Failed<T>),
) -> bool {
    let producer = producer.into();
    let record = &record;
    let round = move |pending: Vec<T>| async move {
        match producer {
            AnyProducer::Future(p) => {
                let (sent, mut failed) = send_each(p, pending, record).await;
                await_deliveries(sent, &mut failed).await;
                failed
            }
            AnyProducer::Counted(p) => send_counted(p, pending, record).await.wait().await,
        }
    };
    until_acked(items, round, backoff, cancel, on_retry).await
}

/// Runs `round` (send, then wait for the reports) on the items until none fails, with
/// `backoff` between rounds; `false` if cancelled first.
async fn until_acked<T, R: Future<Output = Failed<T>>>(
    items: impl IntoIterator<Item = T>,
    mut round: impl FnMut(Vec<T>) -> R,
    mut backoff: Backoff,
    cancel: &CancellationToken,
    mut on_retry: impl FnMut(&Failed<T>),
) -> bool {
    let mut pending: Vec<T> = items.into_iter().collect();
    loop {
        let failed = round(pending).await;
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

/// A producer whose delivery reports are counted per batch by its context (see the module
/// docs); made by [`crate::KafkaArgs::ack_producer`]. Its own thread polls librdkafka.
pub type AckProducer = ThreadedProducer<AckContext>;

/// The context of an [`AckProducer`]: every delivery report counts towards its batch.
#[derive(Debug, Default, Clone, Copy)]
pub struct AckContext;

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<Ack>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Box<Ack>) {
        if let Err((e, _)) = result {
            ack.batch.fail(ack.item, || e.to_string());
        }
        ack.batch.done_one();
    }
}

/// What a record sent by [`send_counted`] carries to its delivery report.
#[derive(Debug)]
pub struct Ack {
    batch: Arc<AckState>,
    item: usize,
}

#[derive(Debug)]
struct AckState {
    /// Records not yet reported, plus one while the batch is still being sent.
    pending: AtomicUsize,
    /// Positions of the records that failed, and the first error.
    failed: Mutex<Failed<usize>>,
    done: Notify,
}

impl AckState {
    fn fail(&self, item: usize, error: impl FnOnce() -> String) {
        // A poisoned lock only means another report panicked; the list is still sound.
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.push(item, error);
    }

    fn done_one(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // `notify_one` keeps the wake-up if nobody waits yet.
            self.done.notify_one();
        }
    }
}

/// The delivery reports of a batch sent with [`send_counted`].
#[derive(Debug)]
pub struct Acks<T> {
    items: Vec<T>,
    state: Arc<AckState>,
}

impl<T: Copy> Acks<T> {
    /// Every record of the batch has its delivery report.
    pub fn is_done(&self) -> bool {
        self.state.pending.load(Ordering::Acquire) == 0
    }

    /// Waits for every delivery report; the items whose record was not acknowledged (or could
    /// not be handed to the producer), in the order they were sent.
    pub async fn wait(self) -> Failed<T> {
        while !self.is_done() {
            self.state.done.notified().await;
        }
        let mut failed = self.state.failed.lock().unwrap_or_else(|p| p.into_inner());
        let mut positions = std::mem::take(&mut failed.items);
        positions.sort_unstable();
        Failed {
            items: positions.into_iter().map(|i| self.items[i]).collect(),
            first_error: failed.first_error.take(),
        }
    }
}

/// Hands the record of every item to an [`AckProducer`] (waiting while its queue is full, and
/// yielding to the other tasks every few hundred records); [`Acks::wait`] then gives the
/// items that were not acknowledged.
pub async fn send_counted<'a, T: Copy>(
    producer: &AckProducer,
    items: impl IntoIterator<Item = T>,
    record: impl Fn(T) -> RecordRef<'a>,
) -> Acks<T> {
    let items: Vec<T> = items.into_iter().collect();
    let state = Arc::new(AckState {
        pending: AtomicUsize::new(1),
        failed: Mutex::new(Failed::default()),
        done: Notify::new(),
    });
    for (i, item) in items.iter().enumerate() {
        state.pending.fetch_add(1, Ordering::AcqRel);
        let ack = Box::new(Ack { batch: state.clone(), item: i });
        if let Err(e) = send_base(producer, record(*item), ack).await {
            state.fail(i, || e.to_string());
            state.done_one();
        }
        if i % YIELD_EVERY == YIELD_EVERY - 1 {
            tokio::task::yield_now().await;
        }
    }
    // Release the hold that kept the count above zero while sending.
    state.done_one();
    Acks { items, state }
}

async fn send_base(
    producer: &AckProducer,
    record: RecordRef<'_>,
    ack: Box<Ack>,
) -> Result<(), KafkaError> {
    let headers = headers(&record);
    let mut out: BaseRecord<'_, [u8], [u8], Box<Ack>> =
        BaseRecord::with_opaque_to(record.topic, ack).payload(record.payload).headers(headers);
    if let Some(k) = record.key {
        out = out.key(k);
    }
    // rdkafka's own shape: a refused record comes back with the error (rdkafka allows the
    // lint on these methods too).
    #[allow(clippy::result_large_err)]
    let try_send = |r| producer.send(r);
    offer(out, try_send).await
}
