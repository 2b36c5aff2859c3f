//! The `user_sessions` document: a session flattened as the original system stored it, with
//! personal fields pseudonymised. Pure code, no I/O.
//!
//! # Shape (exact)
//!
//! | field | BSON type | content |
//! |---|---|---|
//! | `_id` | string | = `sessionId` (the upsert key) |
//! | `sessionId`, `userId` | string | as in the record |
//! | `sessionTimestamp` | date | the record's zone-less timestamp read as UTC |
//! | `productIds`, `browsingPattern` | array of int32 | product ids `1..=10`, in viewing order |
//! | `productNames`, `productCategories` | array of string | parallel to `productIds` |
//! | `productPrices`, `timeSpentonEachPage` | array of int64 | parallel to `productIds` |
//! | `productReviews` | array of string or null | parallel to `productIds` |
//! | `name`, `email`, `ipAddress` | string | HMAC-SHA256 pseudonyms, 64 hex chars (see `shopstream-pseudonym`, fields `name`, `email`, `ipAddress`) |
//! | `gender`, `actions`, `referrer`, `paymentMethodType`, `exitPage` | string | as in the record |
//! | `deviceType`, `operatingSystem`, `browserType` | string | from `deviceInformation` |
//! | `country`, `state`, `city`, `zipCode` | string | from `locationData` |
//! | `sessionDuration`, `pageViews`, `clicks`, `amountSpent` | int64 | as in the record |
//! | `purchaseMade` | bool | as in the record |
//! | `isViewedProduct1` … `isViewedProduct10` | bool | product `i` is in `productIds` |
//!
//! The nested `deviceInformation` and `locationData` objects are not kept (their fields are at
//! the top level). [`UserSessionDocument`] (de)serialises exactly this shape with serde, so
//! readers can use it directly with the `mongodb` driver.

use mongodb::bson::{self, DateTime};
use serde::{Deserialize, Serialize};
use shopstream_pseudonym::{Pseudonymizer, fields};
use shopstream_schema::Session;

/// The collection's default name (a pipeline's sink and readers are configured with it).
pub const COLLECTION: &str = "user_sessions";

/// One document of the `user_sessions` collection (see the module docs for the shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserSessionDocument {
    /// `= session_id`.
    #[serde(rename = "_id")]
    pub id: String,
    /// Session id.
    pub session_id: String,
    /// User id.
    pub user_id: String,
    /// Session start (the record's local time, stored as UTC).
    pub session_timestamp: DateTime,
    /// Viewed product ids.
    pub product_ids: Vec<i32>,
    /// Viewed product names.
    pub product_names: Vec<String>,
    /// Viewed product prices.
    pub product_prices: Vec<i64>,
    /// Viewed product categories.
    pub product_categories: Vec<String>,
    /// Reviews (null without a purchase).
    pub product_reviews: Vec<Option<String>>,
    /// Pseudonym of the name.
    pub name: String,
    /// Gender.
    pub gender: String,
    /// Pseudonym of the e-mail address.
    pub email: String,
    /// Device type.
    pub device_type: String,
    /// Operating system (a user-agent string in the original data).
    pub operating_system: String,
    /// Browser (a user-agent string).
    pub browser_type: String,
    /// Country.
    pub country: String,
    /// State.
    pub state: String,
    /// City.
    pub city: String,
    /// Postal code.
    pub zip_code: String,
    /// Pseudonym of the IP address.
    pub ip_address: String,
    /// Session length in seconds.
    pub session_duration: i64,
    /// Pages viewed.
    pub page_views: i64,
    /// Viewed product ids in order.
    pub browsing_pattern: Vec<i32>,
    /// Seconds per page.
    #[serde(rename = "timeSpentonEachPage")]
    pub time_spent_on_each_page: Vec<i64>,
    /// Clicks.
    pub clicks: i64,
    /// Last action.
    pub actions: String,
    /// Referrer.
    pub referrer: String,
    /// Exit page (a product name).
    pub exit_page: String,
    /// Whether the session ended in a purchase.
    pub purchase_made: bool,
    /// Amount spent.
    pub amount_spent: i64,
    /// Payment method (`None` without a purchase).
    pub payment_method_type: String,
    /// Product 1 viewed.
    pub is_viewed_product1: bool,
    /// Product 2 viewed.
    pub is_viewed_product2: bool,
    /// Product 3 viewed.
    pub is_viewed_product3: bool,
    /// Product 4 viewed.
    pub is_viewed_product4: bool,
    /// Product 5 viewed.
    pub is_viewed_product5: bool,
    /// Product 6 viewed.
    pub is_viewed_product6: bool,
    /// Product 7 viewed.
    pub is_viewed_product7: bool,
    /// Product 8 viewed.
    pub is_viewed_product8: bool,
    /// Product 9 viewed.
    pub is_viewed_product9: bool,
    /// Product 10 viewed.
    pub is_viewed_product10: bool,
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Flattens and pseudonymises one session (pure; the same input gives the same document).
pub fn flatten(s: &Session, pseudonyms: &Pseudonymizer) -> UserSessionDocument {
    let viewed = |id: u8| s.product_ids.contains(&id);
    UserSessionDocument {
        id: s.session_id.clone(),
        session_id: s.session_id.clone(),
        user_id: s.user_id.clone(),
        session_timestamp: DateTime::from_millis(s.session_timestamp.and_utc().timestamp_millis()),
        product_ids: s.product_ids.iter().map(|&i| i32::from(i)).collect(),
        product_names: s.product_names.clone(),
        product_prices: s.product_prices.iter().map(|&p| i64::from(p)).collect(),
        product_categories: s.product_categories.clone(),
        product_reviews: s.product_reviews.clone(),
        name: pseudonyms.pseudonym(fields::NAME, &s.name),
        gender: s.gender.as_str().to_string(),
        email: pseudonyms.pseudonym(fields::EMAIL, &s.email),
        device_type: s.device_information.device_type.as_str().to_string(),
        operating_system: s.device_information.operating_system.clone(),
        browser_type: s.device_information.browser_type.clone(),
        country: s.location_data.country.clone(),
        state: s.location_data.state.clone(),
        city: s.location_data.city.clone(),
        zip_code: s.location_data.zip_code.clone(),
        ip_address: pseudonyms.pseudonym(fields::IP_ADDRESS, &s.ip_address),
        session_duration: i64::from(s.session_duration),
        page_views: i64::from(s.page_views),
        browsing_pattern: s.browsing_pattern.iter().map(|&i| i32::from(i)).collect(),
        time_spent_on_each_page: s.time_spent_on_each_page.iter().map(|&t| i64::from(t)).collect(),
        clicks: i64::from(s.clicks),
        actions: s.actions.as_str().to_string(),
        referrer: s.referrer.as_str().to_string(),
        exit_page: s.exit_page.clone(),
        purchase_made: s.purchase_made,
        amount_spent: i64_of(s.amount_spent),
        payment_method_type: s.payment_method_type.as_str().to_string(),
        is_viewed_product1: viewed(1),
        is_viewed_product2: viewed(2),
        is_viewed_product3: viewed(3),
        is_viewed_product4: viewed(4),
        is_viewed_product5: viewed(5),
        is_viewed_product6: viewed(6),
        is_viewed_product7: viewed(7),
        is_viewed_product8: viewed(8),
        is_viewed_product9: viewed(9),
        is_viewed_product10: viewed(10),
    }
}

