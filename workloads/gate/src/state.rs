//! The gate's state in Redis, applied one batch at a time by a Lua script (`EVALSHA`).
//!
//! # Keys
//!
//! With the configured prefix `P` (default `shopstream:gate`), all keys share the hash tag
//! `{P}` so that a Redis Cluster keeps them in one slot (a script may only touch one slot):
//!
//! | key | type | content |
//! |---|---|---|
//! | `{P}:bloom` | RedisBloom filter | users that passed at least once |
//! | `{P}:users` | HyperLogLog | every user with a counted session |
//! | `{P}:sessions-per-user` | hash | `userId` -> number of distinct sessions |
//! | `{P}:verdicts:<YYYY-MM-DD>` | hash | `sessionId` -> `v` or `s:<reason>`, per session day |
//!
//! A verdict hash is keyed by the day of the session's own `sessionTimestamp`, so a replay
//! finds it again, and it expires `verdict_ttl` after its last write (0 keeps it forever). The
//! replay guarantee holds while the verdicts are kept: set the TTL above the retention of the
//! raw topic. Redis must persist (AOF) in production: a Redis that loses its data forgets the
//! users and verdicts like any other store would.
//!
//! # Atomicity
//!
//! One script call per batch reads the recorded verdicts, the Bloom filter, decides in order
//! and writes everything. Redis runs a script without interleaving other commands, and the
//! script checks every key's type before its first write, so a batch is applied completely or
//! not at all. A script whose reply is lost (connection dropped after it ran) is simply run
//! again: the second run finds the verdicts recorded and changes nothing.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};
use shopstream_clients::RedisArgs;
use thiserror::Error;

use crate::rules::{Risk, Verdict};

const SCRIPT: &str = include_str!("gate.lua");

/// Errors of the Redis side.
#[derive(Debug, Error)]
pub enum StateError {
    /// Redis could not be reached or the command failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The Redis settings (URL, TLS, credential files) are invalid.
    #[error(transparent)]
    Settings(#[from] shopstream_clients::ClientError),
    /// The script replied with something that is not a verdict.
    #[error("redis script returned an unexpected reply: {0}")]
    BadReply(String),
}

/// Bloom filter sizing and verdict retention.
#[derive(Debug, Clone, PartialEq)]
pub struct StateConfig {
    /// Key prefix `P` (keys are `{P}:…`).
    pub prefix: String,
    /// Bloom filter false-positive rate, in (0, 1).
    pub bloom_error_rate: f64,
    /// Bloom filter capacity (users) before it grows a new layer.
    pub bloom_capacity: u64,
    /// How long a verdict hash lives after its last write; zero keeps it forever.
    pub verdict_ttl: Duration,
}

/// One session's input to the batch script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem<'a> {
    /// The session id (borrowed from the record's bytes where it can be).
    pub session_id: Cow<'a, str>,
    /// The user id (borrowed from the record's bytes where it can be).
    pub user_id: Cow<'a, str>,
    /// The session's risk under the rule, if any.
    pub risk: Option<Risk>,
    /// The session's day, `YYYY-MM-DD` (selects the verdict hash; shared by the sessions of
    /// one day).
    pub day: std::sync::Arc<str>,
}

/// The script's answer for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The verdict (recorded earlier when `replayed`).
    pub verdict: Verdict,
    /// The sessionId had a recorded verdict (a replay or a duplicate): nothing was counted.
    pub replayed: bool,
}

/// Names of the gate's keys under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The Bloom filter of known users.
    pub bloom: String,
    /// The HyperLogLog of unique users.
    pub users: String,
    /// The hash of session counts per user.
    pub sessions_per_user: String,
    verdict_prefix: String,
}

impl Keys {
    /// The keys under prefix `P`.
    pub fn new(prefix: &str) -> Keys {
        Keys {
            bloom: format!("{{{prefix}}}:bloom"),
            users: format!("{{{prefix}}}:users"),
            sessions_per_user: format!("{{{prefix}}}:sessions-per-user"),
            verdict_prefix: format!("{{{prefix}}}:verdicts:"),
        }
    }

    /// The verdict hash of one day (`YYYY-MM-DD`).
    pub fn verdicts(&self, day: &str) -> String {
        format!("{}{day}", self.verdict_prefix)
    }
}

