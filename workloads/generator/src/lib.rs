//! Synthetic furniture-shop users and sessions, in the original system's exact record format.
//!
//! A [`Generator`] owns a population of users with stable identities (name, e-mail, gender,
//! location, IP address, device and referrer habits, a favourite room and an engagement level)
//! and yields one [`Generated`] session after another, in time order. Whether a session ends in a
//! purchase is drawn from the hidden, documented [`purchase_propensity`] of the record itself, and
//! the true probability travels beside the record (never inside it), so tests and model reports
//! know the ceiling.
//!
//! Everything is deterministic for a given [`GeneratorConfig`] (including `seed`).
//!
//! ```
//! use shopstream_generator::{Generator, GeneratorConfig, purchase_propensity};
//! let mut g = Generator::new(GeneratorConfig { seed: 7, ..Default::default() }).unwrap();
//! let first = g.next().unwrap();
//! first.session.validate().unwrap();
//! assert_eq!(first.purchase_probability, purchase_propensity(&first.session));
//! ```

mod propensity;
mod words;

pub use propensity::{INTERCEPT, purchase_logit, purchase_propensity};

use chrono::{Duration, NaiveDate, NaiveDateTime, Timelike};
use rand::distr::weighted::WeightedIndex;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Exp, LogNormal};
use shopstream_schema::{
    Action, DeviceInformation, DeviceType, Gender, LocationData, PRODUCTS, PaymentMethod, Referrer,
    Session, VIEWED_TOGETHER, catalog::product,
};
use thiserror::Error;

/// Settings of a generator run.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Seed of every random choice; the same config yields the same sessions.
    pub seed: u64,
    /// Number of distinct users.
    pub users: usize,
    /// Time of the first possible session.
    pub start: NaiveDateTime,
    /// Mean time between two sessions, in seconds of simulated time (before the daily curve
    /// thins the night out).
    pub mean_gap_seconds: f64,
    /// Share of users whose habitual device or referrer is `unknown`.
    pub unknown_share: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 1,
            users: 5_000,
            start: NaiveDate::from_ymd_opt(2026, 11, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .unwrap_or_default(),
            mean_gap_seconds: 20.0,
            unknown_share: 0.06,
        }
    }
}

/// A configuration the generator cannot run with.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// `users` is zero.
    #[error("users must be at least 1")]
    NoUsers,
    /// `mean_gap_seconds` is not a positive finite number.
    #[error("mean_gap_seconds must be positive and finite, got {0}")]
    BadGap(f64),
    /// `unknown_share` is outside `0..=1`.
    #[error("unknown_share must be within 0..=1, got {0}")]
    BadShare(f64),
}

/// A session and its true purchase probability (which the record itself never carries).
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The session record.
    pub session: Session,
    /// The probability the purchase was drawn with: `purchase_propensity(&session)`.
    pub purchase_probability: f64,
}

/// A shopper with a stable identity and habits.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Stable user id (a UUID).
    pub user_id: String,
    /// Full name.
    pub name: String,
    /// Gender.
    pub gender: Gender,
    /// E-mail address (on a reserved example domain).
    pub email: String,
    /// Where the user lives.
    pub location: LocationData,
    /// IP address (shared address space 100.64.0.0/10).
    pub ip_address: String,
    /// The device the user usually shops on.
    pub device: DeviceType,
    /// Where the user usually comes from.
    pub referrer: Referrer,
    /// Operating-system user agent.
    pub operating_system: String,
    /// Browser user agent.
    pub browser_type: String,
    /// Index into [`VIEWED_TOGETHER`] of the room the user is furnishing.
    pub favourite_set: usize,
    /// Multiplier of time spent on pages (log-normal around 1).
    pub engagement: f64,
}

