//! Generated sessions are valid records, round-trip through the schema, are deterministic, and
//! carry stable user identities.

use std::collections::HashMap;

use shopstream_generator::{Generator, GeneratorConfig, purchase_propensity};
use shopstream_schema::{DeviceType, Referrer, parse_session};

fn sample(seed: u64, n: usize) -> Vec<shopstream_generator::Generated> {
    Generator::new(GeneratorConfig { seed, users: 500, ..Default::default() })
        .expect("config")
        .take(n)
        .collect()
}

#[test]
fn generated_records_round_trip_through_the_schema() {
    for g in sample(11, 5_000) {
        let json = g.session.to_json();
        let back = parse_session(json.as_bytes()).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(back, g.session);
        assert_eq!(g.purchase_probability, purchase_propensity(&back));
        assert!(!json.contains("purchaseProbability"), "the truth must not leak into the record");
    }
}

#[test]
fn same_seed_same_sessions_other_seed_other_sessions() {
    let a = sample(5, 300);
    let b = sample(5, 300);
    let c = sample(6, 300);
    assert_eq!(a, b);
    assert_ne!(a[0].session.session_id, c[0].session.session_id);
}

#[test]
fn timestamps_increase_and_sessions_follow_the_format() {
    let all = sample(2, 5_000);
    for pair in all.windows(2) {
        assert!(pair[0].session.session_timestamp < pair[1].session.session_timestamp);
    }
    let purchases = all.iter().filter(|g| g.session.purchase_made).count();
    assert!(purchases > 0 && purchases < all.len());
    for g in &all {
        let s = &g.session;
        if s.purchase_made {
            assert!(s.product_reviews.iter().all(Option::is_some));
        } else {
            assert!(s.product_reviews.iter().all(Option::is_none));
        }
    }
    let unknown = all
        .iter()
        .filter(|g| {
            g.session.device_information.device_type == DeviceType::Unknown
                || g.session.referrer == Referrer::Unknown
        })
        .count();
    let share = unknown as f64 / all.len() as f64;
    assert!((0.01..0.15).contains(&share), "unknown device/referrer share {share}");
}

#[test]
fn users_keep_their_identity_across_sessions() {
    let all = sample(9, 5_000);
    let mut seen: HashMap<&str, (&str, &str, &str, &str)> = HashMap::new();
    let mut returning = 0;
    for g in &all {
        let s = &g.session;
        let identity = (
            s.name.as_str(),
            s.email.as_str(),
            s.ip_address.as_str(),
            s.location_data.state.as_str(),
        );
        if let Some(prev) = seen.insert(&s.user_id, identity) {
            assert_eq!(prev, identity, "user {} changed identity", s.user_id);
            returning += 1;
        }
        assert!(
            s.email.ends_with(".com") || s.email.ends_with(".org") || s.email.ends_with(".net")
        );
        assert!(s.email.contains("@example."));
    }
    assert!(returning > all.len() / 2, "most sessions come from returning users ({returning})");
}