/// Builds the script call of a batch ahead of running it: the call owns its bytes, so the
/// batch's records need not outlive it, and it can be handed to the task that talks to Redis
/// (the gate parses the next batch while Redis decides this one).
#[derive(Debug, Clone)]
pub struct BatchEncoder {
    keys: Keys,
    hash: String,
    config: StateConfig,
}

/// One batch's script call (`EVALSHA`), ready to run with [`GateState::apply_prepared`].
#[derive(Debug, Clone)]
pub struct BatchCall {
    cmd: redis::Cmd,
    sessions: usize,
}

impl BatchCall {
    /// Sessions in the call.
    pub fn sessions(&self) -> usize {
        self.sessions
    }
}

impl BatchEncoder {
    /// The call that decides and records `items` (see the script's header for the layout).
    pub fn encode(&self, items: &[&BatchItem<'_>]) -> BatchCall {
        // Verdict hashes: one KEYS entry per distinct day, from KEYS[4]; `slot` is the day's
        // position among them.
        let mut days: Vec<&str> = Vec::with_capacity(4);
        let mut slot = Vec::with_capacity(items.len());
        for item in items {
            let i = match days.iter().position(|d| *d == &*item.day) {
                Some(i) => i,
                None => {
                    days.push(&item.day);
                    days.len() - 1
                }
            };
            slot.push(i);
        }
        let id_bytes: usize = items.iter().map(|i| i.session_id.len() + i.user_id.len() + 20).sum();
        let mut cmd = redis::Cmd::with_capacity(8 + days.len() + 3 * items.len(), 256 + id_bytes);
        cmd.arg("EVALSHA").arg(&self.hash).arg(3 + days.len());
        cmd.arg(&self.keys.bloom).arg(&self.keys.users).arg(&self.keys.sessions_per_user);
        for day in &days {
            cmd.arg(self.keys.verdicts(day));
        }
        cmd.arg(self.config.verdict_ttl.as_secs())
            .arg(self.config.bloom_error_rate)
            .arg(self.config.bloom_capacity)
            .arg(items.len());
        for (item, slot) in items.iter().zip(slot) {
            cmd.arg(&*item.session_id).arg(&*item.user_id).arg(4 * slot + risk_bits(item.risk));
        }
        BatchCall { cmd, sessions: items.len() }
    }
}

/// The script's risk codes: `RISKS[b - 1]` is the risk with bits `b` (1 unknown device,
/// 2 unknown referrer, 3 both); 0 is a clean session.
const RISKS: [Risk; 3] =
    [Risk::UnknownDevice, Risk::UnknownReferrer, Risk::UnknownDeviceAndReferrer];

/// A risk as the script's bits (see [`RISKS`]).
fn risk_bits(risk: Option<Risk>) -> usize {
    risk.and_then(|r| RISKS.iter().position(|x| *x == r)).map_or(0, |i| i + 1)
}

/// The script's reply: one integer per session, the verdict's risk bits (0: valid), plus 4
/// when the verdict was recorded before.
fn decode_reply(reply: &[i64], sessions: usize) -> Result<Vec<Decision>, StateError> {
    if reply.len() != sessions {
        return Err(StateError::BadReply(format!(
            "{} verdicts for {} sessions",
            reply.len(),
            sessions
        )));
    }
    reply
        .iter()
        .map(|&v| {
            let verdict = match usize::try_from(v & !4) {
                Ok(0) => Verdict::Valid,
                Ok(bits) => match RISKS.get(bits - 1) {
                    Some(&risk) => Verdict::Suspicious(risk),
                    None => return Err(StateError::BadReply(v.to_string())),
                },
                Err(_) => return Err(StateError::BadReply(v.to_string())),
            };
            Ok(Decision { verdict, replayed: v & 4 != 0 })
        })
        .collect()
}

/// A connection to the gate's state.
pub struct GateState {
    client: Client,
    con: Option<MultiplexedConnection>,
    script: Script,
    config: StateConfig,
    keys: Keys,
}

impl std::fmt::Debug for GateState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateState").field("keys", &self.keys).finish_non_exhaustive()
    }
}

impl GateState {
    /// Prepares a client for the Redis `redis` names, with its TLS and credentials (nothing
    /// is contacted yet).
    pub fn new(redis: &RedisArgs, config: StateConfig) -> Result<GateState, StateError> {
        let client = redis.client()?;
        let keys = Keys::new(&config.prefix);
        Ok(GateState { client, con: None, script: Script::new(SCRIPT), config, keys })
    }

