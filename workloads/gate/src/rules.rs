//! The gate's rule and its exact reference semantics, as pure functions.
//!
//! # The rule
//!
//! A session is *risky* when its `deviceInformation.deviceType` is `unknown`
//! ([`RuleConfig::flag_unknown_device`]) or its `referrer` is `unknown`
//! ([`RuleConfig::flag_unknown_referrer`]). A risky session from a user the gate does not know
//! yet is **suspicious**; every other session is **valid**. A user becomes *known* when one of
//! their sessions passes as valid: only users that passed are added to the Bloom filter, so a
//! user who keeps arriving with an unknown device stays suspicious until they show up once
//! with a clean session (after which all their sessions pass, as for any returning customer).
//!
//! Every schema-valid session (valid or suspicious) counts once towards its user's session
//! count and towards the unique-user HyperLogLog; a `sessionId` seen before (a replay, or a
//! producer's duplicate) keeps the verdict recorded the first time and counts nothing.
//!
//! [`reference()`] spells this out with exact sets; the Redis script implements the same with a
//! Bloom filter, so the two agree except for the filter's false positives (a new user wrongly
//! taken as known), whose rate is the configured error rate.

use std::collections::{HashMap, HashSet};

use shopstream_schema::{DeviceType, Referrer, Session, SessionView};

/// Which `unknown` values make a session risky.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleConfig {
    /// An `unknown` device type makes a session risky.
    pub flag_unknown_device: bool,
    /// An `unknown` referrer makes a session risky.
    pub flag_unknown_referrer: bool,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig { flag_unknown_device: true, flag_unknown_referrer: true }
    }
}

/// Why a session is risky; its [`Risk::code`] is the suspicious reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Risk {
    /// Unknown device type.
    UnknownDevice,
    /// Unknown referrer.
    UnknownReferrer,
    /// Both unknown.
    UnknownDeviceAndReferrer,
}

impl Risk {
    /// The stable reason code of a suspicious session with this risk (`new_user_…`).
    pub fn code(self) -> &'static str {
        match self {
            Risk::UnknownDevice => "new_user_unknown_device",
            Risk::UnknownReferrer => "new_user_unknown_referrer",
            Risk::UnknownDeviceAndReferrer => "new_user_unknown_device_and_referrer",
        }
    }

    /// The risk with this reason code, if any.
    pub fn from_code(code: &str) -> Option<Risk> {
        [Risk::UnknownDevice, Risk::UnknownReferrer, Risk::UnknownDeviceAndReferrer]
            .into_iter()
            .find(|r| r.code() == code)
    }
}

/// The risk of one session under the rule, or `None` for a clean session.
pub fn risk(session: &SessionView<'_>, rule: &RuleConfig) -> Option<Risk> {
    let device = rule.flag_unknown_device && session.device_type == DeviceType::Unknown;
    let referrer = rule.flag_unknown_referrer && session.referrer == Referrer::Unknown;
    match (device, referrer) {
        (true, true) => Some(Risk::UnknownDeviceAndReferrer),
        (true, false) => Some(Risk::UnknownDevice),
        (false, true) => Some(Risk::UnknownReferrer),
        (false, false) => None,
    }
}

/// The gate's decision for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Goes to the valid topic.
    Valid,
    /// Goes to the suspicious topic with this reason.
    Suspicious(Risk),
}

impl Verdict {
    /// The compact form stored in Redis: `v`, or `s:<reason code>`.
    pub fn encode(self) -> String {
        match self {
            Verdict::Valid => "v".to_string(),
            Verdict::Suspicious(r) => format!("s:{}", r.code()),
        }
    }

    /// Parses [`Verdict::encode`]'s form.
    pub fn decode(text: &str) -> Option<Verdict> {
        match text {
            "v" => Some(Verdict::Valid),
            _ => text.strip_prefix("s:").and_then(Risk::from_code).map(Verdict::Suspicious),
        }
    }

    /// The reason code (`valid` for a valid session).
    pub fn reason(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Suspicious(r) => r.code(),
        }
    }
}

/// What the exact reference computes over a sequence of sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferenceOutcome {
    /// Verdict per distinct `sessionId` (the first occurrence decides).
    pub verdicts: HashMap<String, Verdict>,
    /// Sessions counted per user (each distinct `sessionId` once).
    pub sessions_per_user: HashMap<String, u64>,
    /// Users with at least one counted session (what the HyperLogLog estimates).
    pub unique_users: HashSet<String>,
    /// Users that passed at least once (what the Bloom filter holds).
    pub known_users: HashSet<String>,
}

impl ReferenceOutcome {
    /// The `sessionId`s that pass (go to the valid topic).
    pub fn valid(&self) -> HashSet<String> {
        self.with(|v| v == Verdict::Valid)
    }

    /// The `sessionId`s flagged as suspicious.
    pub fn suspicious(&self) -> HashSet<String> {
        self.with(|v| v != Verdict::Valid)
    }

    fn with(&self, keep: impl Fn(Verdict) -> bool) -> HashSet<String> {
        self.verdicts.iter().filter(|(_, v)| keep(**v)).map(|(id, _)| id.clone()).collect()
    }
}

