//! Writes the documents of one session straight into a `_bulk` body.
//!
//! The output is byte for byte what `serde_json` makes of `SessionDoc` (in `crate::documents`, test-only)
//! and `ProductDoc` (same field order, same number formatting:
//! `itoa` for integers and `ryu` for floats, as `serde_json` uses them; same string escapes);
//! the tests compare the two on generated sessions. What is written directly rather than
//! through `serde` is the work done once per session: the text shared by a session's product
//! rows (ids, action, referrer, device, timestamp) is formatted once and copied per row, and
//! the catalogue's parts of each row are formatted once per process.

use shopstream_schema::catalog::product;
use shopstream_schema::{PRODUCT_COUNT, PRODUCTS};
use shopstream_sentiment::{Label, Scores};

use crate::bulk::Batch;
use crate::documents::{PotentialCustomerRule, TimeParts, Timestamp};
use crate::mapping::Indexes;
use shopstream_schema::SessionView;

/// `serde_json`'s escape table: `0` = as is, `u` = `\u00XX`, anything else = backslash + it.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0A] = b'n';
    t[0x0C] = b'f';
    t[0x0D] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The keys of the ten viewed-product flags.
const VIEWED_KEYS: [&[u8]; PRODUCT_COUNT] = [
    b",\"isViewedProduct1\":",
    b",\"isViewedProduct2\":",
    b",\"isViewedProduct3\":",
    b",\"isViewedProduct4\":",
    b",\"isViewedProduct5\":",
    b",\"isViewedProduct6\":",
    b",\"isViewedProduct7\":",
    b",\"isViewedProduct8\":",
    b",\"isViewedProduct9\":",
    b",\"isViewedProduct10\":",
];

/// Whether any of the 8 bytes of `chunk` needs escaping (`< 0x20`, `"` or `\\`), eight at a
/// time (the usual has-zero-byte bit trick).
fn needs_escape(chunk: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    // Bytes below 0x20: subtracting 0x20 borrows into the high bit only for them (bytes with
    // the high bit set are masked out by `!chunk`).
    let control = chunk.wrapping_sub(ONES * 0x20) & !chunk & HIGH;
    control
        | has_zero(chunk ^ (ONES * u64::from(b'"')))
        | has_zero(chunk ^ (ONES * u64::from(b'\\')))
        != 0
}

