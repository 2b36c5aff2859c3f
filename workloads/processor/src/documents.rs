//! The Elasticsearch documents the processor writes, as pure functions of one [`Session`]:
//!
//! * the session summary (index `<prefix>sessions`, id = `sessionId`) with timestamp parts,
//!   the ten `isViewedProductN` flags, behaviour, outcome, review sentiment counts and the
//!   "potential customer" signal;
//! * one product row per viewed page (index `<prefix>products`, id = `sessionId:position`),
//!   with the review and its VADER sentiment.
//!
//! Production writes them with the direct writer of [`crate::writer`]; the serde structs here
//! (`SessionDoc`, `ProductDoc`, built by `session_doc` and `product_docs`) are compiled for the
//! tests only, as the readable reference the writer is checked against byte for byte. Their
//! shape is also fixed by the strict mappings of [`crate::mapping`].
//!
//! Privacy: e-mail, name, IP address, city, zip code and the user-agent strings never enter
//! these documents (the structs have no field for them); `userId` is an opaque id, not PII.
//! Everything here is a function of the session alone, so a replay writes identical documents
//! under identical ids.

use chrono::{Datelike, NaiveDateTime, Timelike, Weekday};
use serde::Serialize;
use shopstream_schema::{PRODUCT_COUNT, Session, TIMESTAMP_FORMAT};
#[cfg(test)]
use shopstream_sentiment::{Label, Scores};

/// Elasticsearch's limit on the length of a document id, in bytes.
pub const MAX_ID_BYTES: usize = 512;

/// The "potential customer" rule: a session without a purchase whose product pages held the
/// user for at least `min_seconds` in total (`sum(timeSpentonEachPage)`). Such a visitor was
/// interested but did not buy: a candidate for a follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PotentialCustomerRule {
    /// Least total time on product pages, in seconds.
    pub min_seconds: u32,
}

impl Default for PotentialCustomerRule {
    fn default() -> Self {
        PotentialCustomerRule { min_seconds: DEFAULT_POTENTIAL_CUSTOMER_SECONDS }
    }
}

/// Default threshold of [`PotentialCustomerRule`]: three minutes on product pages.
pub const DEFAULT_POTENTIAL_CUSTOMER_SECONDS: u32 = 180;

impl PotentialCustomerRule {
    /// Whether the session is a potential customer under this rule.
    pub fn applies(&self, session: &Session) -> bool {
        !session.purchase_made && total_time_on_pages(session) >= u64::from(self.min_seconds)
    }
}

/// Sum of the seconds spent on each product page.
pub fn total_time_on_pages(session: &Session) -> u64 {
    session.time_spent_on_each_page.iter().map(|&t| u64::from(t)).sum()
}

pub use shopstream_schema::part_of_day;

fn day_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// Calendar parts of a session timestamp (local shop time, as recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeParts {
    /// Hour of day, 0-23.
    pub hour: u32,
    /// ISO day of week, 1 = Monday .. 7 = Sunday.
    pub day_of_week: u32,
    /// English day name, `Monday`..`Sunday`.
    pub day_name: &'static str,
    /// Saturday or Sunday.
    pub is_weekend: bool,
    /// Month, 1-12.
    pub month: u32,
    /// ISO 8601 week number, 1-53.
    pub iso_week: u32,
    /// The year the ISO week belongs to.
    pub iso_year: i32,
    /// See [`part_of_day`].
    pub part_of_day: &'static str,
}

impl TimeParts {
    /// The parts of a timestamp.
    pub fn of(t: &NaiveDateTime) -> TimeParts {
        let day = t.weekday();
        let week = t.iso_week();
        TimeParts {
            hour: t.hour(),
            day_of_week: day.number_from_monday(),
            day_name: day_name(day),
            is_weekend: matches!(day, Weekday::Sat | Weekday::Sun),
            month: t.month(),
            iso_week: week.week(),
            iso_year: week.year(),
            part_of_day: part_of_day(t.hour()),
        }
    }
}

/// A timestamp formatted as the record has it (`YYYY-MM-DDTHH:MM:SS`, no zone), formatted
/// once per session without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    buf: [u8; 32],
    len: u8,
}

