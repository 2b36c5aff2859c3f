//! Behaviour tokens: what a user did, as a set of short strings, merged across sessions.
//!
//! Every session contributes the tokens below; a user's set is the union over all of their
//! sessions. Two users are similar when their sets overlap (Jaccard similarity). Only behaviour
//! is tokenised: identity and location fields (name, e-mail, IP address, gender, city, ...) are
//! never used, so pseudonymised and clear records give the same tokens.
//!
//! | token | meaning |
//! | --- | --- |
//! | `view:<id>` | viewed product `<id>` (1..=10) |
//! | `pair:<a>-<b>` | viewed products `a < b` in the same session (co-viewed pair) |
//! | `cat:<category>` | viewed a product of this room category (`cat:living room`) |
//! | `entry:<id>` | first product page of a session |
//! | `exit:<id>` | product page a session ended on (`exitPage`, mapped to its id) |
//! | `dwell:<id>` | spent at least [`DWELL_SECONDS`] on the page of product `<id>` |
//! | `act:<action>` | the session's last action (`add_to_cart`, `search`, `view_item`, `checkout`) |
//! | `buy:<id>` | bought product `<id>` (a purchase buys every viewed product) |
//! | `pay:<method>` | paid with `CreditCard` or `PayPal` |
//! | `ref:<referrer>` | came from this referrer; `unknown` is omitted |
//! | `dev:<device>` | used this device type; `unknown` is omitted |
//! | `pod:<part>` | part of day of the session start: `night` 0-5 h, `morning` 6-11 h, `afternoon` 12-17 h, `evening` 18-23 h |
//! | `day:<kind>` | `weekday` or `weekend` (Saturday, Sunday) of the session start |
//!
//! `unknown` device and referrer values say that the shop could not identify them; they are
//! left out so that missing data does not make users look alike.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDateTime, Timelike, Weekday};
use shopstream_schema::catalog::{product, product_by_name};
use shopstream_schema::{Action, DeviceType, PaymentMethod, Referrer, Session};

/// Seconds on one product page from which the look counts as a long one (a `dwell:` token).
pub const DWELL_SECONDS: u32 = 60;

pub use shopstream_schema::part_of_day;

/// The fields of one session that behaviour tokens are made of, typed and already validated.
/// Built from a [`Session`] ([`Behaviour::from_session`]) or from a `user_sessions` document
/// (`store::behaviour_from_document`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// Stable user id.
    pub user_id: String,
    /// Session start (local time, no zone).
    pub start: NaiveDateTime,
    /// Viewed product ids (`1..=10`), in viewing order.
    pub pages: Vec<u8>,
    /// Seconds on each viewed page, parallel to `pages`.
    pub seconds: Vec<u32>,
    /// Product id of the exit page.
    pub exit_page: Option<u8>,
    /// Last action.
    pub action: Action,
    /// The payment method when the session ended in a purchase.
    pub purchase: Option<PaymentMethod>,
    /// Referrer.
    pub referrer: Referrer,
    /// Device type.
    pub device: DeviceType,
}

impl Behaviour {
    /// The behaviour of a (validated) session record.
    pub fn from_session(s: &Session) -> Self {
        Self {
            user_id: s.user_id.clone(),
            start: s.session_timestamp,
            pages: s.browsing_pattern.clone(),
            seconds: s.time_spent_on_each_page.clone(),
            exit_page: product_by_name(&s.exit_page).map(|p| p.id),
            action: s.actions,
            purchase: s.purchase_made.then_some(s.payment_method_type),
            referrer: s.referrer,
            device: s.device_information.device_type,
        }
    }
}

/// The behaviour tokens of one session (see the module documentation), sorted and without
/// duplicates.
pub fn session_tokens(session: &Session) -> BTreeSet<String> {
    behaviour_tokens(&Behaviour::from_session(session))
}

