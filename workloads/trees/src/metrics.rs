//! Classification metrics used to evaluate the models.

/// Area under the ROC curve of `scores` for 0/1 `labels` (ties count one half), by the
/// Mann-Whitney statistic. `NaN` when one class is absent.
pub fn roc_auc(scores: &[f64], labels: &[f64]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len().min(labels.len())).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut pos) = (0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let mean_rank = (i + j + 2) as f64 / 2.0;
        for &k in &idx[i..=j] {
            if labels[k] == 1.0 {
                rank_sum += mean_rank;
                pos += 1.0;
            }
        }
        i = j + 1;
    }
    let neg = idx.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Mean log loss of probabilities (clipped to `[1e-15, 1 - 1e-15]`).
pub fn log_loss(probs: &[f64], labels: &[f64]) -> f64 {
    let n = probs.len().min(labels.len()).max(1) as f64;
    probs
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / n
}

/// Share of correct predictions at threshold 0.5.
pub fn accuracy(probs: &[f64], labels: &[f64]) -> f64 {
    let n = probs.len().min(labels.len()).max(1) as f64;
    probs.iter().zip(labels).filter(|&(&p, &y)| (p >= 0.5) == (y == 1.0)).count() as f64 / n
}
