//! Parsing a record without copying it, fast: what the gate and the processor read.
//!
//! Nearly every record on the shop's topics is well formed. For those, [`parse_record`] reads
//! the JSON *borrowing* its strings (no per-field allocation, no field-path tracking) into a
//! [`Record`] and checks the rules of [`Session::validate`] on the borrowed fields.
//! Anything the fast path does not accept (a syntax or type error, a broken rule, a timestamp
//! not spelled exactly `YYYY-MM-DDTHH:MM:SS`, such as a leap second) is parsed again by
//! [`parse_session`], which gives the exact error, or, should it accept the record after all,
//! the owned [`Session`]. Either way [`Record::view`] gives the same [`SessionView`], so what
//! is built from it does not depend on the path taken. Both paths check the rules through the
//! same code (`Fields::check` in the session module).
//!
//! The fast path accepts a subset of what `parse_session` accepts and reads the same values;
//! the tests check both on hand-broken and fuzzed records here, and on generated ones in the
//! generator's tests.

use std::borrow::Cow;
use std::fmt;

use chrono::{NaiveDate, NaiveDateTime};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use smallvec::SmallVec;

use crate::session::Fields;
use crate::{
    Action, DeviceType, Gender, MAX_RECORD_BYTES, PaymentMethod, Referrer, SchemaError, Session,
    parse_session,
};

/// Per-page arrays, inline up to 10 pages (the original viewed at most the 10 products once
/// each); longer sessions spill to the heap.
type Pages<T> = SmallVec<[T; 10]>;

/// A JSON string, borrowed from the record unless it holds escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl Str<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Str<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The record's fields, strings borrowed; same names, types and strictness as [`Session`].
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw<'a> {
    #[serde(borrow)]
    session_id: Str<'a>,
    #[serde(borrow)]
    user_id: Str<'a>,
    #[serde(borrow)]
    session_timestamp: Str<'a>,
    product_ids: Pages<u8>,
    #[serde(borrow)]
    product_names: Pages<Str<'a>>,
    product_prices: Pages<u32>,
    #[serde(borrow)]
    product_categories: Pages<Str<'a>>,
    #[serde(borrow)]
    product_reviews: Pages<Option<Str<'a>>>,
    #[serde(borrow)]
    name: Str<'a>,
    gender: Gender,
    #[serde(borrow)]
    email: Str<'a>,
    #[serde(borrow)]
    device_information: RawDevice<'a>,
    #[serde(borrow)]
    location_data: RawLocation<'a>,
    #[serde(borrow)]
    ip_address: Str<'a>,
    session_duration: u32,
    page_views: u32,
    browsing_pattern: Pages<u8>,
    #[serde(rename = "timeSpentonEachPage")]
    time_spent_on_each_page: Pages<u32>,
    clicks: u32,
    actions: Action,
    referrer: Referrer,
    #[serde(borrow)]
    exit_page: Str<'a>,
    purchase_made: bool,
    amount_spent: u64,
    payment_method_type: PaymentMethod,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawDevice<'a> {
    device_type: DeviceType,
    #[serde(borrow)]
    operating_system: Str<'a>,
    #[serde(borrow)]
    browser_type: Str<'a>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawLocation<'a> {
    #[serde(borrow)]
    country: Str<'a>,
    #[serde(borrow)]
    state: Str<'a>,
    #[serde(borrow)]
    city: Str<'a>,
    #[serde(borrow)]
    zip_code: Str<'a>,
}

/// A parsed, valid record, borrowed from its bytes or owned.
#[derive(Debug)]
pub struct Record<'a>(Inner<'a>);

#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "the fast variant is the common one; boxing it costs a heap allocation per record"
)]
enum Inner<'a> {
    /// Read by the borrowing fast path; `timestamp` is the parsed `sessionTimestamp`.
    Fast(Raw<'a>, NaiveDateTime),
    /// Read by [`parse_session`].
    Slow(Box<Session>),
}

