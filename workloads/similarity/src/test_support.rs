//! Fixtures shared by this crate's tests (not part of the API).

use mongodb::bson::{Bson, Document, doc};

/// A `user_sessions` document of exactly the sink's documented shape (pseudonyms as hex).
pub fn sink_document(s: &shopstream_schema::Session) -> Document {
    let ids: Vec<i32> = s.product_ids.iter().map(|&i| i32::from(i)).collect();
    let mut d = doc! {
        "_id": &s.session_id, "sessionId": &s.session_id, "userId": &s.user_id,
        "sessionTimestamp": mongodb::bson::DateTime::from_millis(
            s.session_timestamp.and_utc().timestamp_millis()),
        "productIds": ids.clone(),
        "productNames": s.product_names.clone(),
        "productPrices": s.product_prices.iter().map(|&p| i64::from(p)).collect::<Vec<_>>(),
        "productCategories": s.product_categories.clone(),
        "productReviews": s.product_reviews.iter().map(|r| match r {
            Some(t) => Bson::String(t.clone()), None => Bson::Null }).collect::<Vec<_>>(),
        "name": "a".repeat(64), "gender": s.gender.as_str(), "email": "b".repeat(64),
        "deviceType": s.device_information.device_type.as_str(),
        "operatingSystem": &s.device_information.operating_system,
        "browserType": &s.device_information.browser_type,
        "country": &s.location_data.country, "state": &s.location_data.state,
        "city": &s.location_data.city, "zipCode": &s.location_data.zip_code,
        "ipAddress": "c".repeat(64),
        "sessionDuration": i64::from(s.session_duration), "pageViews": i64::from(s.page_views),
        "browsingPattern": ids,
        "timeSpentonEachPage": s.time_spent_on_each_page.iter().map(|&t| i64::from(t)).collect::<Vec<_>>(),
        "clicks": i64::from(s.clicks), "actions": s.actions.as_str(),
        "referrer": s.referrer.as_str(), "exitPage": &s.exit_page,
        "purchaseMade": s.purchase_made, "amountSpent": s.amount_spent as i64,
        "paymentMethodType": s.payment_method_type.as_str(),
    };
    for i in 1..=10u8 {
        d.insert(format!("isViewedProduct{i}"), s.product_ids.contains(&i));
    }
    d
}