const DEVICES: [DeviceType; 3] = [DeviceType::Mobile, DeviceType::Desktop, DeviceType::Tablet];
const DEVICE_WEIGHTS: [f64; 3] = [0.47, 0.40, 0.13];
const REFERRERS: [Referrer; 5] = [
    Referrer::Google,
    Referrer::Direct,
    Referrer::Facebook,
    Referrer::Instagram,
    Referrer::WorldMarket,
];
const REFERRER_WEIGHTS: [f64; 5] = [0.32, 0.23, 0.16, 0.16, 0.13];
/// Relative session rate by hour of day (peak 1.0); used to thin arrivals.
const HOURLY: [f64; 24] = [
    0.15, 0.1, 0.07, 0.05, 0.05, 0.08, 0.15, 0.3, 0.45, 0.55, 0.6, 0.65, 0.7, 0.65, 0.6, 0.6, 0.65,
    0.75, 0.9, 1.0, 1.0, 0.9, 0.6, 0.3,
];
/// Share of sessions that stay within one viewed-together set.
const COHERENT_SHARE: f64 = 0.55;
/// Share of sessions on a device or referrer other than the user's habit.
const OFF_HABIT_SHARE: f64 = 0.12;

/// Yields sessions in time order; an endless iterator (use `take`).
#[derive(Debug, Clone)]
pub struct Generator {
    rng: ChaCha8Rng,
    users: Vec<User>,
    activity: WeightedIndex<f64>,
    clock: NaiveDateTime,
    gap: Exp<f64>,
    config: GeneratorConfig,
}

impl Generator {
    /// Builds the user population and the clock.
    pub fn new(config: GeneratorConfig) -> Result<Self, ConfigError> {
        if config.users == 0 {
            return Err(ConfigError::NoUsers);
        }
        if !(config.mean_gap_seconds.is_finite() && config.mean_gap_seconds > 0.0) {
            return Err(ConfigError::BadGap(config.mean_gap_seconds));
        }
        if !(0.0..=1.0).contains(&config.unknown_share) {
            return Err(ConfigError::BadShare(config.unknown_share));
        }
        let gap = Exp::new(1.0 / config.mean_gap_seconds)
            .map_err(|_| ConfigError::BadGap(config.mean_gap_seconds))?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let users: Vec<User> = (0..config.users).map(|_| make_user(&mut rng, &config)).collect();
        // A few users come back often, most rarely: log-normal activity weights.
        let activity_dist = LogNormal::new(0.0, 1.0).map_err(|_| ConfigError::NoUsers)?;
        let weights: Vec<f64> = users.iter().map(|_| activity_dist.sample(&mut rng)).collect();
        let activity = WeightedIndex::new(&weights).map_err(|_| ConfigError::NoUsers)?;
        Ok(Generator { rng, users, activity, clock: config.start, gap, config })
    }

    /// The user population.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The configuration this generator runs with.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// Advances the clock to the next session start: Poisson arrivals thinned by the hour of day.
    fn next_time(&mut self) -> NaiveDateTime {
        loop {
            let secs = self.gap.sample(&mut self.rng).ceil().max(1.0);
            self.clock += Duration::seconds(secs as i64);
            let keep = HOURLY[self.clock.hour() as usize];
            if self.rng.random::<f64>() < keep {
                return self.clock;
            }
        }
    }