impl Timestamp {
    /// Formats `t`.
    pub fn of(t: &NaiveDateTime) -> Timestamp {
        let mut buf = [0u8; 32];
        let year = t.year();
        if (0..=9999).contains(&year) {
            let mut put = |at: usize, value: u32, digits: usize| {
                let mut v = value;
                for k in (0..digits).rev() {
                    buf[at + k] = b'0' + (v % 10) as u8;
                    v /= 10;
                }
            };
            put(0, year as u32, 4);
            put(5, t.month(), 2);
            put(8, t.day(), 2);
            put(11, t.hour(), 2);
            put(14, t.minute(), 2);
            put(17, t.second(), 2);
            buf[4] = b'-';
            buf[7] = b'-';
            buf[10] = b'T';
            buf[13] = b':';
            buf[16] = b':';
            return Timestamp { buf, len: 19 };
        }
        // Years outside 0..=9999 (which the record format cannot even express): chrono.
        let text = t.format(TIMESTAMP_FORMAT).to_string();
        let len = text.len().min(buf.len());
        buf[..len].copy_from_slice(&text.as_bytes()[..len]);
        Timestamp { buf, len: len as u8 }
    }

    /// The formatted text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The ten "was product N viewed" flags, serialised as `isViewedProduct1`..`isViewedProduct10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewedFlags(pub [bool; PRODUCT_COUNT]);

impl ViewedFlags {
    /// Flags of the products the session viewed.
    pub fn of(session: &Session) -> ViewedFlags {
        let mut flags = [false; PRODUCT_COUNT];
        for &id in &session.browsing_pattern {
            if let Some(slot) = usize::from(id).checked_sub(1).and_then(|i| flags.get_mut(i)) {
                *slot = true;
            }
        }
        ViewedFlags(flags)
    }

    /// The field name of product `id`'s flag.
    pub fn field(id: usize) -> String {
        format!("isViewedProduct{id}")
    }
}

#[cfg(test)]
/// Sentiment of a review, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewSentiment {
    /// `positive`, `neutral` or `negative`.
    pub label: &'static str,
    /// VADER compound score in `[-1, 1]`.
    pub compound: f64,
}

#[cfg(test)]
impl From<Scores> for ReviewSentiment {
    fn from(s: Scores) -> Self {
        ReviewSentiment { label: s.label().as_str(), compound: s.compound }
    }
}

#[cfg(test)]
/// The session summary document.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionDoc<'a> {
    /// Session id (also the document id).
    pub session_id: &'a str,
    /// Opaque user id.
    pub user_id: &'a str,
    /// Session start, `YYYY-MM-DDTHH:MM:SS`.
    pub timestamp: Timestamp,
    /// Hour, day, week, month and part of the day, as top-level fields.
    #[serde(flatten)]
    pub time: TimeParts,
    /// Whether product 1 was viewed.
    #[serde(rename = "isViewedProduct1")]
    pub is_viewed_product1: bool,
    /// Whether product 2 was viewed.
    #[serde(rename = "isViewedProduct2")]
    pub is_viewed_product2: bool,
    /// Whether product 3 was viewed.
    #[serde(rename = "isViewedProduct3")]
    pub is_viewed_product3: bool,
    /// Whether product 4 was viewed.
    #[serde(rename = "isViewedProduct4")]
    pub is_viewed_product4: bool,
    /// Whether product 5 was viewed.
    #[serde(rename = "isViewedProduct5")]
    pub is_viewed_product5: bool,
    /// Whether product 6 was viewed.
    #[serde(rename = "isViewedProduct6")]
    pub is_viewed_product6: bool,
    /// Whether product 7 was viewed.
    #[serde(rename = "isViewedProduct7")]
    pub is_viewed_product7: bool,
    /// Whether product 8 was viewed.
    #[serde(rename = "isViewedProduct8")]
    pub is_viewed_product8: bool,
    /// Whether product 9 was viewed.
    #[serde(rename = "isViewedProduct9")]
    pub is_viewed_product9: bool,
    /// Whether product 10 was viewed.
    #[serde(rename = "isViewedProduct10")]
    pub is_viewed_product10: bool,

    /// Viewed product ids in order.
    pub product_ids: &'a [u8],
    /// Distinct categories viewed, in first-seen order.
    pub categories: Vec<&'a str>,
    /// Session length in seconds.
    pub session_duration: u32,
    /// Product pages viewed.
    pub page_views: u32,
    /// Clicks.
    pub clicks: u32,
    /// Total seconds on product pages.
    pub total_time_on_pages: u64,
    /// Where the user came from.
    pub referrer: &'static str,
    /// Device kind.
    pub device_type: &'static str,
    /// Gender as recorded.
    pub gender: &'static str,
    /// Country.
    pub country: &'a str,
    /// State.
    pub state: &'a str,
    /// The last action.
    pub action: &'static str,
    /// Page the session ended on.
    pub exit_page: &'a str,
    /// Whether a purchase was made.
    pub purchase_made: bool,
    /// Amount spent (0 without a purchase).
    pub amount_spent: u64,
    /// Payment method (`None` without a purchase).
    pub payment_method: &'static str,
    /// Number of reviews written.
    pub review_count: u32,
    /// Reviews labelled positive.
    pub positive_reviews: u32,
    /// Reviews labelled neutral.
    pub neutral_reviews: u32,
    /// Reviews labelled negative.
    pub negative_reviews: u32,
    /// Mean compound score of the reviews (absent without reviews).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg_review_compound: Option<f64>,
    /// The real-time "potential customer" signal (see [`PotentialCustomerRule`]).
    pub potential_customer: bool,
}