/// The behaviour tokens of one session's [`Behaviour`] (see the module documentation).
pub fn behaviour_tokens(b: &Behaviour) -> BTreeSet<String> {
    let mut tokens = BTreeSet::new();
    let ids = &b.pages;
    for &id in ids {
        tokens.insert(format!("view:{id}"));
        if let Some(p) = product(id) {
            tokens.insert(format!("cat:{}", p.category));
        }
    }
    let mut distinct: Vec<u8> = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    for (i, &x) in distinct.iter().enumerate() {
        for &y in &distinct[i + 1..] {
            tokens.insert(format!("pair:{x}-{y}"));
        }
    }
    if let Some(first) = ids.first() {
        tokens.insert(format!("entry:{first}"));
    }
    if let Some(id) = b.exit_page {
        tokens.insert(format!("exit:{id}"));
    }
    for (&id, &seconds) in ids.iter().zip(&b.seconds) {
        if seconds >= DWELL_SECONDS {
            tokens.insert(format!("dwell:{id}"));
        }
    }
    tokens.insert(format!("act:{}", b.action.as_str()));
    if let Some(method) = b.purchase {
        for &id in ids {
            tokens.insert(format!("buy:{id}"));
        }
        tokens.insert(format!("pay:{}", method.as_str()));
    }
    if b.referrer != Referrer::Unknown {
        tokens.insert(format!("ref:{}", b.referrer.as_str()));
    }
    if b.device != DeviceType::Unknown {
        tokens.insert(format!("dev:{}", b.device.as_str()));
    }
    tokens.insert(format!("pod:{}", part_of_day(b.start.hour())));
    let kind = match b.start.weekday() {
        Weekday::Sat | Weekday::Sun => "weekend",
        _ => "weekday",
    };
    tokens.insert(format!("day:{kind}"));
    tokens
}

/// Each user's behaviour tokens, merged across their sessions. Keyed by `userId`, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserTokens {
    users: BTreeMap<String, BTreeSet<String>>,
    sessions: usize,
}

impl UserTokens {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the tokens of one session to its user's set.
    pub fn add_session(&mut self, session: &Session) {
        self.add_behaviour(&Behaviour::from_session(session));
    }

    /// Adds the tokens of one session's behaviour to its user's set.
    pub fn add_behaviour(&mut self, behaviour: &Behaviour) {
        let tokens = behaviour_tokens(behaviour);
        match self.users.get_mut(&behaviour.user_id) {
            Some(set) => set.extend(tokens),
            None => {
                self.users.insert(behaviour.user_id.clone(), tokens);
            }
        }
        self.sessions += 1;
    }

    /// Adds a ready-made token set for a user (merged with what the user already has). Used for
    /// synthetic data and for inputs tokenised elsewhere.
    pub fn add_tokens<I, S>(&mut self, user_id: &str, tokens: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let set = self.users.entry(user_id.to_string()).or_default();
        set.extend(tokens.into_iter().map(Into::into));
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when there is no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Number of sessions added with [`UserTokens::add_session`] or
    /// [`UserTokens::add_behaviour`].
    pub fn sessions(&self) -> usize {
        self.sessions
    }

    /// The token set of one user.
    pub fn get(&self, user_id: &str) -> Option<&BTreeSet<String>> {
        self.users.get(user_id)
    }

    /// Users and their token sets, in `userId` order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &BTreeSet<String>)> {
        self.users.iter().map(|(user, set)| (user.as_str(), set))
    }
}

impl<'a> FromIterator<&'a Session> for UserTokens {
    fn from_iter<T: IntoIterator<Item = &'a Session>>(iter: T) -> Self {
        let mut users = UserTokens::new();
        for session in iter {
            users.add_session(session);
        }
        users
    }
}

