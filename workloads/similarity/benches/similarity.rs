//! Benchmark: MinHash signatures + LSH index + one query per set, ours against Python
//! `datasketch` (MinHash.bulk + MinHashLSH) and the `gaoya` crate, on the same token sets, in
//! the same run, single-threaded. Prints seconds and ratios (best of `REPEATS`).
//!
//! `cargo bench -p shopstream-similarity --bench similarity` (release profile). Environment:
//! `SIMILARITY_BENCH_CLUSTERS` (default 1500 planted clusters, about 22,000 users),
//! `SIMILARITY_BENCH_REPEATS` (default 3), `SHOPSTREAM_PYTHON` (default `.venv/bin/python`).

#![allow(clippy::unwrap_used)] // A benchmark binary: failing loudly is the point.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use gaoya::minhash::{MinHashIndex, MinHasher, MinHasher32};
use shopstream_similarity::lsh::LshIndex;
use shopstream_similarity::minhash::MinHasher as OurHasher;
use shopstream_similarity::synthetic::{PlantedConfig, planted_users};
use shopstream_similarity::{SimilarityIndex, SimilarityParams};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn best<T>(repeats: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..repeats {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (best, out.unwrap())
}

struct Row {
    signatures: f64,
    index: f64,
    query: f64,
    candidates: usize,
}

impl Row {
    fn total(&self) -> f64 {
        self.signatures + self.index + self.query
    }
}

fn main() {
    let clusters = env_usize("SIMILARITY_BENCH_CLUSTERS", 1500);
    let repeats = env_usize("SIMILARITY_BENCH_REPEATS", 3).max(1);
    let users = planted_users(&PlantedConfig { seed: 7, clusters, ..Default::default() });
    let sets: Vec<Vec<String>> = users.iter().map(|(_, s)| s.iter().cloned().collect()).collect();
    let tokens: usize = sets.iter().map(Vec::len).sum();
    let params = SimilarityParams::default();
    let lsh = params.lsh_params().unwrap();
    println!(
        "similarity benchmark: {} users, {:.1} tokens/user, {} permutations, {} bands x {} rows, \
         best of {repeats}, one thread",
        sets.len(),
        tokens as f64 / sets.len() as f64,
        params.num_perm,
        lsh.bands,
        lsh.rows
    );

    // Ours.
    let hasher = OurHasher::new(params.num_perm, params.seed).unwrap();
    let (t_sig, sigs) = best(repeats, || hasher.signatures(sets.iter().map(|s| s.iter())));
    let (t_idx, index) = best(repeats, || LshIndex::build(&sigs, lsh).unwrap());
    let (t_query, candidates) = best(repeats, || {
        (0..sigs.len()).map(|i| black_box(index.query(sigs.get(i))).len()).sum::<usize>()
    });
    let ours = Row { signatures: t_sig, index: t_idx, query: t_query, candidates };
    let sim = SimilarityIndex::build(sets.iter().map(|s| s.iter()), &params).unwrap();
    let (t_join, (_, join_candidates, similar)) = best(repeats, || sim.top_k(params.top_k));

    // gaoya 0.2: its 32-bit MinHasher and MinHashIndex with the same (b, r), sequential inserts.
    // Its index takes signatures of exactly b * r values, so it hashes b * r permutations (a
    // little less work than our num_perm).
    let g_hasher = MinHasher32::new(lsh.bands * lsh.rows);
    let (g_sig, g_sigs) = best(repeats, || {
        sets.iter().map(|s| g_hasher.create_signature(s.iter())).collect::<Vec<Vec<u32>>>()
    });
    let (g_idx, g_index) = best(repeats, || {
        let mut idx: MinHashIndex<u32, u32> =
            MinHashIndex::new(lsh.bands, lsh.rows, params.min_similarity());
        for (i, s) in g_sigs.iter().enumerate() {
            idx.insert(i as u32, s.clone());
        }
        idx
    });
    let (g_query, g_candidates) = best(repeats, || {
        g_sigs.iter().map(|s| black_box(g_index.query_owned(s)).len()).sum::<usize>()
    });
    let gaoya = Row { signatures: g_sig, index: g_idx, query: g_query, candidates: g_candidates };

    // datasketch, same token sets and (b, r).
    let dir = std::env::temp_dir().join(format!("similarity-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("tokens.json");
    std::fs::write(
        &input,
        serde_json::to_vec(&serde_json::json!({
            "num_perm": params.num_perm, "bands": lsh.bands, "rows": lsh.rows, "sets": sets,
        }))
        .unwrap(),
    )
    .unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var("SHOPSTREAM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv/bin/python"));
    let out = Command::new(&python)
        .arg(root.join("bench/similarity/datasketch_bench.py"))
        .arg(&input)
        .arg(repeats.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (set SHOPSTREAM_PYTHON)", python.display()));
    assert!(
        out.status.success(),
        "datasketch side failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let ds: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let datasketch = Row {
        signatures: ds["signatures"].as_f64().unwrap(),
        index: ds["index"].as_f64().unwrap(),
        query: ds["query"].as_f64().unwrap(),
        candidates: ds["candidates"].as_u64().unwrap() as usize,
    };

    println!(
        "\n{:<22} {:>11} {:>11} {:>11} {:>11} {:>12}",
        "phase (seconds)", "ours", "datasketch", "gaoya 0.2", "ds / ours", "gaoya / ours"
    );
    let line = |name: &str, o: f64, d: f64, g: f64| {
        println!("{name:<22} {o:>11.4} {d:>11.4} {g:>11.4} {:>10.1}x {:>11.1}x", d / o, g / o);
    };
    line("signatures", ours.signatures, datasketch.signatures, gaoya.signatures);
    line("LSH index", ours.index, datasketch.index, gaoya.index);
    line("query every set", ours.query, datasketch.query, gaoya.query);
    line("total", ours.total(), datasketch.total(), gaoya.total());
    println!(
        "\ncandidates returned by the queries (incl. self): ours {}, datasketch {} ({}, scheme {}), \
         gaoya {} (gaoya filters by similarity)",
        ours.candidates, datasketch.candidates, ds["version"], ds["scheme"], gaoya.candidates
    );
    println!(
        "ours, full self-join (candidate pairs + estimate + top-{}): {:.4} s for {} candidate \
         pairs, {} similar pairs; signatures + index + self-join {:.4} s = {:.1}x faster than \
         datasketch's signatures + index + queries",
        params.top_k,
        t_join,
        join_candidates,
        similar,
        ours.signatures + ours.index + t_join,
        datasketch.total() / (ours.signatures + ours.index + t_join)
    );
}
