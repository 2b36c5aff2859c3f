//! `shopstream summarize`: read sessions back from a topic and print what arrived.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use shopstream_kafka::KafkaArgs;
use shopstream_kafka::rdkafka::Message;
use shopstream_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use shopstream_schema::{Session, parse_session};

/// Settings of `shopstream summarize`.
#[derive(Debug, Clone, clap::Args)]
pub struct SummarizeArgs {
    /// Topic to read from the beginning.
    #[arg(long, env = "SHOPSTREAM_TOPIC_RAW")]
    pub topic: String,
    /// Stop after this many seconds without a new record.
    #[arg(long, default_value_t = 5)]
    pub idle_seconds: u64,
    /// Stop after this many records.
    #[arg(long)]
    pub max: Option<u64>,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// What a topic holds.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Records read.
    pub records: u64,
    /// Records that are valid sessions.
    pub valid: u64,
    /// Records rejected by the schema, by reason code.
    pub invalid: BTreeMap<String, u64>,
    /// Distinct session ids among the valid records.
    pub unique_sessions: u64,
    /// Distinct users among the valid records.
    pub unique_users: u64,
    /// Sessions that ended in a purchase.
    pub purchases: u64,
    /// Sum of `amountSpent`.
    pub revenue: u64,
    /// Sessions by referrer.
    pub by_referrer: BTreeMap<String, u64>,
    /// Sessions by device type.
    pub by_device: BTreeMap<String, u64>,
    /// First and last session timestamp.
    pub time_range: Option<(String, String)>,
    #[serde(skip)]
    sessions: HashSet<String>,
    #[serde(skip)]
    users: HashSet<String>,
}

impl Summary {
    /// Counts one record (raw bytes as they came from the topic).
    pub fn add(&mut self, bytes: &[u8]) {
        self.records += 1;
        match parse_session(bytes) {
            Ok(s) => self.add_session(&s),
            Err(e) => *self.invalid.entry(e.reason().to_string()).or_default() += 1,
        }
    }

    fn add_session(&mut self, s: &Session) {
        self.valid += 1;
        if self.sessions.insert(s.session_id.clone()) {
            self.unique_sessions += 1;
        }
        if self.users.insert(s.user_id.clone()) {
            self.unique_users += 1;
        }
        if s.purchase_made {
            self.purchases += 1;
            self.revenue += s.amount_spent;
        }
        *self.by_referrer.entry(s.referrer.to_string()).or_default() += 1;
        *self.by_device.entry(s.device_information.device_type.to_string()).or_default() += 1;
        let t = s.session_timestamp.format(shopstream_schema::TIMESTAMP_FORMAT).to_string();
        self.time_range = Some(match self.time_range.take() {
            None => (t.clone(), t),
            Some((a, b)) => (a.min(t.clone()), b.max(t)),
        });
    }

    /// A human-readable table.
    pub fn table(&self, topic: &str) -> String {
        let mut out = format!("topic {topic}\n");
        let rate =
            |n: u64| if self.valid == 0 { 0.0 } else { 100.0 * n as f64 / self.valid as f64 };
        out += &format!("  records           {:>10}\n", self.records);
        out += &format!("  valid sessions    {:>10}\n", self.valid);
        for (reason, n) in &self.invalid {
            out += &format!("  invalid ({reason}) {n:>10}\n");
        }
        out += &format!("  unique sessions   {:>10}\n", self.unique_sessions);
        out += &format!("  unique users      {:>10}\n", self.unique_users);
        out += &format!(
            "  purchases         {:>10}  ({:.1}%)\n",
            self.purchases,
            rate(self.purchases)
        );
        out += &format!("  revenue           {:>10}\n", self.revenue);
        for (k, n) in &self.by_referrer {
            out += &format!("  referrer {k:<12} {n:>7}  ({:.1}%)\n", rate(*n));
        }
        for (k, n) in &self.by_device {
            out += &format!("  device {k:<14} {n:>7}  ({:.1}%)\n", rate(*n));
        }
        if let Some((a, b)) = &self.time_range {
            out += &format!("  time range        {a} .. {b}\n");
        }
        out
    }
}

/// Reads the topic from the beginning (a fresh consumer group) until it is idle.
pub async fn run(args: SummarizeArgs) -> anyhow::Result<()> {
    let group = format!("shopstream-summarize-{}", uuid::Uuid::new_v4().simple());
    let consumer: StreamConsumer = args.kafka.consumer(&group, "shopstream-summarize")?;
    consumer.subscribe(&[&args.topic]).with_context(|| format!("subscribing to {}", args.topic))?;
    let mut summary = Summary::default();
    let idle = Duration::from_secs(args.idle_seconds);
    // The first records wait for the group join; allow for it.
    let mut wait = idle.max(Duration::from_secs(20));
    while args.max.is_none_or(|m| summary.records < m) {
        match tokio::time::timeout(wait, consumer.recv()).await {
            Err(_) => break,
            Ok(Err(e)) => return Err(e).context("reading the topic"),
            Ok(Ok(message)) => {
                summary.add(message.payload().unwrap_or_default());
                wait = idle;
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.table(&args.topic));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopstream_generator::{Generator, GeneratorConfig};

    #[test]
    fn counts_valid_and_invalid_records() {
        let mut summary = Summary::default();
        let sessions: Vec<_> =
            Generator::new(GeneratorConfig { seed: 4, users: 50, ..Default::default() })
                .expect("generator")
                .take(400)
                .collect();
        for g in &sessions {
            summary.add(g.session.to_json().as_bytes());
        }
        summary.add(sessions[0].session.to_json().as_bytes());
        summary.add(b"{not json");
        summary.add(&[0xff, 0xfe]);
        let users: HashSet<_> = sessions.iter().map(|g| g.session.user_id.clone()).collect();
        let purchases = sessions.iter().filter(|g| g.session.purchase_made).count() as u64;
        let revenue: u64 = sessions.iter().map(|g| g.session.amount_spent).sum();
        assert_eq!(summary.records, 403);
        assert_eq!(summary.valid, 401);
        assert_eq!(summary.unique_sessions, 400);
        assert_eq!(summary.unique_users, users.len() as u64);
        assert_eq!(summary.purchases, purchases + u64::from(sessions[0].session.purchase_made));
        assert_eq!(summary.revenue, revenue + sessions[0].session.amount_spent);
        assert_eq!(summary.invalid.get("malformed_json"), Some(&1));
        assert_eq!(summary.invalid.get("invalid_utf8"), Some(&1));
        assert_eq!(summary.by_referrer.values().sum::<u64>(), 401);
        assert!(summary.table("t").contains("unique users"));
    }
}