/// The gate's semantics with exact sets, over sessions in the order the gate sees them (for
/// one user that is the order of their partition, since records are keyed by `userId`).
pub fn reference<'a>(
    sessions: impl IntoIterator<Item = &'a Session>,
    rule: &RuleConfig,
) -> ReferenceOutcome {
    let mut out = ReferenceOutcome::default();
    for s in sessions {
        if out.verdicts.contains_key(&s.session_id) {
            continue;
        }
        let known = out.known_users.contains(&s.user_id);
        let verdict = match risk(&SessionView::of(s), rule) {
            Some(r) if !known => Verdict::Suspicious(r),
            _ => Verdict::Valid,
        };
        if verdict == Verdict::Valid {
            out.known_users.insert(s.user_id.clone());
        }
        *out.sessions_per_user.entry(s.user_id.clone()).or_default() += 1;
        out.unique_users.insert(s.user_id.clone());
        out.verdicts.insert(s.session_id.clone(), verdict);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Session {
        let line = include_str!("../tests/data/seed.jsonl").lines().next().unwrap();
        shopstream_schema::parse_session(line.as_bytes()).unwrap()
    }

    fn session(sid: &str, uid: &str, device: DeviceType, referrer: Referrer) -> Session {
        let mut s = sample();
        s.session_id = sid.into();
        s.user_id = uid.into();
        s.device_information.device_type = device;
        s.referrer = referrer;
        s
    }

    #[test]
    fn risk_follows_the_configured_fields() {
        let all = RuleConfig::default();
        let s = session("a", "u", DeviceType::Unknown, Referrer::Google);
        assert_eq!(risk(&SessionView::of(&s), &all), Some(Risk::UnknownDevice));
        let s2 = session("a", "u", DeviceType::Mobile, Referrer::Unknown);
        assert_eq!(risk(&SessionView::of(&s2), &all), Some(Risk::UnknownReferrer));
        let s3 = session("a", "u", DeviceType::Unknown, Referrer::Unknown);
        assert_eq!(risk(&SessionView::of(&s3), &all), Some(Risk::UnknownDeviceAndReferrer));
        assert_eq!(
            risk(&SessionView::of(&session("a", "u", DeviceType::Tablet, Referrer::Direct)), &all),
            None
        );
        let device_only = RuleConfig { flag_unknown_device: true, flag_unknown_referrer: false };
        assert_eq!(risk(&SessionView::of(&s2), &device_only), None);
        assert_eq!(risk(&SessionView::of(&s3), &device_only), Some(Risk::UnknownDevice));
    }

    #[test]
    fn verdict_codes_round_trip() {
        for v in [
            Verdict::Valid,
            Verdict::Suspicious(Risk::UnknownDevice),
            Verdict::Suspicious(Risk::UnknownReferrer),
            Verdict::Suspicious(Risk::UnknownDeviceAndReferrer),
        ] {
            assert_eq!(Verdict::decode(&v.encode()), Some(v));
        }
        assert_eq!(Verdict::decode("s:nonsense"), None);
        assert_eq!(Verdict::decode(""), None);
    }

    #[test]
    fn reference_flags_new_risky_users_until_they_pass_once() {
        use DeviceType::{Desktop, Mobile, Unknown};
        use Referrer::{Direct, Google, Unknown as NoRef};
        let seq = [
            session("1", "alice", Unknown, Google), // new + risky -> suspicious
            session("2", "alice", Unknown, Google), // still not known -> suspicious
            session("3", "alice", Mobile, Google),  // clean -> valid, alice known
            session("4", "alice", Unknown, NoRef),  // known -> valid
            session("5", "bob", Desktop, Direct),   // clean new -> valid
            session("6", "bob", Desktop, NoRef),    // known -> valid
            session("1", "alice", Mobile, Google),  // replay of 1: keeps its verdict
        ];
        let out = reference(&seq, &RuleConfig::default());
        let v = |sid: &str| out.verdicts[sid];
        assert_eq!(v("1"), Verdict::Suspicious(Risk::UnknownDevice));
        assert_eq!(v("2"), Verdict::Suspicious(Risk::UnknownDevice));
        assert_eq!(v("3"), Verdict::Valid);
        assert_eq!(v("4"), Verdict::Valid);
        assert_eq!(v("5"), Verdict::Valid);
        assert_eq!(v("6"), Verdict::Valid);
        assert_eq!(out.sessions_per_user["alice"], 4);
        assert_eq!(out.sessions_per_user["bob"], 2);
        assert_eq!(out.unique_users.len(), 2);
        assert_eq!(out.known_users.len(), 2);
    }

    #[test]
    fn reference_is_replay_stable() {
        use DeviceType::{Mobile, Tablet, Unknown};
        use Referrer::{Google, Unknown as NoRef};
        let seq = vec![
            session("1", "carol", Unknown, Google),
            session("2", "carol", Tablet, Google),
            session("3", "dave", Mobile, NoRef),
        ];
        let once = reference(&seq, &RuleConfig::default());
        let twice: Vec<Session> = seq.iter().chain(seq.iter()).cloned().collect();
        assert_eq!(reference(&twice, &RuleConfig::default()), once);
    }
}