/// Appends the contents of a JSON string (without quotes), escaped as `serde_json` escapes.
pub fn escape_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Skip the (usual) run of bytes that need no escape, eight at a time.
    let mut clean = 0;
    for chunk in bytes.chunks_exact(8) {
        let word = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        if needs_escape(word) {
            break;
        }
        clean += 8;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
        let esc = ESCAPE[usize::from(b)];
        if esc == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if esc == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xF)]);
        } else {
            out.push(b'\\');
            out.push(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends a quoted, escaped JSON string.
pub fn string_into(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_into(out, s);
    out.push(b'"');
}

fn int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn float(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// `"key":` then a string.
fn field_str(out: &mut Vec<u8>, key: &[u8], value: &str) {
    out.extend_from_slice(key);
    string_into(out, value);
}

/// Writes the documents of valid sessions into `_bulk` batches.
#[derive(Debug, Clone)]
pub struct DocWriter {
    rule: PotentialCustomerRule,
    /// `{"index":{"_index":"<sessions>","_id":"`
    session_action: Vec<u8>,
    /// `{"index":{"_index":"<products>","_id":"`
    product_action: Vec<u8>,
    /// Per product id - 1: `,"productId":N,"productName":"..","price":`
    product_head: Vec<Vec<u8>>,
    /// Per product id - 1: `,"category":"..","timeOnPage":`
    product_tail: Vec<Vec<u8>>,
    /// Per-session scratch: the escaped session id, and the text shared by the product rows.
    id: Vec<u8>,
    row_start: Vec<u8>,
    row_middle: Vec<u8>,
    row_end: Vec<u8>,
}

fn action_prefix(index: &str) -> Vec<u8> {
    let mut v = b"{\"index\":{\"_index\":".to_vec();
    string_into(&mut v, index);
    v.extend_from_slice(b",\"_id\":\"");
    v
}

impl DocWriter {
    /// A writer into `indexes` with the given potential-customer rule.
    pub fn new(indexes: &Indexes, rule: PotentialCustomerRule) -> DocWriter {
        let mut product_head = Vec::with_capacity(PRODUCT_COUNT);
        let mut product_tail = Vec::with_capacity(PRODUCT_COUNT);
        for p in &PRODUCTS {
            let mut head = b",\"productId\":".to_vec();
            int(&mut head, p.id);
            field_str(&mut head, b",\"productName\":", p.name);
            head.extend_from_slice(b",\"price\":");
            product_head.push(head);
            let mut tail = Vec::new();
            field_str(&mut tail, b",\"category\":", p.category);
            tail.extend_from_slice(b",\"timeOnPage\":");
            product_tail.push(tail);
        }
        DocWriter {
            rule,
            session_action: action_prefix(&indexes.sessions),
            product_action: action_prefix(&indexes.products),
            product_head,
            product_tail,
            id: Vec::with_capacity(64),
            row_start: Vec::with_capacity(128),
            row_middle: Vec::with_capacity(64),
            row_end: Vec::with_capacity(128),
        }
    }

    /// Appends the session summary and the product rows of `s` to `batch`, tagged with
    /// `record`; `scores` holds the sentiment of each page's review (`None` without one).
    /// Returns the number of product rows.
    pub fn write(
        &mut self,
        batch: &mut Batch,
        record: usize,
        s: &SessionView<'_>,
        scores: &[Option<Scores>],
    ) -> usize {
        let timestamp = Timestamp::of(&s.timestamp);
        self.id.clear();
        escape_into(&mut self.id, s.session_id);
        batch.push_with(record, |out| {
            out.extend_from_slice(&self.session_action);
            out.extend_from_slice(&self.id);
            out.extend_from_slice(b"\"}}\n");
            self.session_doc(out, s, scores, &timestamp);
        });

        // The parts every row of this session shares.
        self.row_start.clear();
        self.row_start.extend_from_slice(b"{\"sessionId\":\"");
        self.row_start.extend_from_slice(&self.id);
        self.row_start.push(b'"');
        field_str(&mut self.row_start, b",\"userId\":", s.user_id);
        self.row_start.extend_from_slice(b",\"position\":");
        self.row_middle.clear();
        field_str(&mut self.row_middle, b",\"action\":", s.action.as_str());
        self.row_middle.extend_from_slice(b",\"purchaseMade\":");
        boolean(&mut self.row_middle, s.purchase_made);
        self.row_middle.extend_from_slice(b",\"revenue\":");
        self.row_end.clear();
        field_str(&mut self.row_end, b",\"referrer\":", s.referrer.as_str());
        field_str(&mut self.row_end, b",\"deviceType\":", s.device_type.as_str());
        field_str(&mut self.row_end, b",\"timestamp\":", timestamp.as_str());
        self.row_end.push(b'}');

        let mut rows = 0;
        for (i, &id) in s.product_ids.iter().enumerate() {
            // A valid session's ids are all in the catalogue.
            let Some(p) = product(id) else { continue };
            let slot = usize::from(id) - 1;
            let position = i + 1;
            let price = s.product_prices[i];
            let score = scores.get(i).copied().flatten();
            batch.push_with(record, |out| {
                out.extend_from_slice(&self.product_action);
                out.extend_from_slice(&self.id);
                out.push(b':');
                int(out, position);
                out.extend_from_slice(b"\"}}\n");
                out.extend_from_slice(&self.row_start);
                int(out, position);
                out.extend_from_slice(&self.product_head[slot]);
                int(out, price);
                out.extend_from_slice(&self.product_tail[slot]);
                int(out, s.time_spent_on_each_page[i]);
                if let Some(review) = s.product_reviews[i] {
                    field_str(out, b",\"review\":", review);
                }
                if let Some(sc) = score {
                    field_str(out, b",\"reviewSentiment\":", sc.label().as_str());
                    out.extend_from_slice(b",\"reviewCompound\":");
                    float(out, sc.compound);
                }
                out.extend_from_slice(&self.row_middle);
                int(out, if s.purchase_made { u64::from(price) } else { 0 });
                out.extend_from_slice(b",\"isExitPage\":");
                boolean(out, p.name == s.exit_page);
                out.extend_from_slice(&self.row_end);
            });
            rows += 1;
        }
        rows
    }

    fn session_doc(
        &self,
        out: &mut Vec<u8>,
        s: &SessionView<'_>,
        scores: &[Option<Scores>],
        timestamp: &Timestamp,
    ) {
        let time = TimeParts::of(&s.timestamp);
        out.extend_from_slice(b"{\"sessionId\":\"");
        out.extend_from_slice(&self.id);
        out.push(b'"');
        field_str(out, b",\"userId\":", s.user_id);
        field_str(out, b",\"timestamp\":", timestamp.as_str());
        out.extend_from_slice(b",\"hour\":");
        int(out, time.hour);
        out.extend_from_slice(b",\"dayOfWeek\":");
        int(out, time.day_of_week);
        field_str(out, b",\"dayName\":", time.day_name);
        out.extend_from_slice(b",\"isWeekend\":");
        boolean(out, time.is_weekend);
        out.extend_from_slice(b",\"month\":");
        int(out, time.month);
        out.extend_from_slice(b",\"isoWeek\":");
        int(out, time.iso_week);
        out.extend_from_slice(b",\"isoYear\":");
        int(out, time.iso_year);
        field_str(out, b",\"partOfDay\":", time.part_of_day);
        let mut viewed = [false; PRODUCT_COUNT];
        for &id in s.product_ids {
            if let Some(slot) = usize::from(id).checked_sub(1).and_then(|i| viewed.get_mut(i)) {
                *slot = true;
            }
        }
        for (key, v) in VIEWED_KEYS.iter().zip(viewed) {
            out.extend_from_slice(key);
            boolean(out, v);
        }
        out.extend_from_slice(b",\"productIds\":[");
        for (k, &id) in s.product_ids.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            int(out, id);
        }
        out.extend_from_slice(b"],\"categories\":[");
        let mut seen: [&str; PRODUCT_COUNT] = [""; PRODUCT_COUNT];
        let mut distinct = 0;
        for &id in s.product_ids {
            let Some(p) = product(id) else { continue };
            if !seen[..distinct].contains(&p.category) {
                if distinct > 0 {
                    out.push(b',');
                }
                string_into(out, p.category);
                seen[distinct] = p.category;
                distinct += 1;
            }
        }
        out.extend_from_slice(b"],\"sessionDuration\":");
        int(out, s.session_duration);
        out.extend_from_slice(b",\"pageViews\":");
        int(out, s.page_views);
        out.extend_from_slice(b",\"clicks\":");
        int(out, s.clicks);
        let total: u64 = s.time_spent_on_each_page.iter().map(|&t| u64::from(t)).sum();
        out.extend_from_slice(b",\"totalTimeOnPages\":");
        int(out, total);
        field_str(out, b",\"referrer\":", s.referrer.as_str());
        field_str(out, b",\"deviceType\":", s.device_type.as_str());
        field_str(out, b",\"gender\":", s.gender.as_str());
        field_str(out, b",\"country\":", s.country);
        field_str(out, b",\"state\":", s.state);
        field_str(out, b",\"action\":", s.action.as_str());
        field_str(out, b",\"exitPage\":", s.exit_page);
        out.extend_from_slice(b",\"purchaseMade\":");
        boolean(out, s.purchase_made);
        out.extend_from_slice(b",\"amountSpent\":");
        int(out, s.amount_spent);
        field_str(out, b",\"paymentMethod\":", s.payment_method.as_str());
        let (mut pos, mut neu, mut neg, mut sum) = (0u32, 0u32, 0u32, 0.0f64);
        for sc in scores.iter().flatten() {
            match sc.label() {
                Label::Positive => pos += 1,
                Label::Neutral => neu += 1,
                Label::Negative => neg += 1,
            }
            sum += sc.compound;
        }
        let count = pos + neu + neg;
        out.extend_from_slice(b",\"reviewCount\":");
        int(out, count);
        out.extend_from_slice(b",\"positiveReviews\":");
        int(out, pos);
        out.extend_from_slice(b",\"neutralReviews\":");
        int(out, neu);
        out.extend_from_slice(b",\"negativeReviews\":");
        int(out, neg);
        if count > 0 {
            out.extend_from_slice(b",\"avgReviewCompound\":");
            float(out, crate::documents::round4(sum / f64::from(count)));
        }
        out.extend_from_slice(b",\"potentialCustomer\":");
        let potential = !s.purchase_made && total >= u64::from(self.rule.min_seconds);
        boolean(out, potential);
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::{ProductDocId, product_docs, session_doc};
    use shopstream_schema::{Session, parse_session};

    const SEED: &str = include_str!("../tests/data/seed-format-example.jsonl");

    fn scores_of(s: &Session) -> Vec<Option<Scores>> {
        s.product_reviews
            .iter()
            .map(|r| r.as_deref().map(|t| shopstream_sentiment::analyzer().polarity_scores(t)))
            .collect()
    }

    /// The reference: the `serde` documents pushed one by one.
    fn reference(s: &Session, indexes: &Indexes, rule: &PotentialCustomerRule) -> Batch {
        let scores = scores_of(s);
        let mut b = Batch::new();
        b.push(&indexes.sessions, &s.session_id, 3, &session_doc(s, &scores, rule)).expect("push");
        for row in product_docs(s, &scores) {
            b.push(&indexes.products, &ProductDocId(&s.session_id, row.position), 3, &row)
                .expect("push");
        }
        b
    }

    fn assert_same(s: &Session, indexes: &Indexes, rule: PotentialCustomerRule) {
        let want = reference(s, indexes, &rule);
        let mut got = Batch::new();
        let rows =
            DocWriter::new(indexes, rule).write(&mut got, 3, &SessionView::of(s), &scores_of(s));
        assert_eq!(rows, s.product_ids.len());
        assert_eq!(
            String::from_utf8_lossy(got.body()),
            String::from_utf8_lossy(want.body()),
            "{}",
            s.to_json()
        );
        assert_eq!(got.items(), want.items());
    }

    #[test]
    fn escapes_like_serde_json() {
        let mut all = String::new();
        for c in (0u8..0x80).map(char::from).chain("é\u{2028}😀\u{7f}".chars()) {
            all.push(c);
            let one = c.to_string();
            let mut out = Vec::new();
            string_into(&mut out, &one);
            assert_eq!(out, serde_json::to_vec(&one).expect("json"), "{c:?}");
        }
        let mut out = Vec::new();
        string_into(&mut out, &all);
        assert_eq!(out, serde_json::to_vec(&all).expect("json"));
        // Every byte needing an escape at every position of a word, among plain text.
        for c in (0u8..0x80).chain([0xC3]) {
            for at in 0..20 {
                let mut text: Vec<u8> = b"abcdefghijklmnopqrst".to_vec();
                text[at] = c;
                if c == 0xC3 {
                    text.insert(at + 1, 0xA9);
                }
                let text = String::from_utf8(text).expect("utf8");
                let mut out = Vec::new();
                string_into(&mut out, &text);
                assert_eq!(out, serde_json::to_vec(&text).expect("json"), "{c:#x} at {at}");
            }
        }
        for x in [0.0, -0.0, 0.4404, -0.5129, 1.0, -1.0, 1e-7, 0.1 + 0.2, f64::NAN] {
            let mut out = Vec::new();
            float(&mut out, x);
            assert_eq!(out, serde_json::to_vec(&x).expect("json"), "{x}");
        }
    }

    #[test]
    fn same_bytes_as_the_serde_documents() {
        let indexes = Indexes::with_prefix("w-");
        for line in SEED.lines() {
            let s = parse_session(line.as_bytes()).expect("seed");
            for min_seconds in [0, 152, 153, 180] {
                assert_same(&s, &indexes, PotentialCustomerRule { min_seconds });
            }
        }
        let mut g = shopstream_generator::Generator::new(shopstream_generator::GeneratorConfig {
            seed: 9,
            users: 300,
            ..Default::default()
        })
        .expect("generator");
        for _ in 0..3_000 {
            assert_same(&g.next_session().session, &indexes, PotentialCustomerRule::default());
        }
    }

    #[test]
    fn strings_needing_escapes_and_odd_index_names() {
        let mut s = parse_session(SEED.lines().next().expect("seed").as_bytes()).expect("seed");
        s.session_id = "a\"b\\c\u{1}\n/é".into();
        s.user_id = "\u{7f}\t😀".into();
        s.location_data.country = "Côte d'Ivoire \"CI\"".into();
        s.product_reviews[0] = Some("Great!\n\"Really\" \\o/ \u{1f}".into());
        assert_same(&s, &Indexes::with_prefix("we\"ird-"), PotentialCustomerRule::default());
    }
}
