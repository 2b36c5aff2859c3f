//! Records in the original system's exact format parse; each malformed variant is rejected with
//! an error that names the problem.

use shopstream_schema::{
    DeviceType, MAX_RECORD_BYTES, PaymentMethod, Referrer, SchemaError, Session, parse_session,
};

const ORIGINAL: &str = include_str!("data/original-format.jsonl");

fn originals() -> Vec<&'static str> {
    ORIGINAL.lines().filter(|l| !l.trim().is_empty()).collect()
}

fn good() -> serde_json::Value {
    serde_json::from_str(originals()[0]).expect("fixture is JSON")
}

fn reject(value: &serde_json::Value) -> SchemaError {
    let bytes = serde_json::to_vec(value).expect("serialise");
    parse_session(&bytes).expect_err("must be rejected")
}

#[test]
fn original_format_parses_unchanged() {
    let lines = originals();
    assert_eq!(lines.len(), 2);
    let first = parse_session(lines[0].as_bytes()).expect("first record");
    assert!(first.purchase_made);
    assert_eq!(first.payment_method_type, PaymentMethod::CreditCard);
    assert_eq!(first.amount_spent, 6880);
    assert_eq!(first.session_timestamp.to_string(), "2026-11-20 14:03:27");

    let second = parse_session(lines[1].as_bytes()).expect("second record");
    assert!(!second.purchase_made);
    assert_eq!(second.product_reviews, vec![None, None, None]);
    assert_eq!(second.device_information.device_type, DeviceType::Unknown);
    assert_eq!(second.referrer, Referrer::Unknown);
    assert_eq!(second.payment_method_type, PaymentMethod::None);

    // Writing it back gives the same JSON value, field for field.
    for line in lines {
        let parsed = parse_session(line.as_bytes()).expect("parse");
        let original: serde_json::Value = serde_json::from_str(line).expect("json");
        let written: serde_json::Value = serde_json::from_str(&parsed.to_json()).expect("json");
        assert_eq!(original, written);
        let again: Session = parse_session(parsed.to_json().as_bytes()).expect("reparse");
        assert_eq!(again, parsed);
    }
}

#[test]
fn missing_field_is_named() {
    let mut v = good();
    v.as_object_mut().expect("object").remove("userId");
    let err = reject(&v);
    assert_eq!(err, SchemaError::MissingField { field: "userId".into() });

    let mut v = good();
    v["deviceInformation"].as_object_mut().expect("object").remove("deviceType");
    let err = reject(&v);
    assert_eq!(err.reason(), "missing_field");
    assert_eq!(err.field(), "deviceInformation.deviceType");
}

#[test]
fn wrong_type_is_named() {
    let mut v = good();
    v["clicks"] = serde_json::json!("thirty-one");
    let err = reject(&v);
    assert_eq!(err.reason(), "wrong_type");
    assert_eq!(err.field(), "clicks");

    let mut v = good();
    v["sessionDuration"] = serde_json::json!(-5);
    assert_eq!(reject(&v).field(), "sessionDuration");

    let mut v = good();
    v["productIds"][2] = serde_json::json!("six");
    assert_eq!(reject(&v).field(), "productIds[2]");

    let mut v = good();
    v["referrer"] = serde_json::json!("Myspace");
    let err = reject(&v);
    assert_eq!(err.field(), "referrer");
    assert!(err.to_string().contains("Myspace"), "{err}");

    let mut v = good();
    v["sessionTimestamp"] = serde_json::json!("20/11/2026 14:03");
    assert_eq!(reject(&v).field(), "sessionTimestamp");

    let mut v = good();
    v["surprise"] = serde_json::json!(1);
    let err = reject(&v);
    assert_eq!(err.reason(), "wrong_type");
    assert!(err.to_string().contains("surprise"), "{err}");
}

#[test]
fn truncated_json_is_malformed() {
    let line = originals()[0];
    for cut in [1, line.len() / 2, line.len() - 1] {
        let err = parse_session(&line.as_bytes()[..cut]).expect_err("truncated");
        assert_eq!(err.reason(), "malformed_json", "cut at {cut}: {err}");
        assert_eq!(err.field(), "$");
    }
    let err = parse_session(format!("{line} trailing").as_bytes()).expect_err("trailing junk");
    assert_eq!(err.reason(), "malformed_json");
}

#[test]
fn mismatched_array_lengths_are_named() {
    let mut v = good();
    v["productPrices"].as_array_mut().expect("array").pop();
    let err = reject(&v);
    assert_eq!(err.reason(), "invalid_value");
    assert_eq!(err.field(), "productPrices");

    let mut v = good();
    v["timeSpentonEachPage"].as_array_mut().expect("array").push(serde_json::json!(3));
    assert_eq!(reject(&v).field(), "timeSpentonEachPage");

    let mut v = good();
    v["pageViews"] = serde_json::json!(7);
    assert_eq!(reject(&v).field(), "pageViews");
}

#[test]
fn rule_violations_are_named() {
    let mut v = good();
    v["browsingPattern"][1] = serde_json::json!(11);
    v["productIds"][1] = serde_json::json!(11);
    assert_eq!(reject(&v).field(), "browsingPattern[1]");

    let mut v = good();
    v["productIds"][0] = serde_json::json!(2);
    assert_eq!(reject(&v).field(), "productIds[0]");

    let mut v = good();
    v["productNames"][3] = serde_json::json!("lamp");
    assert_eq!(reject(&v).field(), "productNames[3]");

    let mut v = good();
    v["amountSpent"] = serde_json::json!(1);
    assert_eq!(reject(&v).field(), "amountSpent");

    let mut v: serde_json::Value = serde_json::from_str(originals()[1]).expect("json");
    v["productReviews"][0] = serde_json::json!("Nice.");
    assert_eq!(reject(&v).field(), "productReviews[0]");

    let mut v = good();
    v["ipAddress"] = serde_json::json!("not-an-ip");
    assert_eq!(reject(&v).field(), "ipAddress");
}

#[test]
fn invalid_utf8_is_rejected() {
    let mut bytes = originals()[0].as_bytes().to_vec();
    let at = bytes.iter().position(|&b| b == b'D').expect("a D in the name");
    bytes[at] = 0xff;
    let err = parse_session(&bytes).expect_err("invalid utf-8");
    assert_eq!(err, SchemaError::InvalidUtf8 { offset: at });

    let junk: Vec<u8> = (0..200u8).map(|i| i.wrapping_mul(151)).collect();
    assert!(parse_session(&junk).is_err());
}

#[test]
fn huge_record_is_rejected_before_parsing() {
    let mut v = good();
    v["name"] = serde_json::json!("x".repeat(5 * 1024 * 1024));
    let bytes = serde_json::to_vec(&v).expect("serialise");
    let err = parse_session(&bytes).expect_err("5 MB record");
    assert_eq!(err, SchemaError::TooLarge { size: bytes.len(), limit: MAX_RECORD_BYTES });
    assert!(err.to_string().contains("over the limit"));
}