    /// The next session.
    pub fn next_session(&mut self) -> Generated {
        let timestamp = self.next_time();
        let user_index = self.activity.sample(&mut self.rng);
        let rng = &mut self.rng;
        let user = &self.users[user_index];

        let pattern = browsing_pattern(rng, user.favourite_set);
        let dwell =
            LogNormal::new(35f64.ln() + user.engagement.ln(), 0.7).map_or(35.0, |d| d.sample(rng));
        let times: Vec<u32> = pattern
            .iter()
            .map(|_| {
                let jitter: f64 = LogNormal::new(0.0, 0.35).map_or(1.0, |d| d.sample(rng));
                (dwell * jitter).round().clamp(2.0, 900.0) as u32
            })
            .collect();
        let overhead: u32 = rng.random_range(5..=90);
        let duration = times.iter().sum::<u32>() + overhead;
        let clicks: u32 = times
            .iter()
            .map(|&t| 1 + (f64::from(t) / 15.0 * rng.random_range(0.5..1.5)).round() as u32)
            .sum::<u32>()
            .min(500);

        let device = if rng.random::<f64>() < OFF_HABIT_SHARE {
            pick_device(rng, self.config.unknown_share)
        } else {
            user.device
        };
        let referrer = if rng.random::<f64>() < OFF_HABIT_SHARE {
            pick_referrer(rng, self.config.unknown_share)
        } else {
            user.referrer
        };
        let exit_page = pattern.choose(rng).copied().unwrap_or(pattern[0]);
        let products: Vec<_> = pattern.iter().filter_map(|&id| product(id)).collect();

        let mut session = Session {
            session_id: uuid_from(rng),
            user_id: user.user_id.clone(),
            session_timestamp: timestamp,
            product_ids: pattern.clone(),
            product_names: products.iter().map(|p| p.name.to_string()).collect(),
            product_prices: products.iter().map(|p| p.price).collect(),
            product_categories: products.iter().map(|p| p.category.to_string()).collect(),
            product_reviews: vec![None; pattern.len()],
            name: user.name.clone(),
            gender: user.gender,
            email: user.email.clone(),
            device_information: DeviceInformation {
                device_type: device,
                operating_system: user.operating_system.clone(),
                browser_type: user.browser_type.clone(),
            },
            location_data: user.location.clone(),
            ip_address: user.ip_address.clone(),
            session_duration: duration,
            page_views: pattern.len() as u32,
            browsing_pattern: pattern,
            time_spent_on_each_page: times,
            clicks,
            actions: Action::ViewItem,
            referrer,
            exit_page: product(exit_page).map_or("sofa", |p| p.name).to_string(),
            purchase_made: false,
            amount_spent: 0,
            payment_method_type: PaymentMethod::None,
        };

        let probability = purchase_propensity(&session);
        if rng.random::<f64>() < probability {
            session.purchase_made = true;
            session.actions = Action::Checkout;
            session.amount_spent = session.basket_total();
            session.payment_method_type = if rng.random::<f64>() < 0.65 {
                PaymentMethod::CreditCard
            } else {
                PaymentMethod::PayPal
            };
            session.product_reviews =
                session.product_names.iter().map(|name| Some(review(rng, name))).collect();
        } else {
            session.actions = *[Action::AddToCart, Action::Search, Action::ViewItem]
                .choose(rng)
                .unwrap_or(&Action::ViewItem);
        }
        Generated { session, purchase_probability: probability }
    }
}

impl Iterator for Generator {
    type Item = Generated;

    fn next(&mut self) -> Option<Generated> {
        Some(self.next_session())
    }
}

fn uuid_from(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid().to_string()
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn pick_weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[T], weights: &[f64]) -> T {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (item, w) in items.iter().zip(weights) {
        if x < *w {
            return *item;
        }
        x -= w;
    }
    items[items.len() - 1]
}

fn pick_device(rng: &mut ChaCha8Rng, unknown_share: f64) -> DeviceType {
    if rng.random::<f64>() < unknown_share / 2.0 {
        DeviceType::Unknown
    } else {
        pick_weighted(rng, &DEVICES, &DEVICE_WEIGHTS)
    }
}

fn pick_referrer(rng: &mut ChaCha8Rng, unknown_share: f64) -> Referrer {
    if rng.random::<f64>() < unknown_share / 2.0 {
        Referrer::Unknown
    } else {
        pick_weighted(rng, &REFERRERS, &REFERRER_WEIGHTS)
    }
}

