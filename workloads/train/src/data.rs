//! Loading sessions: from a JSON-lines file in the original record format, or from the
//! MongoDB `user_sessions` collection the sink writes (flattened, pseudonymised).

use std::path::Path;

use futures::TryStreamExt;
use mongodb::bson::{self, Document};
use shopstream_documents::user_sessions::UserSessionDocument;
use shopstream_schema::{Session, parse_session};

/// Placeholder for the IP address when reading from MongoDB: the sink stores an HMAC pseudonym
/// (not an address), and the IP is not a model feature.
pub const PSEUDONYMISED_IP: &str = "0.0.0.0";

/// Domain appended to the e-mail pseudonym (the sink stores an HMAC, not an address; the
/// e-mail is not a model feature).
pub const PSEUDONYMISED_EMAIL_DOMAIN: &str = "pseudonym.invalid";

/// What loading found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadStats {
    /// Sessions accepted.
    pub sessions: usize,
    /// Records rejected by schema validation.
    pub rejected: usize,
    /// Duplicate session ids dropped (first kept).
    pub duplicates: usize,
}

/// Reads a JSON-lines file (invalid lines are counted, not fatal; duplicates dropped).
pub fn from_jsonl(path: &Path) -> anyhow::Result<(Vec<Session>, LoadStats)> {
    let report = shopstream_features::load_jsonl(path)?;
    for r in report.rejected.iter().take(5) {
        tracing::warn!(line = r.line, error = %r.error, "rejected session record");
    }
    let stats = LoadStats {
        sessions: report.sessions.len(),
        rejected: report.rejected.len(),
        duplicates: report.duplicates,
    };
    Ok((report.sessions, stats))
}

/// Rebuilds the original nested record from a `user_sessions` document and validates it with
/// the schema crate.
pub fn session_from_document(doc: Document) -> Result<Session, String> {
    let d: UserSessionDocument =
        bson::from_document(doc).map_err(|e| format!("unexpected document shape: {e}"))?;
    let ts = chrono::DateTime::from_timestamp_millis(d.session_timestamp.timestamp_millis())
        .ok_or_else(|| "sessionTimestamp out of range".to_string())?
        .naive_utc()
        .format(shopstream_schema::TIMESTAMP_FORMAT)
        .to_string();
    let record = serde_json::json!({
        "sessionId": d.session_id, "userId": d.user_id, "sessionTimestamp": ts,
        "productIds": d.product_ids, "productNames": d.product_names,
        "productPrices": d.product_prices, "productCategories": d.product_categories,
        "productReviews": d.product_reviews, "name": d.name, "gender": d.gender,
        "email": format!("{}@{PSEUDONYMISED_EMAIL_DOMAIN}", d.email),
        "deviceInformation": { "deviceType": d.device_type, "operatingSystem": d.operating_system,
                               "browserType": d.browser_type },
        "locationData": { "country": d.country, "state": d.state, "city": d.city, "zipCode": d.zip_code },
        "ipAddress": PSEUDONYMISED_IP, "sessionDuration": d.session_duration,
        "pageViews": d.page_views, "browsingPattern": d.browsing_pattern,
        "timeSpentonEachPage": d.time_spent_on_each_page, "clicks": d.clicks,
        "actions": d.actions, "referrer": d.referrer, "exitPage": d.exit_page,
        "purchaseMade": d.purchase_made, "amountSpent": d.amount_spent,
        "paymentMethodType": d.payment_method_type,
    });
    parse_session(record.to_string().as_bytes()).map_err(|e| e.to_string())
}

/// Reads every document of `collection` (invalid ones counted, not fatal).
pub async fn from_mongo(
    db: &mongodb::Database,
    collection: &str,
) -> anyhow::Result<(Vec<Session>, LoadStats)> {
    let mut cursor = db.collection::<Document>(collection).find(bson::doc! {}).await?;
    let mut sessions = Vec::new();
    let mut stats = LoadStats::default();
    let mut seen = std::collections::HashSet::new();
    while let Some(doc) = cursor.try_next().await? {
        match session_from_document(doc) {
            Ok(s) => {
                if seen.insert(s.session_id.clone()) {
                    sessions.push(s);
                } else {
                    stats.duplicates += 1;
                }
            }
            Err(e) => {
                if stats.rejected < 5 {
                    tracing::warn!(error = %e, "rejected user_sessions document");
                }
                stats.rejected += 1;
            }
        }
    }
    stats.sessions = sessions.len();
    Ok((sessions, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_document_round_trips_to_the_session() {
        let s: Session = serde_json::from_str(shopstream_features::EXAMPLE_SESSION).unwrap();
        let key = shopstream_pseudonym::Pseudonymizer::new(&[3u8; 32]).unwrap();
        let mut doc = shopstream_documents::user_sessions::to_bson(
            &shopstream_documents::user_sessions::flatten(&s, &key),
        )
        .unwrap();
        let back = session_from_document(doc.clone()).unwrap();
        let enc = shopstream_features::FeatureSpec::default().fit(&[]);
        assert_eq!(enc.transform_one(&back), enc.transform_one(&s), "same features");
        assert_eq!(back.purchase_made, s.purchase_made);
        assert_eq!(back.session_timestamp, s.session_timestamp);
        doc.insert("clicks", "many");
        assert!(session_from_document(doc).is_err());
    }
}