/// What the documents are built from: the fields of a valid session, borrowed.
///
/// Product names and categories are not here: a valid record's names and categories are the
/// catalogue's for its product ids (see [`crate::catalog::product`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionView<'a> {
    /// Session id.
    pub session_id: &'a str,
    /// Opaque user id.
    pub user_id: &'a str,
    /// Session start.
    pub timestamp: NaiveDateTime,
    /// Viewed product ids in order (`productIds`, equal to `browsingPattern`).
    pub product_ids: &'a [u8],
    /// Prices, parallel to `product_ids`.
    pub product_prices: &'a [u32],
    /// Reviews, parallel to `product_ids`.
    pub product_reviews: SmallVec<[Option<&'a str>; 10]>,
    /// Seconds on each page, parallel to `product_ids`.
    pub time_spent_on_each_page: &'a [u32],
    /// Gender as recorded.
    pub gender: Gender,
    /// Device kind.
    pub device_type: DeviceType,
    /// Country.
    pub country: &'a str,
    /// State.
    pub state: &'a str,
    /// Session length in seconds.
    pub session_duration: u32,
    /// Product pages viewed.
    pub page_views: u32,
    /// Clicks.
    pub clicks: u32,
    /// The last action.
    pub action: Action,
    /// Where the user came from.
    pub referrer: Referrer,
    /// Page the session ended on.
    pub exit_page: &'a str,
    /// Whether a purchase was made.
    pub purchase_made: bool,
    /// Amount spent.
    pub amount_spent: u64,
    /// Payment method.
    pub payment_method: PaymentMethod,
}

impl<'a> SessionView<'a> {
    /// The view of an owned, validated session.
    pub fn of(s: &'a Session) -> SessionView<'a> {
        SessionView {
            session_id: &s.session_id,
            user_id: &s.user_id,
            timestamp: s.session_timestamp,
            product_ids: &s.product_ids,
            product_prices: &s.product_prices,
            product_reviews: s.product_reviews.iter().map(|r| r.as_deref()).collect(),
            time_spent_on_each_page: &s.time_spent_on_each_page,
            gender: s.gender,
            device_type: s.device_information.device_type,
            country: &s.location_data.country,
            state: &s.location_data.state,
            session_duration: s.session_duration,
            page_views: s.page_views,
            clicks: s.clicks,
            action: s.actions,
            referrer: s.referrer,
            exit_page: &s.exit_page,
            purchase_made: s.purchase_made,
            amount_spent: s.amount_spent,
            payment_method: s.payment_method_type,
        }
    }
}

impl<'a> Record<'a> {
    /// The fields the documents need.
    pub fn view(&self) -> SessionView<'_> {
        match &self.0 {
            Inner::Slow(s) => SessionView::of(s),
            Inner::Fast(r, timestamp) => SessionView {
                session_id: r.session_id.as_str(),
                user_id: r.user_id.as_str(),
                timestamp: *timestamp,
                product_ids: &r.product_ids,
                product_prices: &r.product_prices,
                product_reviews: r
                    .product_reviews
                    .iter()
                    .map(|t| t.as_ref().map(Str::as_str))
                    .collect(),
                time_spent_on_each_page: &r.time_spent_on_each_page,
                gender: r.gender,
                device_type: r.device_information.device_type,
                country: r.location_data.country.as_str(),
                state: r.location_data.state.as_str(),
                session_duration: r.session_duration,
                page_views: r.page_views,
                clicks: r.clicks,
                action: r.actions,
                referrer: r.referrer,
                exit_page: r.exit_page.as_str(),
                purchase_made: r.purchase_made,
                amount_spent: r.amount_spent,
                payment_method: r.payment_method_type,
            },
        }
    }

    /// The session id and user id, moved out of the record: borrowed from the bytes when the
    /// fast path read them (and they held no escapes), owned otherwise. For callers that keep
    /// only these of many records (a `Record` is over 1 KB; holding thousands costs more in
    /// memory traffic than the parse itself).
    pub fn into_ids(self) -> (Cow<'a, str>, Cow<'a, str>) {
        match self.0 {
            Inner::Fast(r, _) => (r.session_id.0, r.user_id.0),
            Inner::Slow(s) => {
                let s = *s;
                (Cow::Owned(s.session_id), Cow::Owned(s.user_id))
            }
        }
    }

