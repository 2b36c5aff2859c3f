//! The hidden purchase propensity.
//!
//! In the original system a purchase was a coin flip, so no model could learn anything. Here the
//! probability that a session ends in a purchase is a fixed logistic function of fields that are
//! in the session record and in the offline feature set, so models can learn it and the AUC of
//! the true probability is an attainable ceiling. It never reads the fields that reveal the
//! outcome (`purchaseMade`, `amountSpent`, `actions`, `paymentMethodType`, `productReviews`),
//! and it does not read gender or location, so no model is rewarded for using them.
//!
//! `p = sigmoid(z)`, with
//!
//! | term | contribution to `z` |
//! |---|---|
//! | intercept | [`INTERCEPT`] |
//! | session length | `1.4 * ln(max(sessionDuration, 10) / 240)` |
//! | clicks | `0.03 * clamp(clicks - 12, -20, 20)` |
//! | pages viewed all from one viewed-together set (at least two) | `+0.8` |
//! | referrer | WorldMarket `+0.8`, Direct `+0.6`, Google `+0.2`, Instagram `-0.3`, Facebook `-0.4`, unknown `-0.9` |
//! | device | desktop `+0.35`, tablet `+0.1`, mobile `-0.15`, unknown `-0.6` |
//! | hour of `sessionTimestamp` | 18..=22 `+0.45`, 0..=5 `-0.6`, else 0 |
//! | Saturday or Sunday | `+0.3` |
//! | viewed the sofa (1) / the bed (4) / the dining chairs (10) | `-0.3` / `-0.25` / `+0.25` |
//!
//! Everything a model needs is in its features (duration, clicks, referrer, device, hour,
//! weekend, the ten product-viewed flags), so a flexible model can approach the ceiling.

use chrono::{Datelike, Timelike, Weekday};
use shopstream_schema::{DeviceType, Referrer, Session, catalog::is_viewed_together};

/// The intercept, chosen so that about half of the generated sessions end in a purchase.
pub const INTERCEPT: f64 = -0.05;

/// The true probability that this session ends in a purchase (see the module docs).
pub fn purchase_propensity(session: &Session) -> f64 {
    sigmoid(purchase_logit(session))
}

/// The log-odds behind [`purchase_propensity`].
pub fn purchase_logit(s: &Session) -> f64 {
    let duration = f64::from(s.session_duration.max(10));
    let clicks = (f64::from(s.clicks) - 12.0).clamp(-20.0, 20.0);
    let referrer = match s.referrer {
        Referrer::WorldMarket => 0.8,
        Referrer::Direct => 0.6,
        Referrer::Google => 0.2,
        Referrer::Instagram => -0.3,
        Referrer::Facebook => -0.4,
        Referrer::Unknown => -0.9,
    };
    let device = match s.device_information.device_type {
        DeviceType::Desktop => 0.35,
        DeviceType::Tablet => 0.1,
        DeviceType::Mobile => -0.15,
        DeviceType::Unknown => -0.6,
    };
    let hour = match s.session_timestamp.hour() {
        18..=22 => 0.45,
        0..=5 => -0.6,
        _ => 0.0,
    };
    let weekend = match s.session_timestamp.weekday() {
        Weekday::Sat | Weekday::Sun => 0.3,
        _ => 0.0,
    };
    let viewed = |id: u8| s.browsing_pattern.contains(&id);
    let products = if viewed(1) { -0.3 } else { 0.0 }
        + if viewed(4) { -0.25 } else { 0.0 }
        + if viewed(10) { 0.25 } else { 0.0 };
    let coherent = if is_viewed_together(&s.browsing_pattern) { 0.8 } else { 0.0 };

    INTERCEPT
        + 1.4 * (duration / 240.0).ln()
        + 0.03 * clicks
        + coherent
        + referrer
        + device
        + hour
        + weekend
        + products
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}
