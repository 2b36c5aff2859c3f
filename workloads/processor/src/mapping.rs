//! Index names, explicit mappings and index templates of the processor's indexes.
//!
//! Both indexes use `dynamic: strict`: a document with a field the mapping does not declare is
//! rejected, so the mapping here is the complete, authoritative list of fields (the Kibana
//! saved objects are checked against it).

use serde_json::{Map, Value, json};

/// Names of the processor's indexes under a prefix (e.g. `shopstream-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexes {
    /// Session summaries.
    pub sessions: String,
    /// One row per viewed product.
    pub products: String,
}

impl Indexes {
    /// `<prefix>sessions` and `<prefix>products`.
    pub fn with_prefix(prefix: &str) -> Indexes {
        Indexes { sessions: format!("{prefix}sessions"), products: format!("{prefix}products") }
    }

    /// Each index with its mapping.
    pub fn with_mappings(&self) -> [(&str, Value); 2] {
        [(&self.sessions, session_mapping()), (&self.products, product_mapping())]
    }
}

const DATE_FORMAT: &str = "strict_date_hour_minute_second||strict_date_optional_time";

fn props(fields: &[(&str, Value)]) -> Value {
    let mut m = Map::new();
    for (name, v) in fields {
        m.insert((*name).to_string(), v.clone());
    }
    Value::Object(m)
}

fn t(kind: &str) -> Value {
    json!({ "type": kind })
}

/// The mapping of the session summaries (the reference `SessionDoc` in `documents.rs`).
pub fn session_mapping() -> Value {
    let mut fields: Vec<(String, Value)> = vec![
        ("sessionId".into(), t("keyword")),
        ("userId".into(), t("keyword")),
        ("timestamp".into(), json!({ "type": "date", "format": DATE_FORMAT })),
        ("hour".into(), t("integer")),
        ("dayOfWeek".into(), t("integer")),
        ("dayName".into(), t("keyword")),
        ("isWeekend".into(), t("boolean")),
        ("month".into(), t("integer")),
        ("isoWeek".into(), t("integer")),
        ("isoYear".into(), t("integer")),
        ("partOfDay".into(), t("keyword")),
        ("productIds".into(), t("integer")),
        ("categories".into(), t("keyword")),
        ("sessionDuration".into(), t("integer")),
        ("pageViews".into(), t("integer")),
        ("clicks".into(), t("integer")),
        ("totalTimeOnPages".into(), t("long")),
        ("referrer".into(), t("keyword")),
        ("deviceType".into(), t("keyword")),
        ("gender".into(), t("keyword")),
        ("country".into(), t("keyword")),
        ("state".into(), t("keyword")),
        ("action".into(), t("keyword")),
        ("exitPage".into(), t("keyword")),
        ("purchaseMade".into(), t("boolean")),
        ("amountSpent".into(), t("long")),
        ("paymentMethod".into(), t("keyword")),
        ("reviewCount".into(), t("integer")),
        ("positiveReviews".into(), t("integer")),
        ("neutralReviews".into(), t("integer")),
        ("negativeReviews".into(), t("integer")),
        ("avgReviewCompound".into(), t("float")),
        ("potentialCustomer".into(), t("boolean")),
    ];
    for id in 1..=shopstream_schema::PRODUCT_COUNT {
        fields.push((crate::documents::ViewedFlags::field(id), t("boolean")));
    }
    let fields: Vec<(&str, Value)> = fields.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    json!({ "dynamic": "strict", "properties": props(&fields) })
}

/// The mapping of the product rows (the reference `ProductDoc` in `documents.rs`).
pub fn product_mapping() -> Value {
    let fields = [
        ("sessionId", t("keyword")),
        ("userId", t("keyword")),
        ("position", t("integer")),
        ("productId", t("integer")),
        ("productName", t("keyword")),
        ("price", t("integer")),
        ("category", t("keyword")),
        ("timeOnPage", t("integer")),
        (
            "review",
            json!({ "type": "text", "fields": { "raw": { "type": "keyword", "ignore_above": 512 } } }),
        ),
        ("reviewSentiment", t("keyword")),
        ("reviewCompound", t("float")),
        ("action", t("keyword")),
        ("purchaseMade", t("boolean")),
        ("revenue", t("long")),
        ("isExitPage", t("boolean")),
        ("referrer", t("keyword")),
        ("deviceType", t("keyword")),
        ("timestamp", json!({ "type": "date", "format": DATE_FORMAT })),
    ];
    json!({ "dynamic": "strict", "properties": props(&fields) })
}

/// Index settings: one shard (the volume is small), refresh every second.
pub fn index_settings() -> Value {
    json!({ "number_of_shards": 1, "refresh_interval": "1s" })
}

/// The index template for `index`: matches the exact name and any `index-*` rollover.
pub fn index_template(index: &str, mapping: &Value) -> Value {
    json!({
        "index_patterns": [index, format!("{index}-*")],
        "priority": 200,
        "template": { "settings": index_settings(), "mappings": mapping },
        "_meta": { "managed_by": "shopstream-processor" }
    })
}

/// The field names of a mapping, with their types; sub-fields (`review.raw`) are listed as
/// `parent.sub`.
pub fn field_types(mapping: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(props) = mapping.get("properties").and_then(Value::as_object) {
        for (name, def) in props {
            let kind = def.get("type").and_then(Value::as_str).unwrap_or("object");
            out.push((name.clone(), kind.to_string()));
            if let Some(subs) = def.get("fields").and_then(Value::as_object) {
                for (sub, sdef) in subs {
                    let skind = sdef.get("type").and_then(Value::as_str).unwrap_or("object");
                    out.push((format!("{name}.{sub}"), skind.to_string()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::{PotentialCustomerRule, product_docs, session_doc};
    use shopstream_schema::parse_session;
    use std::collections::BTreeSet;

    fn keys(v: &Value) -> BTreeSet<String> {
        v.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    fn mapped(m: &Value) -> BTreeSet<String> {
        keys(&m["properties"])
    }

    #[test]
    fn every_document_field_is_mapped_and_every_mapped_field_is_written() {
        let mut session_fields = BTreeSet::new();
        let mut product_fields = BTreeSet::new();
        for line in include_str!("../tests/data/seed-format-example.jsonl").lines() {
            let s = parse_session(line.as_bytes()).expect("seed");
            let scores: Vec<_> = s
                .product_reviews
                .iter()
                .map(|r| r.as_deref().map(|t| shopstream_sentiment::analyzer().polarity_scores(t)))
                .collect();
            let doc =
                serde_json::to_value(session_doc(&s, &scores, &PotentialCustomerRule::default()))
                    .expect("json");
            session_fields.extend(keys(&doc));
            for row in product_docs(&s, &scores) {
                product_fields.extend(keys(&serde_json::to_value(row).expect("json")));
            }
        }
        assert_eq!(session_fields, mapped(&session_mapping()));
        assert_eq!(product_fields, mapped(&product_mapping()));
    }

    #[test]
    fn templates_and_names() {
        let ix = Indexes::with_prefix("t1-");
        assert_eq!(ix.sessions, "t1-sessions");
        assert_eq!(ix.products, "t1-products");
        let tpl = index_template(&ix.sessions, &session_mapping());
        assert_eq!(tpl["index_patterns"], json!(["t1-sessions", "t1-sessions-*"]));
        assert_eq!(tpl["template"]["mappings"]["dynamic"], "strict");
        let types = field_types(&product_mapping());
        assert!(types.contains(&("review.raw".to_string(), "keyword".to_string())));
        assert!(types.contains(&("revenue".to_string(), "long".to_string())));
    }
}