    /// The key names.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    async fn con(&mut self) -> Result<&mut MultiplexedConnection, StateError> {
        if self.con.is_none() {
            let cfg = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(Duration::from_secs(30)));
            let con = self.client.get_multiplexed_async_connection_with_config(&cfg).await?;
            self.con = Some(con);
        }
        match self.con.as_mut() {
            Some(con) => Ok(con),
            None => unreachable!("connection was just set"),
        }
    }

    fn on_error<T>(&mut self, r: Result<T, StateError>) -> Result<T, StateError> {
        if let Err(StateError::Redis(e)) = &r
            && (e.is_io_error()
                || e.is_connection_dropped()
                || e.is_timeout()
                || e.is_unrecoverable_error())
        {
            self.con = None;
        }
        r
    }

    /// Creates the Bloom filter with the configured error rate and capacity if it does not
    /// exist yet, loads the script, and checks that the module answers. Call at start-up.
    pub async fn init(&mut self) -> Result<(), StateError> {
        let r = self.init_inner().await;
        self.on_error(r)
    }

    async fn init_inner(&mut self) -> Result<(), StateError> {
        let bloom = self.keys.bloom.clone();
        let (rate, cap) = (self.config.bloom_error_rate, self.config.bloom_capacity);
        let script = self.script.clone();
        let con = self.con().await?;
        let exists: bool = redis::cmd("EXISTS").arg(&bloom).query_async(con).await?;
        if !exists {
            let r: Result<(), _> =
                redis::cmd("BF.RESERVE").arg(&bloom).arg(rate).arg(cap).query_async(con).await;
            match r {
                Ok(()) => {
                    tracing::info!(key = %bloom, rate, capacity = cap, "reserved Bloom filter")
                }
                // Another replica reserved it in between.
                Err(e) if e.to_string().contains("exists") => {}
                Err(e) => return Err(e.into()),
            }
        }
        let _: redis::Value = redis::cmd("BF.INFO").arg(&bloom).query_async(con).await?;
        script.load_async(con).await?;
        Ok(())
    }

    /// Decides and records one batch atomically; returns one decision per item, in order.
    pub async fn apply(&mut self, items: &[&BatchItem<'_>]) -> Result<Vec<Decision>, StateError> {
        let call = self.encoder().encode(items);
        self.apply_prepared(&call).await
    }

    /// What builds this state's script calls (cheap to clone; for another task).
    pub fn encoder(&self) -> BatchEncoder {
        BatchEncoder {
            keys: self.keys.clone(),
            hash: self.script.get_hash().to_string(),
            config: self.config.clone(),
        }
    }

    /// Runs a script call built by [`BatchEncoder::encode`] (loading the script if Redis lost
    /// it); one decision per session, in order.
    pub async fn apply_prepared(&mut self, call: &BatchCall) -> Result<Vec<Decision>, StateError> {
        if call.sessions == 0 {
            return Ok(Vec::new());
        }
        let r = self.apply_inner(call).await;
        self.on_error(r)
    }

    async fn apply_inner(&mut self, call: &BatchCall) -> Result<Vec<Decision>, StateError> {
        let script = self.script.clone();
        let con = self.con().await?;
        let reply: Vec<i64> = match call.cmd.query_async(con).await {
            Ok(r) => r,
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                // Redis restarted (or flushed its scripts) since `init`.
                script.load_async(con).await?;
                call.cmd.query_async(con).await?
            }
            Err(e) => return Err(e.into()),
        };
        decode_reply(&reply, call.sessions)
    }

    /// The HyperLogLog's estimate of unique users.
    pub async fn unique_users(&mut self) -> Result<u64, StateError> {
        let key = self.keys.users.clone();
        let r = async { Ok(redis::cmd("PFCOUNT").arg(&key).query_async(self.con().await?).await?) }
            .await;
        self.on_error(r)
    }

    /// The verdict recorded for `session_id` on `day` (the session's date, `YYYY-MM-DD`), or
    /// `None` if the session was never decided (or its day's verdicts expired).
    pub async fn recorded_verdict(
        &mut self,
        day: &str,
        session_id: &str,
    ) -> Result<Option<Verdict>, StateError> {
        let key = self.keys.verdicts(day);
        let r: Result<Option<String>, StateError> = async {
            Ok(redis::cmd("HGET").arg(&key).arg(session_id).query_async(self.con().await?).await?)
        }
        .await;
        Ok(self.on_error(r)?.as_deref().and_then(Verdict::decode))
    }

    /// Sessions counted per user.
    pub async fn sessions_per_user(&mut self) -> Result<HashMap<String, u64>, StateError> {
        let key = self.keys.sessions_per_user.clone();
        let r = async { Ok(redis::cmd("HGETALL").arg(&key).query_async(self.con().await?).await?) }
            .await;
        self.on_error(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn args(call: &BatchCall) -> Vec<String> {
        call.cmd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => "<not a plain argument>".into(),
            })
            .collect()
    }

    #[test]
    fn a_batch_call_numbers_one_verdict_key_per_day_in_first_seen_order() {
        let config = StateConfig {
            prefix: "p".into(),
            bloom_error_rate: 0.01,
            bloom_capacity: 1000,
            verdict_ttl: Duration::from_secs(60),
        };
        let state = GateState::new(&RedisArgs::for_url("redis://127.0.0.1:1"), config).unwrap();
        let (d1, d2): (Arc<str>, Arc<str>) = ("2026-11-02".into(), "2026-11-01".into());
        let item = |s: &'static str, u: &'static str, risk, day: &Arc<str>| BatchItem {
            session_id: s.into(),
            user_id: u.into(),
            risk,
            day: day.clone(),
        };
        let items = [
            item("s1", "u1", None, &d1),
            item("s2", "u2", Some(Risk::UnknownDevice), &d2),
            item("s3", "u1", None, &d1),
        ];
        let refs: Vec<&BatchItem<'_>> = items.iter().collect();
        let call = state.encoder().encode(&refs);
        assert_eq!(call.sessions(), 3);
        let hash = Script::new(SCRIPT).get_hash().to_string();
        // Tags: 4 * (day position) + risk bits (1: unknown device).
        #[rustfmt::skip]
        let want = [
            "EVALSHA", &hash, "5",
            "{p}:bloom", "{p}:users", "{p}:sessions-per-user",
            "{p}:verdicts:2026-11-02", "{p}:verdicts:2026-11-01",
            "60", "0.01", "1000", "3",
            "s1", "u1", "0",
            "s2", "u2", "5",
            "s3", "u1", "0",
        ];
        assert_eq!(args(&call), want);
        assert_eq!(state.encoder().encode(&[]).sessions(), 0);
    }

    #[test]
    fn risk_bits_are_the_scripts_codes() {
        // gate.lua stores risk bits b as STORED[b] (valid as 'v'): the same text as
        // `Verdict::encode`, so verdicts recorded by either read back alike.
        let table = SCRIPT.split("local STORED = {").nth(1).unwrap().split('}').next().unwrap();
        let stored: Vec<&str> = table.split('\'').skip(1).step_by(2).collect();
        assert_eq!(stored.len(), RISKS.len());
        assert_eq!(risk_bits(None), 0);
        for (risk, text) in RISKS.into_iter().zip(stored) {
            assert_eq!(text, Verdict::Suspicious(risk).encode(), "{risk:?}");
            let bits = risk_bits(Some(risk));
            assert_eq!(
                decode_reply(&[bits as i64], 1).unwrap()[0].verdict,
                Verdict::Suspicious(risk)
            );
            assert!(SCRIPT.contains(&format!("[STORED[{bits}]] = {}", bits + 4)), "{risk:?}");
        }
    }

    #[test]
    fn replies_decode_in_order_and_bad_ones_are_errors() {
        let d = decode_reply(&[0, 4, 3, 6], 4).unwrap();
        let s = |r| Verdict::Suspicious(r);
        assert_eq!(
            d,
            [
                Decision { verdict: Verdict::Valid, replayed: false },
                Decision { verdict: Verdict::Valid, replayed: true },
                Decision { verdict: s(Risk::UnknownDeviceAndReferrer), replayed: false },
                Decision { verdict: s(Risk::UnknownReferrer), replayed: true },
            ]
        );
        assert!(matches!(decode_reply(&[0], 2), Err(StateError::BadReply(_))));
        assert!(matches!(decode_reply(&[8], 1), Err(StateError::BadReply(_))));
        assert!(matches!(decode_reply(&[-1], 1), Err(StateError::BadReply(_))));
    }
}
