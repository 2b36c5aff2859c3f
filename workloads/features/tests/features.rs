//! Tests of the feature transform, the split and the loader.
#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

use std::collections::HashSet;
use std::io::Write;

use shopstream_features::{
    CategoricalEncoding, Dataset, EXAMPLE_SESSION, FeatureSpec, StateVocabulary, label, load_jsonl,
    split_sessions_by_user, user_bucket,
};
use shopstream_schema::{Action, DeviceType, Gender, PaymentMethod, Referrer, Session};

fn example() -> Session {
    serde_json::from_str(EXAMPLE_SESSION).unwrap()
}

fn value(names: &[String], row: &[f64], name: &str) -> f64 {
    let i = names.iter().position(|n| n == name).unwrap_or_else(|| panic!("no column {name}"));
    row[i]
}

/// Deterministic variety of sessions without the generator: users, states, hours, pages.
fn sessions(n: usize) -> Vec<Session> {
    let base = example();
    let states = ["Oregon", "Kansas", "Texas", "Atlantis"];
    (0..n)
        .map(|i| {
            let mut s = base.clone();
            s.session_id = format!("s{i}");
            s.user_id = format!("u{}", i % (n / 3).max(1));
            s.location_data.state = states[i % states.len()].to_string();
            s.session_timestamp += chrono::Duration::hours(i as i64 * 7);
            s.clicks = (i % 50) as u32;
            s
        })
        .collect()
}

#[test]
fn example_row_has_the_documented_values() {
    let s = example();
    let enc = FeatureSpec::default().fit(&[]);
    let row = enc.transform_one(&s);
    let names = enc.names();
    assert_eq!(row.len(), names.len());
    // 2026-11-20T14:03:27 is a Friday in ISO week 47.
    assert_eq!(value(names, &row, "hour"), 14.0);
    assert_eq!(value(names, &row, "day_of_week"), 4.0);
    assert_eq!(value(names, &row, "weekend"), 0.0);
    assert_eq!(value(names, &row, "month"), 11.0);
    assert_eq!(value(names, &row, "iso_week"), 47.0);
    assert_eq!(value(names, &row, "part_of_day=afternoon"), 1.0);
    assert_eq!(value(names, &row, "part_of_day=morning"), 0.0);
    assert_eq!(value(names, &row, "gender=Female"), 1.0);
    assert_eq!(value(names, &row, "gender=Male"), 0.0);
    assert_eq!(value(names, &row, "state=Oregon"), 1.0);
    assert_eq!(value(names, &row, "state=Texas"), 0.0);
    assert_eq!(value(names, &row, "session_duration"), 412.0);
    assert_eq!(value(names, &row, "clicks"), 31.0);
    assert_eq!(value(names, &row, "exit_page=dresser"), 1.0);
    assert_eq!(value(names, &row, "exit_page=bed"), 0.0);
    assert_eq!(value(names, &row, "referrer=Google"), 1.0);
    assert_eq!(value(names, &row, "device=desktop"), 1.0);
    for (p, v) in [
        ("bed", 1.0),
        ("coffee_table", 1.0),
        ("dresser", 1.0),
        ("bedside_table", 1.0),
        ("sofa", 0.0),
        ("dining_chairs", 0.0),
    ] {
        assert_eq!(value(names, &row, &format!("viewed_{p}")), v, "{p}");
    }
    assert_eq!(value(names, &row, "page_views"), 4.0);
    assert_eq!(value(names, &row, "time_on_pages"), 211.0);
    assert_eq!(value(names, &row, "max_time_on_page"), 95.0);
    assert_eq!(value(names, &row, "basket_total"), 6880.0);
    // bed, coffee table, dresser, bedside table span two sets.
    assert_eq!(value(names, &row, "viewed_together"), 0.0);
    let mut together = s.clone();
    together.browsing_pattern = vec![9, 10, 9];
    assert_eq!(value(names, &enc.transform_one(&together), "viewed_together"), 1.0);
    // One-hot groups sum to one.
    for prefix in ["part_of_day=", "gender=", "state=", "exit_page=", "referrer=", "device="] {
        let sum: f64 =
            names.iter().zip(&row).filter(|(n, _)| n.starts_with(prefix)).map(|(_, v)| v).sum();
        assert_eq!(sum, 1.0, "{prefix}");
    }
    assert_eq!(label(&s), 1.0);
}

#[test]
fn original_feature_set_has_the_fourteen_groups() {
    let enc = FeatureSpec { categorical: CategoricalEncoding::Ordinal, ..FeatureSpec::original() }
        .fit(&[]);
    let expected = [
        "hour",
        "day_of_week",
        "weekend",
        "month",
        "iso_week",
        "part_of_day",
        "gender",
        "state",
        "session_duration",
        "clicks",
        "exit_page",
        "referrer",
        "device",
    ];
    assert_eq!(&enc.names()[..13], &expected);
    assert_eq!(enc.names().len(), 13 + 10);
    let row = enc.transform_one(&example());
    assert_eq!(row[6], 1.0, "Female is level 1 of Male, Female, Other");
    assert_eq!(row[10], 5.0, "dresser is product 6");
    assert_eq!(row[7], 37.0, "Oregon's index in US_STATES");
    let mut other = example();
    other.location_data.state = "Atlantis".into();
    assert_eq!(enc.transform_one(&other)[7], 51.0, "unknown state gets one past the last");
    assert_eq!(enc.public_ranges()[7], (0.0, 51.0));
}

