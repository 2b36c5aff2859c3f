//! The session record and its validation rules.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::SchemaError;
use crate::catalog::{PRODUCT_COUNT, product, product_by_name};

/// Format of `sessionTimestamp`: local time without zone, e.g. `2026-11-20T14:03:27`.
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// Longest id, name, e-mail or free-text field accepted, in characters.
pub(crate) const MAX_TEXT: usize = 512;
/// Most pages one session may view (the original viewed at most the whole catalogue, with repeats
/// allowed here up to this bound).
pub(crate) const MAX_PAGES: usize = 64;

/// One shopping session, exactly as the original system wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Session {
    /// Unique id of the session (a UUID in the original).
    pub session_id: String,
    /// Stable id of the user across sessions.
    pub user_id: String,
    /// When the session started, local time without zone.
    #[serde(with = "timestamp")]
    pub session_timestamp: NaiveDateTime,
    /// Ids of the viewed products, in viewing order (equals `browsingPattern`).
    pub product_ids: Vec<u8>,
    /// Names of the viewed products, parallel to `productIds`.
    pub product_names: Vec<String>,
    /// Prices of the viewed products, parallel to `productIds`.
    pub product_prices: Vec<u32>,
    /// Categories of the viewed products, parallel to `productIds`.
    pub product_categories: Vec<String>,
    /// One review per viewed product; all `null` without a purchase.
    pub product_reviews: Vec<Option<String>>,
    /// The user's full name.
    pub name: String,
    /// The user's gender.
    pub gender: Gender,
    /// The user's e-mail address.
    pub email: String,
    /// Device used for the session.
    pub device_information: DeviceInformation,
    /// Where the user is.
    pub location_data: LocationData,
    /// Client IP address.
    pub ip_address: String,
    /// Length of the session in seconds.
    pub session_duration: u32,
    /// Number of product pages viewed (the length of `browsingPattern`).
    pub page_views: u32,
    /// Ids of the viewed products, in viewing order.
    pub browsing_pattern: Vec<u8>,
    /// Seconds spent on each page, parallel to `browsingPattern`.
    #[serde(rename = "timeSpentonEachPage")]
    pub time_spent_on_each_page: Vec<u32>,
    /// Clicks during the session.
    pub clicks: u32,
    /// The session's last action (`checkout` exactly when a purchase was made).
    pub actions: Action,
    /// Where the user came from.
    pub referrer: Referrer,
    /// Name of the product page the session ended on.
    pub exit_page: String,
    /// Whether the session ended in a purchase.
    pub purchase_made: bool,
    /// Sum of the viewed products' prices with a purchase, else 0.
    pub amount_spent: u64,
    /// Payment method with a purchase, else `None` (the string).
    pub payment_method_type: PaymentMethod,
}

/// The device block of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceInformation {
    /// Kind of device.
    pub device_type: DeviceType,
    /// A user-agent string (the original stored a user agent here).
    pub operating_system: String,
    /// A user-agent string.
    pub browser_type: String,
}

/// The location block of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocationData {
    /// Country name.
    pub country: String,
    /// State name.
    pub state: String,
    /// City name.
    pub city: String,
    /// Postal code.
    pub zip_code: String,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value's text in the record.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// The user's gender, as the original recorded it.
    Gender { Male = "Male", Female = "Female", Other = "Other" }
}

string_enum! {
    /// Kind of device; `unknown` marks a device the shop could not identify.
    DeviceType { Mobile = "mobile", Desktop = "desktop", Tablet = "tablet", Unknown = "unknown" }
}

string_enum! {
    /// Where the session came from; `unknown` marks an unidentified referrer.
    Referrer {
        Google = "Google",
        Facebook = "Facebook",
        Instagram = "Instagram",
        WorldMarket = "WorldMarket",
        Direct = "Direct",
        Unknown = "unknown",
    }
}

string_enum! {
    /// The session's last action.
    Action { AddToCart = "add_to_cart", Search = "search", ViewItem = "view_item", Checkout = "checkout" }
}

string_enum! {
    /// How a purchase was paid; `None` (the string) without a purchase.
    PaymentMethod { CreditCard = "CreditCard", PayPal = "PayPal", None = "None" }
}

mod timestamp {
    use chrono::NaiveDateTime;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.format(super::TIMESTAMP_FORMAT))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        NaiveDateTime::parse_from_str(&text, super::TIMESTAMP_FORMAT).map_err(|e| {
            D::Error::custom(format!("timestamp {text:?} is not YYYY-MM-DDTHH:MM:SS ({e})"))
        })
    }
}

