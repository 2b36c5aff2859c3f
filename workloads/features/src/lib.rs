//! The purchase-model features of a shopping session, shared by training and serving.
//!
//! One transform turns a [`Session`] into a dense row of `f64`:
//!
//! 1. [`FeatureSpec`] says *what* to compute (which encoding for categorical fields, where the
//!    state vocabulary comes from, the public value ranges of the numeric fields).
//! 2. [`FeatureSpec::fit`] looks at the training sessions (only if the spec asks for a
//!    data-dependent state vocabulary) and returns an [`Encoder`].
//! 3. The [`Encoder`] is serialisable with serde, so a trained model carries the exact transform
//!    it was trained with; serving calls [`Encoder::transform_one`] on the same encoder.
//!
//! The label is [`label`] (`purchaseMade`). Fields that reveal the label - `amountSpent`,
//! `actions`, `paymentMethodType`, `productReviews` - are never read by the transform.
//!
//! ```
//! use shopstream_features::{FeatureSpec, label};
//! # let session: shopstream_schema::Session = serde_json::from_str(
//! #     shopstream_features::EXAMPLE_SESSION).unwrap();
//! let encoder = FeatureSpec::default().fit(std::slice::from_ref(&session));
//! let row = encoder.transform_one(&session);
//! assert_eq!(row.len(), encoder.names().len());
//! assert_eq!(label(&session), 1.0);
//! ```
//!
//! [`Dataset`] bundles rows, labels and ids; [`Dataset::split_by_user`] splits by a seeded hash
//! of `userId`, so no user is on both sides. [`load_jsonl`] reads sessions from a JSON-lines file,
//! reporting (not failing on) invalid lines.

mod dataset;
mod encoder;
mod load;

pub use dataset::{Dataset, is_test_user, split_sessions_by_user, user_bucket};
pub use encoder::{
    CategoricalEncoding, Encoder, FeatureKind, FeatureSpec, NumericRanges, PartOfDay,
    StateVocabulary, US_STATES, label,
};
pub use load::{LoadReport, RejectedLine, load_jsonl, read_jsonl};

use thiserror::Error;

/// Errors of this crate.
#[derive(Debug, Error)]
pub enum FeaturesError {
    /// The sessions file could not be opened or read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A split or selection was asked with invalid parameters.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// One session record in the original format, used by doc examples and tests.
#[doc(hidden)]
pub const EXAMPLE_SESSION: &str = r#"{"sessionId": "3f1c2a9e-8b1d-4c55-9a0e-2d7b6f4e1a01", "userId": "b7e2d4c1-5a6f-4e3b-8c9d-0a1b2c3d4e5f", "sessionTimestamp": "2026-11-20T14:03:27", "productIds": [4, 2, 6, 5], "productNames": ["bed", "coffee table", "dresser", "bedside table"], "productPrices": [4500, 500, 1290, 590], "productCategories": ["bedroom", "living room", "bedroom", "bedroom"], "productReviews": ["This bed is incredibly sturdy and was easy to assemble.", "A standard coffee table, nothing special but works.", "Drawers of the dresser stick and it was a pain to put together.", "It's a basic bedside table. Does what it needs to."], "name": "Dana Whitfield", "gender": "Female", "email": "dana.whitfield@example.org", "deviceInformation": {"deviceType": "desktop", "operatingSystem": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "browserType": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"}, "locationData": {"country": "United States", "state": "Oregon", "city": "Port Ellenmouth", "zipCode": "97035"}, "ipAddress": "203.0.113.45", "sessionDuration": 412, "pageViews": 4, "browsingPattern": [4, 2, 6, 5], "timeSpentonEachPage": [95, 12, 64, 40], "clicks": 31, "actions": "checkout", "referrer": "Google", "exitPage": "dresser", "purchaseMade": true, "amountSpent": 6880, "paymentMethodType": "CreditCard"}"#;