#[test]
fn label_leaking_fields_do_not_change_features() {
    let enc = FeatureSpec::default().fit(&[]);
    let base = example();
    let row = enc.transform_one(&base);
    let mut leaked = base.clone();
    leaked.amount_spent = 0;
    leaked.actions = Action::ViewItem;
    leaked.payment_method_type = PaymentMethod::None;
    leaked.product_reviews = vec![None; leaked.product_reviews.len()];
    leaked.purchase_made = false;
    assert_eq!(enc.transform_one(&leaked), row);
    for action in Action::ALL {
        let mut s = base.clone();
        s.actions = *action;
        assert_eq!(enc.transform_one(&s), row);
    }
    for pm in PaymentMethod::ALL {
        let mut s = base.clone();
        s.payment_method_type = *pm;
        s.amount_spent = 123_456;
        s.product_reviews[0] = Some("awful".into());
        assert_eq!(enc.transform_one(&s), row);
    }
    // And the fields it does use do change it.
    let mut s = base.clone();
    s.referrer = Referrer::Facebook;
    s.gender = Gender::Male;
    s.device_information.device_type = DeviceType::Mobile;
    assert_ne!(enc.transform_one(&s), row);
}

#[test]
fn encoder_round_trips_through_serde() {
    let train = sessions(40);
    let spec =
        FeatureSpec { states: StateVocabulary::Fitted { min_count: 5 }, ..Default::default() };
    let enc = spec.fit(&train);
    assert_eq!(enc.states(), ["Atlantis", "Kansas", "Oregon", "Texas"]);
    let json = serde_json::to_string(&enc).unwrap();
    let back: shopstream_features::Encoder = serde_json::from_str(&json).unwrap();
    assert_eq!(back, enc);
    assert_eq!(back.transform(&train), enc.transform(&train));
    // A state below min_count is out of vocabulary.
    let enc =
        FeatureSpec { states: StateVocabulary::Fitted { min_count: 11 }, ..Default::default() }
            .fit(&train);
    assert!(enc.states().is_empty(), "each state occurs 10 times: {:?}", enc.states());
}

#[test]
fn split_by_user_keeps_users_on_one_side() {
    let all = sessions(3000);
    let enc = FeatureSpec::default().fit(&[]);
    let data = Dataset::from_sessions(&enc, &all);
    let (train, test) = data.split_by_user(0.25, 7).unwrap();
    assert_eq!(train.len() + test.len(), data.len());
    let train_users: HashSet<_> = train.user_ids.iter().collect();
    let test_users: HashSet<_> = test.user_ids.iter().collect();
    assert!(train_users.is_disjoint(&test_users));
    let share = test_users.len() as f64 / (train_users.len() + test_users.len()) as f64;
    assert!((share - 0.25).abs() < 0.05, "test share of users {share}");
    // Rows are carried with their ids.
    for (i, id) in test.session_ids.iter().enumerate() {
        let j = data.session_ids.iter().position(|s| s == id).unwrap();
        assert_eq!(test.x.row(i), data.x.row(j));
        assert_eq!(test.user_ids[i], data.user_ids[j]);
    }
    // Same seed, same split; another seed, another split.
    let (_, again) = data.split_by_user(0.25, 7).unwrap();
    assert_eq!(again.session_ids, test.session_ids);
    let (_, other) = data.split_by_user(0.25, 8).unwrap();
    assert_ne!(other.session_ids, test.session_ids);
    // The session-level split agrees with the dataset split.
    let (s_train, s_test) = split_sessions_by_user(&all, 0.25, 7).unwrap();
    assert_eq!(s_train.len(), train.len());
    assert_eq!(
        s_test.iter().map(|s| &s.session_id).collect::<Vec<_>>(),
        test.session_ids.iter().collect::<Vec<_>>()
    );
    assert!(data.split_by_user(1.0, 7).is_err());
    assert!(data.split_by_user(0.0, 7).is_err());
}

#[test]
fn user_bucket_is_stable_and_uniform() {
    // Fixed values: the split must be reproducible across builds and platforms.
    let a = user_bucket("b7e2d4c1-5a6f-4e3b-8c9d-0a1b2c3d4e5f", 0);
    assert_eq!(a, user_bucket("b7e2d4c1-5a6f-4e3b-8c9d-0a1b2c3d4e5f", 0));
    assert_ne!(a, user_bucket("b7e2d4c1-5a6f-4e3b-8c9d-0a1b2c3d4e5f", 1));
    let n = 20_000;
    let mut bins = [0usize; 10];
    for i in 0..n {
        let b = user_bucket(&format!("user-{i}"), 42);
        assert!((0.0..1.0).contains(&b));
        bins[(b * 10.0) as usize] += 1;
    }
    for c in bins {
        assert!((c as f64 - 2000.0).abs() < 200.0, "bins {bins:?}");
    }
}

#[test]
fn load_jsonl_skips_and_reports_bad_lines() {
    let good = example();
    let mut second = good.clone();
    second.session_id = "another".into();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{}", good.to_json()).unwrap();
    writeln!(file, "{{\"sessionId\": \"x\"}}").unwrap();
    writeln!(file).unwrap();
    writeln!(file, "{}", good.to_json()).unwrap(); // duplicate
    writeln!(file, "{{not json").unwrap();
    write!(file, "{}", second.to_json()).unwrap(); // no trailing newline
    file.flush().unwrap();
    let report = load_jsonl(file.path()).unwrap();
    assert_eq!(report.sessions, vec![good, second]);
    assert_eq!(report.duplicates, 1);
    assert_eq!(report.blank, 1);
    let lines: Vec<_> = report.rejected.iter().map(|r| (r.line, r.error.reason())).collect();
    assert_eq!(lines, [(2, "missing_field"), (5, "malformed_json")]);
    let err = load_jsonl("/nonexistent/sessions.jsonl").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/sessions.jsonl"), "{err}");
}