/// Whether a text field passes: not blank and at most [`MAX_TEXT`] characters.
fn text_ok(value: &str) -> bool {
    // Bytes bound characters from above, so most values need no character count.
    !value.trim().is_empty() && (value.len() <= MAX_TEXT || value.chars().count() <= MAX_TEXT)
}

fn check_text(field: &str, value: &str) -> Result<(), SchemaError> {
    if value.trim().is_empty() {
        return Err(SchemaError::invalid(field, "must not be empty"));
    }
    if !text_ok(value) {
        return Err(SchemaError::invalid(field, format!("longer than {MAX_TEXT} characters")));
    }
    Ok(())
}

/// The fields the format's rules look at, borrowed from an owned [`Session`] or from a
/// record's bytes (`S` is the string type of the per-page arrays). [`Fields::check`] is the one
/// place the rules are written down.
pub(crate) struct Fields<'a, S> {
    pub session_id: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub ip_address: &'a str,
    pub operating_system: &'a str,
    pub browser_type: &'a str,
    pub country: &'a str,
    pub state: &'a str,
    pub city: &'a str,
    pub zip_code: &'a str,
    pub product_ids: &'a [u8],
    pub product_names: &'a [S],
    pub product_prices: &'a [u32],
    pub product_categories: &'a [S],
    pub product_reviews: &'a [Option<S>],
    pub time_spent_on_each_page: &'a [u32],
    pub browsing_pattern: &'a [u8],
    pub page_views: u32,
    pub exit_page: &'a str,
    pub purchase_made: bool,
    pub actions: Action,
    pub payment_method_type: PaymentMethod,
    pub amount_spent: u64,
}

impl<S: AsRef<str>> Fields<'_, S> {
    /// The rules of [`Session::validate`]; the first broken one is the error.
    pub fn check(&self) -> Result<(), SchemaError> {
        check_text("sessionId", self.session_id)?;
        check_text("userId", self.user_id)?;
        check_text("name", self.name)?;
        check_text("email", self.email)?;
        if !self.email.contains('@') {
            return Err(SchemaError::invalid("email", "is not an e-mail address (no '@')"));
        }
        if self.ip_address.parse::<std::net::IpAddr>().is_err() {
            return Err(SchemaError::invalid(
                "ipAddress",
                format!("{:?} is not an IP address", self.ip_address),
            ));
        }
        for (field, value) in [
            ("deviceInformation.operatingSystem", self.operating_system),
            ("deviceInformation.browserType", self.browser_type),
            ("locationData.country", self.country),
            ("locationData.state", self.state),
            ("locationData.city", self.city),
            ("locationData.zipCode", self.zip_code),
        ] {
            check_text(field, value)?;
        }

        let pages = self.browsing_pattern.len();
        if pages == 0 {
            return Err(SchemaError::invalid(
                "browsingPattern",
                "a session views at least one page",
            ));
        }
        if pages > MAX_PAGES {
            return Err(SchemaError::invalid(
                "browsingPattern",
                format!("{pages} pages, over the limit of {MAX_PAGES}"),
            ));
        }
        for (field, len) in [
            ("productIds", self.product_ids.len()),
            ("productNames", self.product_names.len()),
            ("productPrices", self.product_prices.len()),
            ("productCategories", self.product_categories.len()),
            ("productReviews", self.product_reviews.len()),
            ("timeSpentonEachPage", self.time_spent_on_each_page.len()),
        ] {
            if len != pages {
                return Err(SchemaError::invalid(
                    field,
                    format!("has {len} entries but browsingPattern has {pages}"),
                ));
            }
        }
        if self.page_views as usize != pages {
            return Err(SchemaError::invalid(
                "pageViews",
                format!("is {} but browsingPattern has {pages} pages", self.page_views),
            ));
        }
        for (i, &id) in self.browsing_pattern.iter().enumerate() {
            if product(id).is_none() {
                return Err(SchemaError::invalid(
                    format!("browsingPattern[{i}]"),
                    format!("product id {id} is not in 1..={PRODUCT_COUNT}"),
                ));
            }
        }
        for (i, (&id, &seen)) in self.product_ids.iter().zip(self.browsing_pattern).enumerate() {
            if id != seen {
                return Err(SchemaError::invalid(
                    format!("productIds[{i}]"),
                    format!("is {id} but browsingPattern[{i}] is {seen}"),
                ));
            }
        }
        for (i, &id) in self.product_ids.iter().enumerate() {
            // Checked above: every id is in the catalogue.
            let Some(p) = product(id) else { continue };
            let name = self.product_names[i].as_ref();
            if name != p.name {
                return Err(SchemaError::invalid(
                    format!("productNames[{i}]"),
                    format!("is {name:?} but product {id} is {:?}", p.name),
                ));
            }
            let category = self.product_categories[i].as_ref();
            if category != p.category {
                return Err(SchemaError::invalid(
                    format!("productCategories[{i}]"),
                    format!("is {category:?} but product {id} is in {:?}", p.category),
                ));
            }
            if let Some(review) = &self.product_reviews[i]
                && !text_ok(review.as_ref())
            {
                check_text(&format!("productReviews[{i}]"), review.as_ref())?;
            }
        }
        if product_by_name(self.exit_page).is_none() {
            return Err(SchemaError::invalid(
                "exitPage",
                format!("{:?} is not a product name", self.exit_page),
            ));
        }

        let total: u64 = self.product_prices.iter().map(|&p| u64::from(p)).sum();
        if self.purchase_made {
            if self.actions != Action::Checkout {
                return Err(SchemaError::invalid(
                    "actions",
                    format!(
                        "is {:?} but a purchase was made (expected \"checkout\")",
                        self.actions.as_str()
                    ),
                ));
            }
            if self.payment_method_type == PaymentMethod::None {
                return Err(SchemaError::invalid(
                    "paymentMethodType",
                    "is \"None\" but a purchase was made",
                ));
            }
            if self.amount_spent != total {
                return Err(SchemaError::invalid(
                    "amountSpent",
                    format!("is {} but the viewed products cost {total}", self.amount_spent),
                ));
            }
        } else {
            if self.actions == Action::Checkout {
                return Err(SchemaError::invalid(
                    "actions",
                    "is \"checkout\" but no purchase was made",
                ));
            }
            if self.payment_method_type != PaymentMethod::None {
                return Err(SchemaError::invalid(
                    "paymentMethodType",
                    "must be \"None\" without a purchase",
                ));
            }
            if self.amount_spent != 0 {
                return Err(SchemaError::invalid("amountSpent", "must be 0 without a purchase"));
            }
            if let Some(i) = self.product_reviews.iter().position(Option::is_some) {
                return Err(SchemaError::invalid(
                    format!("productReviews[{i}]"),
                    "must be null without a purchase",
                ));
            }
        }
        Ok(())
    }
}