    /// Whether the borrowing fast path read this record.
    pub fn is_fast(&self) -> bool {
        matches!(self.0, Inner::Fast(..))
    }
}

/// Parses and validates one record: the same outcome as [`parse_session`] (the same error for
/// a record it refuses), fast for well-formed records.
pub fn parse_record(bytes: &[u8]) -> Result<Record<'_>, SchemaError> {
    if let Some(record) = parse_fast(bytes) {
        return Ok(record);
    }
    parse_session(bytes).map(|s| Record(Inner::Slow(Box::new(s))))
}

/// The fast path alone: `None` for anything it does not accept (then [`parse_session`] has the
/// last word).
fn parse_fast(bytes: &[u8]) -> Option<Record<'_>> {
    if bytes.len() > MAX_RECORD_BYTES {
        return None;
    }
    // One (SIMD) UTF-8 check of the whole record is cheaper than one per string.
    let text = simdutf8::basic::from_utf8(bytes).ok()?;
    let raw: Raw<'_> = serde_json::from_str(text).ok()?;
    let timestamp = canonical_timestamp(raw.session_timestamp.as_str())?;
    valid(&raw).then(|| Record(Inner::Fast(raw, timestamp)))
}

/// Reads `YYYY-MM-DDTHH:MM:SS` exactly (what the generator and the original write); other
/// spellings that chrono's `%Y-%m-%dT%H:%M:%S` may accept, and leap seconds, are left to the
/// slow path.
fn canonical_timestamp(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to]
            .iter()
            .try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_opt(hour, minute, second)
}