fn make_user(rng: &mut ChaCha8Rng, config: &GeneratorConfig) -> User {
    let gender = pick_weighted(rng, Gender::ALL, &[0.48, 0.48, 0.04]);
    let first = match gender {
        Gender::Female => *pick(rng, words::FEMALE_FIRST),
        Gender::Male => *pick(rng, words::MALE_FIRST),
        Gender::Other => *pick(rng, words::OTHER_FIRST),
    };
    let last = *pick(rng, words::LAST);
    let tag: u16 = rng.random_range(1..1000);
    let email = format!(
        "{}.{}{}@{}",
        first.to_lowercase(),
        last.to_lowercase(),
        tag,
        pick(rng, words::EMAIL_DOMAINS)
    );
    let state_weights: Vec<f64> = words::STATES.iter().map(|s| f64::from(s.2)).collect();
    let state_index =
        pick_weighted(rng, &(0..words::STATES.len()).collect::<Vec<_>>(), &state_weights);
    let (state, zip_prefix, _) = words::STATES[state_index];
    let city = format!(
        "{} {}{}",
        pick(rng, words::CITY_PREFIX),
        pick(rng, words::CITY_ROOT),
        pick(rng, words::CITY_SUFFIX)
    );
    let device = pick_device(rng, config.unknown_share);
    let referrer = pick_referrer(rng, config.unknown_share);
    let os_agents = match device {
        DeviceType::Mobile => words::OS_AGENTS[0],
        DeviceType::Desktop => words::OS_AGENTS[1],
        DeviceType::Tablet => words::OS_AGENTS[2],
        DeviceType::Unknown => words::OS_AGENTS[3],
    };
    User {
        user_id: uuid_from(rng),
        name: format!("{first} {last}"),
        gender,
        email,
        location: LocationData {
            country: "United States".into(),
            state: state.into(),
            city,
            zip_code: format!("{zip_prefix}{:03}", rng.random_range(0..1000)),
        },
        ip_address: format!(
            "100.{}.{}.{}",
            rng.random_range(64..128),
            rng.random_range(0..256),
            rng.random_range(1..255)
        ),
        device,
        referrer,
        operating_system: pick(rng, os_agents).to_string(),
        browser_type: pick(rng, words::BROWSER_AGENTS).to_string(),
        favourite_set: rng.random_range(0..VIEWED_TOGETHER.len()),
        engagement: LogNormal::new(0.0, 0.45).map_or(1.0, |d| d.sample(rng)),
    }
}

/// Pages of one session: often a viewed-together set (mostly the user's favourite room),
/// otherwise a few products from the whole catalogue; never the same product twice.
fn browsing_pattern(rng: &mut ChaCha8Rng, favourite: usize) -> Vec<u8> {
    if rng.random::<f64>() < COHERENT_SHARE {
        let set = if rng.random::<f64>() < 0.7 {
            VIEWED_TOGETHER[favourite]
        } else {
            *pick(rng, &VIEWED_TOGETHER)
        };
        let mut ids = set.to_vec();
        ids.shuffle(rng);
        let keep = rng.random_range(2..=ids.len());
        ids.truncate(keep);
        ids
    } else {
        let count = pick_weighted(rng, &[1usize, 2, 3, 4, 5], &[0.2, 0.3, 0.25, 0.15, 0.1]);
        let mut ids: Vec<u8> = PRODUCTS.iter().map(|p| p.id).collect();
        ids.shuffle(rng);
        ids.truncate(count);
        ids
    }
}

fn review(rng: &mut ChaCha8Rng, product_name: &str) -> String {
    let x: f64 = rng.random();
    let pool = if x < 0.6 {
        words::POSITIVE_REVIEWS
    } else if x < 0.85 {
        words::NEUTRAL_REVIEWS
    } else {
        words::NEGATIVE_REVIEWS
    };
    pick(rng, pool).replace("{}", product_name)
}

/// The review templates the generator draws from, as `(sentiment, template)` with `{}` standing
/// for the product name; sentiment is `positive`, `neutral` or `negative` by construction.
pub fn review_templates() -> impl Iterator<Item = (&'static str, &'static str)> {
    let tag =
        |label: &'static str, pool: &'static [&'static str]| pool.iter().map(move |t| (label, *t));
    tag("positive", words::POSITIVE_REVIEWS)
        .chain(tag("neutral", words::NEUTRAL_REVIEWS))
        .chain(tag("negative", words::NEGATIVE_REVIEWS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_config() {
        let bad = |c: GeneratorConfig| Generator::new(c).err();
        assert_eq!(
            bad(GeneratorConfig { users: 0, ..Default::default() }),
            Some(ConfigError::NoUsers)
        );
        assert!(matches!(
            bad(GeneratorConfig { mean_gap_seconds: 0.0, ..Default::default() }),
            Some(ConfigError::BadGap(_))
        ));
        assert!(matches!(
            bad(GeneratorConfig { unknown_share: 1.5, ..Default::default() }),
            Some(ConfigError::BadShare(_))
        ));
    }

    #[test]
    fn patterns_never_repeat_a_product() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for i in 0..2000 {
            let p = browsing_pattern(&mut rng, i % 4);
            let mut sorted = p.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), p.len());
            assert!((1..=5).contains(&p.len()));
        }
    }
}