impl Session {
    /// Checks the rules of the format that types alone cannot express: the per-product arrays
    /// have one entry per viewed page, ids are `1..=10`, names and categories match the catalogue,
    /// `productIds` equals `browsingPattern`, and the purchase fields agree with each other
    /// (`checkout` and a payment method exactly with a purchase, `amountSpent` the sum of the
    /// viewed prices, reviews only with a purchase).
    pub fn validate(&self) -> Result<(), SchemaError> {
        self.fields().check()
    }

    fn fields(&self) -> Fields<'_, String> {
        Fields {
            session_id: &self.session_id,
            user_id: &self.user_id,
            name: &self.name,
            email: &self.email,
            ip_address: &self.ip_address,
            operating_system: &self.device_information.operating_system,
            browser_type: &self.device_information.browser_type,
            country: &self.location_data.country,
            state: &self.location_data.state,
            city: &self.location_data.city,
            zip_code: &self.location_data.zip_code,
            product_ids: &self.product_ids,
            product_names: &self.product_names,
            product_prices: &self.product_prices,
            product_categories: &self.product_categories,
            product_reviews: &self.product_reviews,
            time_spent_on_each_page: &self.time_spent_on_each_page,
            browsing_pattern: &self.browsing_pattern,
            page_views: self.page_views,
            exit_page: &self.exit_page,
            purchase_made: self.purchase_made,
            actions: self.actions,
            payment_method_type: self.payment_method_type,
            amount_spent: self.amount_spent,
        }
    }

    /// The record as one line of JSON, in the original's field order.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The sum of the viewed products' catalogue prices (what a purchase costs).
    pub fn basket_total(&self) -> u64 {
        self.product_prices.iter().map(|&p| u64::from(p)).sum()
    }
}

/// The part of the day of an hour (0..=23): `night` 0-5, `morning` 6-11, `afternoon` 12-17,
/// `evening` 18-23 (the processor's `partOfDay` field and the similarity `tod:` tokens).
pub fn part_of_day(hour: u32) -> &'static str {
    match hour {
        0..=5 => "night",
        6..=11 => "morning",
        12..=17 => "afternoon",
        _ => "evening",
    }
}