/// The document as BSON (for the upsert command).
pub fn to_bson(doc: &UserSessionDocument) -> Result<bson::Document, bson::ser::Error> {
    bson::to_document(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::Bson;

    fn sessions() -> Vec<Session> {
        include_str!("../../sink/tests/data/seed.jsonl")
            .lines()
            .map(|l| shopstream_schema::parse_session(l.as_bytes()).unwrap())
            .collect()
    }

    fn key() -> Pseudonymizer {
        Pseudonymizer::new(b"unit-test-key-unit-test-key").unwrap()
    }

    #[test]
    fn flattens_every_field_with_the_exact_names_and_types() {
        let s = &sessions()[0];
        let d = to_bson(&flatten(s, &key())).unwrap();
        let names: Vec<&str> = d.keys().map(String::as_str).collect();
        let mut want = vec![
            "_id",
            "sessionId",
            "userId",
            "sessionTimestamp",
            "productIds",
            "productNames",
            "productPrices",
            "productCategories",
            "productReviews",
            "name",
            "gender",
            "email",
            "deviceType",
            "operatingSystem",
            "browserType",
            "country",
            "state",
            "city",
            "zipCode",
            "ipAddress",
            "sessionDuration",
            "pageViews",
            "browsingPattern",
            "timeSpentonEachPage",
            "clicks",
            "actions",
            "referrer",
            "exitPage",
            "purchaseMade",
            "amountSpent",
            "paymentMethodType",
        ];
        let flags: Vec<String> = (1..=10).map(|i| format!("isViewedProduct{i}")).collect();
        want.extend(flags.iter().map(String::as_str));
        assert_eq!(names, want);
        assert_eq!(d.get_str("_id").unwrap(), s.session_id);
        assert_eq!(d.get_str("deviceType").unwrap(), "desktop");
        assert_eq!(d.get_str("zipCode").unwrap(), "97035");
        assert_eq!(d.get_str("city").unwrap(), "Port Ellenmouth");
        assert_eq!(
            d.get_datetime("sessionTimestamp").unwrap().timestamp_millis(),
            s.session_timestamp.and_utc().timestamp_millis()
        );
        assert_eq!(d.get_array("productIds").unwrap()[0], Bson::Int32(4));
        assert_eq!(d.get_array("productPrices").unwrap()[0], Bson::Int64(4500));
        assert_eq!(d.get_i64("amountSpent").unwrap(), 6880);
        assert_eq!(d.get_i64("clicks").unwrap(), 31);
        assert!(d.get_bool("purchaseMade").unwrap());
        // productIds [4, 2, 6, 5]
        for i in 1..=10 {
            let want = [2, 4, 5, 6].contains(&i);
            assert_eq!(d.get_bool(format!("isViewedProduct{i}")).unwrap(), want, "{i}");
        }
    }

    #[test]
    fn personal_fields_are_pseudonyms_and_nulls_stay_null() {
        let s = &sessions()[1];
        let p = key();
        let d = flatten(s, &p);
        assert_eq!(d.email, p.pseudonym(fields::EMAIL, &s.email));
        assert_eq!(d.name, p.pseudonym(fields::NAME, &s.name));
        assert_eq!(d.ip_address, p.pseudonym(fields::IP_ADDRESS, &s.ip_address));
        let b = to_bson(&d).unwrap();
        let text = b.to_string();
        for secret in [&s.email, &s.name, &s.ip_address] {
            assert!(!text.contains(secret.as_str()), "{secret} leaked");
        }
        assert_eq!(b.get_array("productReviews").unwrap(), &vec![Bson::Null; 3]);
        assert_eq!(b.get_str("paymentMethodType").unwrap(), "None");
        assert_eq!(b.get_str("referrer").unwrap(), "unknown");
    }

    #[test]
    fn round_trips_through_bson_and_is_deterministic() {
        for s in sessions() {
            let d = flatten(&s, &key());
            assert_eq!(d, flatten(&s, &key()));
            let back: UserSessionDocument = bson::from_document(to_bson(&d).unwrap()).unwrap();
            assert_eq!(back, d);
        }
    }
}