#[cfg(test)]
/// One viewed product page.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProductDoc<'a> {
    /// Session id.
    pub session_id: &'a str,
    /// Opaque user id.
    pub user_id: &'a str,
    /// 1-based position in the browsing order.
    pub position: u32,
    /// Product id, 1-10.
    pub product_id: u8,
    /// Product name.
    pub product_name: &'a str,
    /// Price.
    pub price: u32,
    /// Room category.
    pub category: &'a str,
    /// Seconds on this page.
    pub time_on_page: u32,
    /// The review of this product, if one was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<&'a str>,
    /// Sentiment of the review (absent without a review).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_sentiment: Option<&'static str>,
    /// VADER compound score of the review (absent without a review).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_compound: Option<f64>,
    /// The session's last action.
    pub action: &'static str,
    /// Whether the session ended in a purchase.
    pub purchase_made: bool,
    /// Revenue from this product: its price with a purchase, else 0.
    pub revenue: u64,
    /// Whether the session ended on this page.
    pub is_exit_page: bool,
    /// Referrer of the session.
    pub referrer: &'static str,
    /// Device kind of the session.
    pub device_type: &'static str,
    /// Session start.
    pub timestamp: Timestamp,
}

#[cfg(test)]
/// Document id of the product row at 1-based `position`.
pub(crate) fn product_doc_id(session_id: &str, position: u32) -> String {
    ProductDocId(session_id, position).to_string()
}

/// The id `sessionId:position` of a product row, serialised without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductDocId<'a>(pub &'a str, pub u32);

impl std::fmt::Display for ProductDocId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