/// The rules of [`Session::validate`], on the borrowed fields (true = valid).
fn valid(r: &Raw<'_>) -> bool {
    Fields {
        session_id: r.session_id.as_str(),
        user_id: r.user_id.as_str(),
        name: r.name.as_str(),
        email: r.email.as_str(),
        ip_address: r.ip_address.as_str(),
        operating_system: r.device_information.operating_system.as_str(),
        browser_type: r.device_information.browser_type.as_str(),
        country: r.location_data.country.as_str(),
        state: r.location_data.state.as_str(),
        city: r.location_data.city.as_str(),
        zip_code: r.location_data.zip_code.as_str(),
        product_ids: &r.product_ids,
        product_names: &r.product_names,
        product_prices: &r.product_prices,
        product_categories: &r.product_categories,
        product_reviews: &r.product_reviews,
        time_spent_on_each_page: &r.time_spent_on_each_page,
        browsing_pattern: &r.browsing_pattern,
        page_views: r.page_views,
        exit_page: r.exit_page.as_str(),
        purchase_made: r.purchase_made,
        actions: r.actions,
        payment_method_type: r.payment_method_type,
        amount_spent: r.amount_spent,
    }
    .check()
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::product;
    use crate::session::{MAX_PAGES, MAX_TEXT};

    const SEED: &str = include_str!("../tests/data/original-format.jsonl");

    /// The fast path agrees with `parse_session` on `bytes`: same acceptance, same error, same
    /// fields; returns whether the fast path took it.
    fn agrees(bytes: &[u8]) -> bool {
        let reference = parse_session(bytes);
        let got = parse_record(bytes);
        match (&reference, &got) {
            (Ok(s), Ok(r)) => {
                assert_eq!(r.view(), SessionView::of(s), "{}", String::from_utf8_lossy(bytes));
                r.is_fast()
            }
            (Err(a), Err(b)) => {
                assert_eq!(a, b);
                false
            }
            _ => panic!(
                "fast path disagrees on {}: reference {:?}, got {:?}",
                String::from_utf8_lossy(bytes),
                reference.as_ref().err(),
                got.as_ref().err()
            ),
        }
    }

    #[test]
    fn valid_records_take_the_fast_path_with_the_same_fields() {
        for line in SEED.lines() {
            assert!(agrees(line.as_bytes()), "{line}");
        }
    }

    #[test]
    fn ids_move_out_borrowed_when_they_can() {
        let line = SEED.lines().next().expect("seed");
        let s = parse_session(line.as_bytes()).expect("seed");
        let (session_id, user_id) = parse_record(line.as_bytes()).expect("seed").into_ids();
        assert_eq!((&*session_id, &*user_id), (s.session_id.as_str(), s.user_id.as_str()));
        assert!(matches!((&session_id, &user_id), (Cow::Borrowed(_), Cow::Borrowed(_))));
        // An escaped user id is unescaped (owned); a record the slow path read (a leap second)
        // gives owned ids.
        let escaped = line.replace("b7e2d4c1-", "b7e2d4c1\\u002d");
        let (_, user_id) = parse_record(escaped.as_bytes()).expect("escaped").into_ids();
        assert_eq!((&*user_id, matches!(user_id, Cow::Owned(_))), (s.user_id.as_str(), true));
        let slow = line.replace("2026-11-20T14:03:27", "2026-11-20T14:03:60"); // leap second
        let record = parse_record(slow.as_bytes()).expect("slow");
        assert!(!record.is_fast());
        let (session_id, user_id) = record.into_ids();
        assert_eq!((&*session_id, &*user_id), (s.session_id.as_str(), s.user_id.as_str()));
    }

    #[test]
    fn escaped_strings_are_read_the_same() {
        let line = SEED.lines().next().expect("seed");
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        // Escapes everywhere a string may hold them: `\u` escapes of plain letters, a quote.
        let escaped = serde_json::to_string(&v)
            .expect("json")
            .replace("Oregon", "Ore\\u0067on")
            .replace("dresser\"", "dr\\u0065sser\"")
            .replace("sturdy", "\\\"sturdy\\\"");
        assert!(agrees(escaped.as_bytes()));
        // An escaped timestamp is read once unescaped, as the reference reads it.
        let ts = line.replace("2026-11-20T14:03:27", "2026-11-20T14\\u003a03:27");
        assert_ne!(ts, line);
        assert!(agrees(ts.as_bytes()));
    }

    #[test]
    fn every_broken_rule_is_refused_with_the_reference_error() {
        let base = SEED.lines().next().expect("seed");
        let swaps: &[(&str, &str)] = &[
            ("\"sessionId\": \"3f1c", "\"sessionId\": \" \", \"x\": \"3f1c"),
            ("3f1c2a9e-8b1d-4c55-9a0e-2d7b6f4e1a01", "   "),
            ("b7e2d4c1-5a6f-4e3b-8c9d-0a1b2c3d4e5f", ""),
            ("Dana Whitfield", "\\t"),
            ("dana.whitfield@example.org", "dana.whitfield.example.org"),
            ("203.0.113.45", "203.0.113.450"),
            ("203.0.113.45", "::1"),
            ("\"Oregon\"", "\"\""),
            ("\"97035\"", "\" \""),
            ("\"Port Ellenmouth\"", "\"\\u00a0\""),
            ("\"pageViews\": 4", "\"pageViews\": 5"),
            ("\"browsingPattern\": [4, 2, 6, 5]", "\"browsingPattern\": [4, 2, 6, 11]"),
            ("\"browsingPattern\": [4, 2, 6, 5]", "\"browsingPattern\": [4, 2, 5, 6]"),
            ("\"browsingPattern\": [4, 2, 6, 5]", "\"browsingPattern\": [4, 2, 6]"),
            ("\"productIds\": [4, 2, 6, 5]", "\"productIds\": [4, 2, 6, 5, 1]"),
            ("\"productIds\": [4, 2, 6, 5]", "\"productIds\": [4, 2, 6, 256]"),
            ("[4500, 500, 1290, 590]", "[4500, 500, 1290]"),
            ("[4500, 500, 1290, 590]", "[4500, 500, 1290, -590]"),
            ("\"coffee table\", \"dresser\"", "\"coffee  table\", \"dresser\""),
            (
                "\"living room\", \"bedroom\", \"bedroom\"]",
                "\"bedroom\", \"bedroom\", \"bedroom\"]",
            ),
            ("\"exitPage\": \"dresser\"", "\"exitPage\": \"attic\""),
            ("\"actions\": \"checkout\"", "\"actions\": \"add_to_cart\""),
            ("\"actions\": \"checkout\"", "\"actions\": \"teleport\""),
            ("\"paymentMethodType\": \"CreditCard\"", "\"paymentMethodType\": \"None\""),
            ("\"amountSpent\": 6880", "\"amountSpent\": 6881"),
            ("\"purchaseMade\": true", "\"purchaseMade\": false"),
            ("\"purchaseMade\": true", "\"purchaseMade\": 1"),
            ("\"gender\": \"Female\"", "\"gender\": \"female\""),
            ("\"deviceType\": \"desktop\"", "\"deviceType\": 3"),
            ("\"clicks\": 31", "\"clicks\": 31.5"),
            ("\"clicks\": 31,", ""),
            ("\"clicks\": 31,", "\"clicks\": 31, \"clicks\": 31,"),
            ("\"clicks\": 31,", "\"clicks\": 31, \"extra\": 1,"),
            ("\"zipCode\": \"97035\"", "\"zipCode\": \"97035\", \"x\": 1"),
            ("2026-11-20T14:03:27", "2026-11-31T14:03:27"),
            ("2026-11-20T14:03:27", "2026-11-20 14:03:27"),
            ("2026-11-20T14:03:27", "2026-11-20T14:03:60"),
            ("2026-11-20T14:03:27", "2026-11-20T24:03:27"),
            ("2026-11-20T14:03:27", "2026-1-20T14:03:27"),
            ("\"It's a basic bedside table. Does what it needs to.\"", "null"),
            ("\"It's a basic bedside table. Does what it needs to.\"", "\" \""),
            ("\"It's a basic bedside table. Does what it needs to.\"", "7"),
        ];
        for (from, to) in swaps {
            assert!(base.contains(from), "{from}");
            let broken = base.replacen(from, to, 1);
            agrees(broken.as_bytes());
        }
        let long = base.replace("Dana Whitfield", &"é".repeat(MAX_TEXT + 1));
        assert!(!agrees(long.as_bytes()));
        let just = base.replace("Dana Whitfield", &"é".repeat(MAX_TEXT));
        assert!(agrees(just.as_bytes()));
        // Without a purchase, a review must be null.
        let browsed = SEED.lines().nth(1).expect("seed");
        let reviewed = browsed.replacen("null", "\"nice\"", 1);
        assert_ne!(browsed, reviewed);
        assert!(!agrees(reviewed.as_bytes()));
        for junk in [&b""[..], b"{", b"null", b"[]", b"\xff\xfe", b"{\"sessionId\": 1}"] {
            assert!(!agrees(junk));
        }
        // Trailing junk, a lone surrogate escape, a renamed field, a negative count.
        assert!(!agrees(format!("{base} x").as_bytes()));
        assert!(agrees(format!("{base} \n").as_bytes()));
        assert!(!agrees(base.replace("dana", "d\\ud800a").as_bytes()));
        assert!(!agrees(base.replace("\"gender\"", "\"genre\"").as_bytes()));
        assert!(!agrees(base.replace("\"clicks\": 31", "\"clicks\": -1").as_bytes()));
        let mut huge = base.as_bytes().to_vec();
        huge.extend(std::iter::repeat_n(b' ', MAX_RECORD_BYTES));
        assert!(!agrees(&huge));
        // More pages than held inline (they spill to the heap), and more than allowed.
        let mut s = parse_session(browsed.as_bytes()).expect("seed");
        for pages in [20usize, MAX_PAGES, MAX_PAGES + 1] {
            let ids: Vec<u8> = (0..pages).map(|k| (k % 10 + 1) as u8).collect();
            let p = |i: &u8| product(*i).expect("catalogue");
            s.product_names = ids.iter().map(|i| p(i).name.to_string()).collect();
            s.product_categories = ids.iter().map(|i| p(i).category.to_string()).collect();
            s.product_prices = ids.iter().map(|i| p(i).price).collect();
            s.product_reviews = vec![None; pages];
            s.time_spent_on_each_page = vec![7; pages];
            s.page_views = pages as u32;
            s.product_ids = ids.clone();
            s.browsing_pattern = ids;
            assert_eq!(agrees(s.to_json().as_bytes()), pages <= MAX_PAGES, "{pages} pages");
        }
    }
}
