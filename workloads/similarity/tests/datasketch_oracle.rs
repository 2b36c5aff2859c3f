//! Our MinHash and LSH parameter choice against the reference package `datasketch`.
#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

mod common;

use serde_json::json;
use shopstream_similarity::minhash::{MinHasher, token_hash};
use shopstream_similarity::{estimated_jaccard, optimal_params};

#[test]
fn signatures_equal_datasketch_affine32_bit_for_bit() {
    let hasher = MinHasher::new(128, 20_261_127).unwrap();
    // 60 sets over a shared vocabulary with varied overlaps, sizes 1..=40.
    let sets: Vec<Vec<String>> = (0..60)
        .map(|i| (0..1 + i % 40).map(|t| format!("tok:{}", (i * 7 + t * 3) % 97)).collect())
        .collect();
    let mut hashes = serde_json::Map::new();
    for set in &sets {
        for t in set {
            hashes.insert(t.clone(), json!(token_hash(t.as_bytes())));
        }
    }
    let (a, b) = hasher.permutations();
    let answer = common::oracle(
        "datasketch_oracle.py",
        &json!({ "task": "minhash", "a": a, "b": b, "hashes": hashes, "sets": sets }),
    );
    let theirs: Vec<Vec<u32>> = serde_json::from_value(answer["signatures"].clone()).unwrap();
    let ours: Vec<Vec<u32>> = sets.iter().map(|s| hasher.signature(s)).collect();
    assert_eq!(ours.len(), theirs.len());
    for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(o, t, "signature of set {i} differs from datasketch");
    }
    let pairs = answer["jaccard"].as_array().unwrap();
    assert_eq!(pairs.len(), 60 * 59 / 2);
    for p in pairs {
        let (i, j) = (p[0].as_u64().unwrap() as usize, p[1].as_u64().unwrap() as usize);
        let est = estimated_jaccard(&ours[i], &ours[j]);
        assert_eq!(est, p[2].as_f64().unwrap(), "estimate of ({i}, {j})");
    }
}

#[test]
fn band_choice_equals_datasketch_optimal_param() {
    let mut cases = Vec::new();
    for t in [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95] {
        for n in [16usize, 32, 64, 128, 256] {
            cases.push(json!([t, n, 0.5, 0.5]));
        }
    }
    for (fp, fn_) in [(0.2, 0.8), (0.8, 0.2), (0.3, 0.7), (0.7, 0.3)] {
        cases.push(json!([0.5, 128, fp, fn_]));
    }
    let answer =
        common::oracle("datasketch_oracle.py", &json!({ "task": "params", "cases": cases }));
    let theirs = answer["params"].as_array().unwrap();
    assert_eq!(theirs.len(), cases.len());
    for (case, expect) in cases.iter().zip(theirs) {
        let p = optimal_params(
            case[0].as_f64().unwrap(),
            case[1].as_u64().unwrap() as usize,
            case[2].as_f64().unwrap(),
            case[3].as_f64().unwrap(),
        )
        .unwrap();
        let expect = (expect[0].as_u64().unwrap() as usize, expect[1].as_u64().unwrap() as usize);
        assert_eq!((p.bands, p.rows), expect, "case {case}");
    }
}
