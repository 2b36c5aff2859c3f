//! The hidden propensity is learnable: a plain logistic regression on 20,000 generated sessions
//! reaches ROC AUC >= 0.75 on held-out users' sessions, with balanced labels.

use chrono::{Datelike, Timelike, Weekday};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use shopstream_generator::{Generated, Generator, GeneratorConfig};
use shopstream_schema::{DeviceType, Referrer, Session};

/// A simple, hand-made feature row (the offline crate has the real transform).
fn features(s: &Session) -> Vec<f64> {
    let mut row = vec![
        f64::from(s.session_duration.max(1)).ln(),
        f64::from(s.clicks) / 10.0,
        f64::from(u8::from(matches!(s.session_timestamp.weekday(), Weekday::Sat | Weekday::Sun))),
        f64::from(u8::from((18..=22).contains(&s.session_timestamp.hour()))),
        f64::from(u8::from(s.session_timestamp.hour() <= 5)),
        f64::from(u8::from(shopstream_schema::catalog::is_viewed_together(&s.browsing_pattern))),
    ];
    row.extend(Referrer::ALL.iter().map(|r| f64::from(u8::from(*r == s.referrer))));
    row.extend(
        DeviceType::ALL.iter().map(|d| f64::from(u8::from(*d == s.device_information.device_type))),
    );
    row.extend((1..=10u8).map(|id| f64::from(u8::from(s.browsing_pattern.contains(&id)))));
    row
}

/// ROC AUC by the rank-sum formula, ties counted half.
fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += idx[i..=j].iter().filter(|&&k| labels[k]).count() as f64 * avg_rank;
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

fn matrix(rows: &[&Generated]) -> (Array2<f64>, Array1<bool>) {
    let width = features(&rows[0].session).len();
    let flat: Vec<f64> = rows.iter().flat_map(|g| features(&g.session)).collect();
    let x = Array2::from_shape_vec((rows.len(), width), flat).expect("shape");
    let y = rows.iter().map(|g| g.session.purchase_made).collect();
    (x, y)
}

#[test]
fn auc_of_rank_formula_is_right() {
    assert_eq!(roc_auc(&[0.1, 0.2, 0.3, 0.4], &[false, false, true, true]), 1.0);
    assert_eq!(roc_auc(&[0.4, 0.3, 0.2, 0.1], &[false, false, true, true]), 0.0);
    assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), 0.5);
}

#[test]
fn logistic_regression_learns_the_hidden_propensity() {
    let all: Vec<Generated> = Generator::new(GeneratorConfig { seed: 42, ..Default::default() })
        .expect("config")
        .take(20_000)
        .collect();
    let rate = all.iter().filter(|g| g.session.purchase_made).count() as f64 / all.len() as f64;
    assert!((0.30..=0.70).contains(&rate), "purchase rate {rate}");

    // Split by user, so no user is on both sides.
    let is_test = |g: &&Generated| g.session.user_id.as_bytes()[0].is_multiple_of(5);
    let (test, train): (Vec<&Generated>, Vec<&Generated>) = all.iter().partition(is_test);
    assert!(test.len() > 2_000 && train.len() > 10_000);

    let (x_train, y_train) = matrix(&train);
    let (x_test, y_test) = matrix(&test);
    let model = LogisticRegression::default()
        .max_iterations(300)
        .fit(&Dataset::new(x_train, y_train))
        .expect("fit");
    // linfa-logistic reports the probability of whichever class it calls positive.
    let positive_is_purchase = model.labels().pos.class;
    let scores: Vec<f64> = model
        .predict_probabilities(&x_test)
        .iter()
        .map(|&p| if positive_is_purchase { p } else { 1.0 - p })
        .collect();
    let labels: Vec<bool> = y_test.to_vec();
    let auc = roc_auc(&scores, &labels);
    let truth: Vec<f64> = test.iter().map(|g| g.purchase_probability).collect();
    let ceiling = roc_auc(&truth, &labels);
    println!(
        "purchase rate {rate:.3}; held-out ROC AUC: logistic regression {auc:.4}, true probability {ceiling:.4}"
    );
    assert!(auc >= 0.75, "logistic regression AUC {auc:.4} (ceiling {ceiling:.4})");
    assert!(auc <= ceiling + 0.02, "a model cannot beat the truth by much: {auc} vs {ceiling}");
}