impl Serialize for ProductDocId<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why a session cannot be written (it goes to the dead-letter topic instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwritable {
    /// Stable reason code.
    pub reason: &'static str,
    /// Human-readable detail.
    pub message: String,
}

#[cfg(test)]
/// Checks what the schema does not but Elasticsearch requires: every document id of the
/// session fits [`MAX_ID_BYTES`].
pub(crate) fn check_writable(session: &Session) -> Result<(), Unwritable> {
    check_ids(&session.session_id, session.page_views)
}

/// [`check_writable`] on the two fields it looks at: the longest id is
/// `sessionId:pageViews`.
pub fn check_ids(session_id: &str, page_views: u32) -> Result<(), Unwritable> {
    let digits = page_views.max(1).ilog10() as usize + 1;
    let longest = session_id.len() + 1 + digits;
    if longest > MAX_ID_BYTES {
        return Err(Unwritable {
            reason: "id_too_long",
            message: format!(
                "sessionId is {} bytes; document ids would reach {longest} bytes, over the \
                 limit of {MAX_ID_BYTES}",
                session_id.len()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
/// Builds the session summary from the session and the scores of its reviews (one entry per
/// viewed page, `None` where no review was written).
pub(crate) fn session_doc<'a>(
    session: &'a Session,
    reviews: &[Option<Scores>],
    rule: &PotentialCustomerRule,
) -> SessionDoc<'a> {
    let mut categories: Vec<&str> = Vec::with_capacity(4);
    for c in &session.product_categories {
        if !categories.contains(&c.as_str()) {
            categories.push(c);
        }
    }
    let (mut pos, mut neu, mut neg, mut sum) = (0u32, 0u32, 0u32, 0.0f64);
    for s in reviews.iter().flatten() {
        match s.label() {
            Label::Positive => pos += 1,
            Label::Neutral => neu += 1,
            Label::Negative => neg += 1,
        }
        sum += s.compound;
    }
    let count = pos + neu + neg;
    let timestamp = Timestamp::of(&session.session_timestamp);
    let time = TimeParts::of(&session.session_timestamp);
    let ViewedFlags(viewed) = ViewedFlags::of(session);
    SessionDoc {
        session_id: &session.session_id,
        user_id: &session.user_id,
        timestamp,
        time,
        is_viewed_product1: viewed[0],
        is_viewed_product2: viewed[1],
        is_viewed_product3: viewed[2],
        is_viewed_product4: viewed[3],
        is_viewed_product5: viewed[4],
        is_viewed_product6: viewed[5],
        is_viewed_product7: viewed[6],
        is_viewed_product8: viewed[7],
        is_viewed_product9: viewed[8],
        is_viewed_product10: viewed[9],
        product_ids: &session.product_ids,
        categories,
        session_duration: session.session_duration,
        page_views: session.page_views,
        clicks: session.clicks,
        total_time_on_pages: total_time_on_pages(session),
        referrer: session.referrer.as_str(),
        device_type: session.device_information.device_type.as_str(),
        gender: session.gender.as_str(),
        country: &session.location_data.country,
        state: &session.location_data.state,
        action: session.actions.as_str(),
        exit_page: &session.exit_page,
        purchase_made: session.purchase_made,
        amount_spent: session.amount_spent,
        payment_method: session.payment_method_type.as_str(),
        review_count: count,
        positive_reviews: pos,
        neutral_reviews: neu,
        negative_reviews: neg,
        avg_review_compound: (count > 0).then(|| round4(sum / f64::from(count))),
        potential_customer: rule.applies(session),
    }
}

pub(crate) fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
/// Builds the product rows of a session (one per viewed page, in viewing order), with the
/// scores of the reviews (parallel to the pages).
pub(crate) fn product_docs<'a>(
    session: &'a Session,
    reviews: &[Option<Scores>],
) -> Vec<ProductDoc<'a>> {
    let referrer = session.referrer.as_str();
    let device_type = session.device_information.device_type.as_str();
    let action = session.actions.as_str();
    let timestamp = Timestamp::of(&session.session_timestamp);
    (0..session.product_ids.len())
        .map(|i| {
            let scores = reviews.get(i).copied().flatten();
            let price = session.product_prices[i];
            ProductDoc {
                session_id: &session.session_id,
                user_id: &session.user_id,
                position: (i + 1) as u32,
                product_id: session.product_ids[i],
                product_name: &session.product_names[i],
                price,
                category: &session.product_categories[i],
                time_on_page: session.time_spent_on_each_page[i],
                review: session.product_reviews[i].as_deref(),
                review_sentiment: scores.map(|s| s.label().as_str()),
                review_compound: scores.map(|s| s.compound),
                action,
                purchase_made: session.purchase_made,
                revenue: if session.purchase_made { u64::from(price) } else { 0 },
                is_exit_page: session.product_names[i] == session.exit_page,
                referrer,
                device_type,
                timestamp,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopstream_schema::parse_session;

    const SEED: &str = include_str!("../tests/data/seed-format-example.jsonl");

    fn sessions() -> Vec<Session> {
        SEED.lines().map(|l| parse_session(l.as_bytes()).expect("seed parses")).collect()
    }

    fn scores_of(s: &Session) -> Vec<Option<Scores>> {
        s.product_reviews
            .iter()
            .map(|r| r.as_deref().map(|t| shopstream_sentiment::analyzer().polarity_scores(t)))
            .collect()
    }

    #[test]
    fn time_parts() {
        let t = |s: &str| NaiveDateTime::parse_from_str(s, TIMESTAMP_FORMAT).expect("ts");
        // 2026-11-20 is a Friday in ISO week 47.
        let p = TimeParts::of(&t("2026-11-20T14:03:27"));
        assert_eq!((p.hour, p.day_of_week, p.day_name, p.is_weekend), (14, 5, "Friday", false));
        assert_eq!((p.month, p.iso_week, p.iso_year, p.part_of_day), (11, 47, 2026, "afternoon"));
        // 2027-01-02 is a Saturday that still belongs to ISO week 53 of 2026.
        let p = TimeParts::of(&t("2027-01-02T05:59:59"));
        assert_eq!((p.day_of_week, p.is_weekend, p.iso_week, p.iso_year), (6, true, 53, 2026));
        assert_eq!(p.part_of_day, "night");
        assert_eq!(TimeParts::of(&t("2026-11-22T23:00:00")).day_name, "Sunday");
        assert_eq!(part_of_day(6), "morning");
        assert_eq!(part_of_day(12), "afternoon");
        assert_eq!(part_of_day(18), "evening");
    }

    #[test]
    fn session_summary_of_the_seed_records() {
        let all = sessions();
        let rule = PotentialCustomerRule::default();
        let bought = &all[0];
        let doc = session_doc(bought, &scores_of(bought), &rule);
        let v = serde_json::to_value(&doc).expect("json");
        assert_eq!(v["sessionId"], "3f1c2a9e-8b1d-4c55-9a0e-2d7b6f4e1a01");
        assert_eq!(v["timestamp"], "2026-11-20T14:03:27");
        assert_eq!(v["dayOfWeek"], 5);
        for (id, want) in [(1, false), (2, true), (3, false), (4, true), (5, true), (6, true)] {
            assert_eq!(v[ViewedFlags::field(id)], want, "product {id}");
        }
        assert_eq!(v["isViewedProduct10"], false);
        assert_eq!(v["totalTimeOnPages"], 95 + 12 + 64 + 40);
        assert_eq!(v["categories"], serde_json::json!(["bedroom", "living room"]));
        assert_eq!(v["amountSpent"], 6880);
        assert_eq!(v["purchaseMade"], true);
        assert_eq!(v["potentialCustomer"], false);
        assert_eq!(v["reviewCount"], 4);
        let labelled = doc.positive_reviews + doc.neutral_reviews + doc.negative_reviews;
        assert_eq!(labelled, 4);
        assert!(doc.positive_reviews >= 1 && doc.negative_reviews >= 1, "{doc:?}");

        let browsed = &all[1];
        let doc = session_doc(browsed, &scores_of(browsed), &rule);
        let v = serde_json::to_value(&doc).expect("json");
        assert_eq!(v["reviewCount"], 0);
        assert!(v.get("avgReviewCompound").is_none());
        assert_eq!(v["partOfDay"], "night");
        // 33 + 101 + 18 = 152 s without a purchase: under the default 180 s.
        assert_eq!(v["potentialCustomer"], false);
        let lenient = PotentialCustomerRule { min_seconds: 152 };
        assert!(session_doc(browsed, &[], &lenient).potential_customer);
        let strict = PotentialCustomerRule { min_seconds: 153 };
        assert!(!session_doc(browsed, &[], &strict).potential_customer);
        // A purchase is never a potential customer, however long the viewing.
        assert!(!PotentialCustomerRule { min_seconds: 0 }.applies(bought));
    }

    #[test]
    fn product_rows() {
        let s = &sessions()[0];
        let rows = product_docs(s, &scores_of(s));
        assert_eq!(rows.len(), 4);
        let v = serde_json::to_value(&rows[2]).expect("json");
        assert_eq!(v["position"], 3);
        assert_eq!(v["productId"], 6);
        assert_eq!(v["productName"], "dresser");
        assert_eq!(v["price"], 1290);
        assert_eq!(v["category"], "bedroom");
        assert_eq!(v["timeOnPage"], 64);
        assert_eq!(v["revenue"], 1290);
        assert_eq!(v["isExitPage"], true);
        assert_eq!(v["reviewSentiment"], "negative");
        let compound = v["reviewCompound"].as_f64().expect("compound");
        assert!(compound <= -0.05);
        assert_eq!(product_doc_id(&s.session_id, 3), format!("{}:3", s.session_id));

        let s = &sessions()[1];
        let rows = product_docs(s, &scores_of(s));
        let v = serde_json::to_value(&rows[0]).expect("json");
        assert!(v.get("review").is_none() && v.get("reviewSentiment").is_none());
        assert_eq!(v["revenue"], 0);
    }

    #[test]
    fn personal_fields_never_reach_the_documents() {
        for s in sessions() {
            let scores = scores_of(&s);
            let mut text = serde_json::to_string(&session_doc(&s, &scores, &Default::default()))
                .expect("json");
            for row in product_docs(&s, &scores) {
                text.push_str(&serde_json::to_string(&row).expect("json"));
            }
            for secret in [
                &s.email,
                &s.name,
                &s.ip_address,
                &s.location_data.city,
                &s.location_data.zip_code,
                &s.device_information.operating_system,
                &s.device_information.browser_type,
            ] {
                assert!(!text.contains(secret.as_str()), "{secret} leaked into {text}");
            }
        }
    }

    #[test]
    fn over_long_ids_are_refused() {
        let mut s = sessions()[0].clone();
        assert!(check_writable(&s).is_ok());
        // Four pages: the longest id is the session id plus ":4".
        s.session_id = "x".repeat(MAX_ID_BYTES - 1);
        let e = check_writable(&s).expect_err("too long");
        assert_eq!(e.reason, "id_too_long");
        s.session_id = "x".repeat(MAX_ID_BYTES - 2);
        assert!(check_writable(&s).is_ok());
    }
}
