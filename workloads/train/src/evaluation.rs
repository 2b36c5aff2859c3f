//! Model evaluation on the test set: the registry metrics (ROC AUC, accuracy, F1, log loss) and
//! ROC curves.

use shopstream_registry::Metrics;
use shopstream_trees::metrics::{accuracy, log_loss, roc_auc};

/// F1 of the positive class at threshold 0.5 (0 when there are no predicted or true positives).
pub fn f1(probs: &[f64], labels: &[f64]) -> f64 {
    let (mut tp, mut fp, mut fneg) = (0.0, 0.0, 0.0);
    for (&p, &y) in probs.iter().zip(labels) {
        match (p >= 0.5, y == 1.0) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fneg += 1.0,
            (false, false) => {}
        }
    }
    if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + fp + fneg) }
}

/// All four registry metrics.
pub fn evaluate(probs: &[f64], labels: &[f64]) -> Metrics {
    Metrics {
        roc_auc: roc_auc(probs, labels),
        accuracy: accuracy(probs, labels),
        f1: f1(probs, labels),
        log_loss: log_loss(probs, labels),
    }
}

/// ROC curve as `(false positive rate, true positive rate)` points from `(0,0)` to `(1,1)`,
/// one point per distinct score (ties move diagonally).
pub fn roc_curve(scores: &[f64], labels: &[f64]) -> Vec<(f64, f64)> {
    let mut idx: Vec<usize> = (0..scores.len().min(labels.len())).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let pos = idx.iter().filter(|&&i| labels[i] == 1.0).count() as f64;
    let neg = idx.len() as f64 - pos;
    let mut pts = vec![(0.0, 0.0)];
    if pos == 0.0 || neg == 0.0 {
        pts.push((1.0, 1.0));
        return pts;
    }
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if labels[idx[i]] == 1.0 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        pts.push((fp / neg, tp / pos));
    }
    pts
}

/// Thins a curve to at most `max` points (keeping both ends) for plotting.
pub fn thin(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let step = (points.len() - 1) as f64 / (max - 1) as f64;
    (0..max).map(|k| points[((k as f64 * step).round() as usize).min(points.len() - 1)]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f1_and_roc_on_a_small_example() {
        let p = [0.9, 0.8, 0.4, 0.3, 0.6];
        let y = [1.0, 0.0, 1.0, 0.0, 1.0];
        // Predicted positive: 0.9 (tp), 0.8 (fp), 0.6 (tp); missed 0.4 (fn).
        assert!((f1(&p, &y) - 2.0 * 2.0 / (4.0 + 1.0 + 1.0)).abs() < 1e-12);
        let roc = roc_curve(&p, &y);
        assert_eq!(roc.first(), Some(&(0.0, 0.0)));
        assert_eq!(roc.last(), Some(&(1.0, 1.0)));
        // Trapezoid area equals the Mann-Whitney AUC.
        let area: f64 = roc.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum();
        assert!((area - roc_auc(&p, &y)).abs() < 1e-12);
        assert_eq!(thin(&roc, 3).len(), 3);
    }
}