/// Exact Jaccard similarity `|a ∩ b| / |a ∪ b|` of two sets (1 for two empty sets).
pub fn jaccard<T: Ord>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> f64 {
    let inter = a.intersection(b).count();
    let union = a.len() + b.len() - inter;
    if union == 0 { 1.0 } else { inter as f64 / union as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopstream_schema::parse_session;

    const SEED: &str = include_str!("../tests/data/original-format.jsonl");

    fn seed_sessions() -> Vec<Session> {
        SEED.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| parse_session(l.as_bytes()).unwrap())
            .collect()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn purchase_session_tokens() {
        // 2026-11-20T14:03:27 is a Friday afternoon; bed, coffee table, dresser, bedside table
        // with 95, 12, 64, 40 seconds; exit dresser; Google; desktop; checkout with CreditCard.
        let s = &seed_sessions()[0];
        let expected = set(&[
            "view:4",
            "view:2",
            "view:6",
            "view:5",
            "pair:2-4",
            "pair:2-5",
            "pair:2-6",
            "pair:4-5",
            "pair:4-6",
            "pair:5-6",
            "cat:bedroom",
            "cat:living room",
            "entry:4",
            "exit:6",
            "dwell:4",
            "dwell:6",
            "act:checkout",
            "buy:4",
            "buy:2",
            "buy:6",
            "buy:5",
            "pay:CreditCard",
            "ref:Google",
            "dev:desktop",
            "pod:afternoon",
            "day:weekday",
        ]);
        assert_eq!(session_tokens(s), expected);
    }

    #[test]
    fn unknown_device_and_referrer_are_left_out() {
        // 2026-11-24T02:47:10 is a Tuesday night; office chair, sofa, office desk with 33, 101,
        // 18 seconds; exit sofa; unknown referrer and device; view_item without purchase.
        let s = &seed_sessions()[1];
        let expected = set(&[
            "view:8",
            "view:1",
            "view:7",
            "pair:1-7",
            "pair:1-8",
            "pair:7-8",
            "cat:office",
            "cat:living room",
            "entry:8",
            "exit:1",
            "dwell:1",
            "act:view_item",
            "pod:night",
            "day:weekday",
        ]);
        assert_eq!(session_tokens(s), expected);
    }

    #[test]
    fn sessions_merge_per_user_and_ignore_identity_fields() {
        let sessions = seed_sessions();
        let mut second = sessions[1].clone();
        second.user_id = sessions[0].user_id.clone();
        // Identity fields differ (pseudonyms): they must not change anything.
        second.name = "Someone Else".into();
        second.email = "x@example.net".into();
        second.ip_address = "10.0.0.1".into();
        let users: UserTokens = [&sessions[0], &second].into_iter().collect();
        assert_eq!(users.len(), 1);
        assert_eq!(users.sessions(), 2);
        let merged = users.get(&sessions[0].user_id).unwrap();
        let union: BTreeSet<String> =
            session_tokens(&sessions[0]).union(&session_tokens(&sessions[1])).cloned().collect();
        assert_eq!(merged, &union);
        assert!(users.get(&sessions[1].user_id).is_none());
    }

    #[test]
    fn weekend_and_parts_of_day() {
        let mut s = seed_sessions()[0].clone();
        s.session_timestamp = "2026-11-21T07:00:00".parse().unwrap(); // Saturday
        let t = session_tokens(&s);
        assert!(t.contains("day:weekend") && t.contains("pod:morning"));
        assert!(!t.contains("day:weekday"));
        assert_eq!(part_of_day(0), "night");
        assert_eq!(part_of_day(5), "night");
        assert_eq!(part_of_day(6), "morning");
        assert_eq!(part_of_day(12), "afternoon");
        assert_eq!(part_of_day(17), "afternoon");
        assert_eq!(part_of_day(18), "evening");
        assert_eq!(part_of_day(23), "evening");
    }

    #[test]
    fn exact_jaccard() {
        let a = set(&["a", "b", "c"]);
        let b = set(&["b", "c", "d", "e"]);
        assert!((jaccard(&a, &b) - 2.0 / 5.0).abs() < 1e-15);
        assert_eq!(jaccard(&a, &a), 1.0);
        assert_eq!(jaccard(&a, &set(&["x"])), 0.0);
        assert_eq!(jaccard(&BTreeSet::<String>::new(), &BTreeSet::new()), 1.0);
    }
}
