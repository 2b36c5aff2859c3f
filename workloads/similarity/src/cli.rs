//! The `shopstream similarity` (CronJob) and `shopstream similar --user ID` commands.

use shopstream_contract as contract;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::Utc;

use crate::pipeline::{SimilarityParams, compute};
use crate::store::{
    self, SIMILAR_USERS_COLLECTION, SIMILAR_USERS_INDEX, SimilarUsersDoc, documents,
};

/// Largest `--top-k` accepted.
pub const MAX_TOP_K: usize = 1000;

pub use shopstream_clients::{EsArgs, MongoArgs};

/// `shopstream similarity`: computes every user's most similar users and stores them.
#[derive(Debug, Clone, clap::Args)]
pub struct SimilarityArgs {
    /// Read sessions from this JSON-lines file instead of MongoDB.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// MongoDB collection of sessions written by `shopstream sink` (used without --input).
    #[arg(long, default_value = shopstream_documents::user_sessions::COLLECTION)]
    pub sessions_collection: String,
    /// MongoDB options (sessions in, results out).
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Collection of the results.
    #[arg(long, default_value = SIMILAR_USERS_COLLECTION)]
    pub collection: String,
    /// Do not write the results to MongoDB even when a URL is set.
    #[arg(long)]
    pub no_mongo: bool,
    /// Elasticsearch for the results index: URL, TLS and credentials.
    #[command(flatten)]
    pub es: EsArgs,
    /// Elasticsearch index of the results.
    #[arg(long, env = contract::env::SIMILARITY_INDEX, default_value = SIMILAR_USERS_INDEX)]
    pub es_index: String,
    /// Do not write the results to Elasticsearch even when a URL is set.
    #[arg(long)]
    pub no_es: bool,
    /// Also write the results as JSON lines to this file (readable by `similar --from`).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Jaccard similarity threshold (the LSH bands are tuned for it).
    #[arg(long, env = contract::env::SIMILARITY_THRESHOLD, default_value_t = 0.5)]
    pub threshold: f64,
    /// Number of MinHash permutations.
    #[arg(long, env = "SHOPSTREAM_SIMILARITY_NUM_PERM", default_value_t = 128)]
    pub num_perm: usize,
    /// Seed of the MinHash permutations (at most 2^63 - 1).
    #[arg(long, env = "SHOPSTREAM_SIMILARITY_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Similar users kept per user.
    #[arg(long, env = "SHOPSTREAM_SIMILARITY_TOP_K", default_value_t = 10)]
    pub top_k: usize,
    /// Weight of false positives when choosing the LSH bands (datasketch's default is 0.5).
    #[arg(long, default_value_t = 0.2)]
    pub fp_weight: f64,
    /// Weight of false negatives when choosing the LSH bands (datasketch's default is 0.5).
    #[arg(long, default_value_t = 0.8)]
    pub fn_weight: f64,
    /// Smallest estimated similarity reported [default: threshold - sqrt(t (1 - t) / num_perm)].
    #[arg(long)]
    pub min_similarity: Option<f64>,
}

impl SimilarityArgs {
    /// The computation's parameters, checked.
    pub fn params(&self) -> anyhow::Result<SimilarityParams> {
        let params = SimilarityParams {
            threshold: self.threshold,
            num_perm: self.num_perm,
            seed: self.seed,
            top_k: self.top_k,
            fp_weight: self.fp_weight,
            fn_weight: self.fn_weight,
            min_similarity: self.min_similarity,
        };
        if self.seed > i64::MAX as u64 {
            bail!(
                "--seed {} is over 2^63 - 1 (it is stored as a 64-bit signed integer)",
                self.seed
            );
        }
        if self.top_k > MAX_TOP_K {
            bail!("--top-k {} is over the limit of {MAX_TOP_K}", self.top_k);
        }
        params.lsh_params().context("invalid similarity parameters")?;
        Ok(params)
    }

    /// Checks the whole configuration before touching any data.
    pub fn validate(&self) -> anyhow::Result<SimilarityParams> {
        let params = self.params()?;
        if self.input.is_none() && self.mongo.mongo_url.is_none() {
            bail!(
                "no input: pass --input FILE.jsonl, or set SHOPSTREAM_MONGO_URL (--mongo-url) to read \
                 the {:?} collection",
                self.sessions_collection
            );
        }
        let mongo_out = !self.no_mongo && self.mongo.mongo_url.is_some();
        let es_out = !self.no_es && self.es.es_url.is_some();
        if !mongo_out && !es_out && self.output.is_none() {
            bail!(
                "no output: set SHOPSTREAM_MONGO_URL and/or SHOPSTREAM_ES_URL, or pass --output FILE"
            );
        }
        Ok(params)
    }
}

/// Runs `shopstream similarity`.
pub async fn run_similarity(args: SimilarityArgs) -> anyhow::Result<()> {
    let params = args.validate()?;
    let started = Instant::now();
    let mongo_db = args.mongo.database().await?;
    let (users, read) = match (&args.input, &mongo_db) {
        (Some(path), _) => store::read_sessions_file(path)?,
        (None, Some(db)) => store::read_sessions_mongo(db, &args.sessions_collection)
            .await
            .with_context(|| format!("reading sessions from {}", args.sessions_collection))?,
        (None, None) => bail!("no input"),
    };
    tracing::info!(
        records = read.records,
        rejected = read.rejected,
        users = users.len(),
        "read sessions"
    );
    let result = compute(&users, &params)?;
    let computed_at = Utc::now();
    let docs = documents(&result, computed_at);
    tracing::info!(
        users = result.stats.users,
        candidate_pairs = result.stats.candidate_pairs,
        similar_pairs = result.stats.similar_pairs,
        bands = result.lsh.bands,
        rows = result.lsh.rows,
        "computed similar users"
    );
    if let Some(path) = &args.output {
        store::write_results_file(path, &docs)?;
    }
    if let (false, Some(db)) = (args.no_mongo, &mongo_db) {
        let (written, deleted) = store::write_mongo(db, &args.collection, &docs).await?;
        tracing::info!(collection = %args.collection, written, deleted, "wrote MongoDB");
    }
    if !args.no_es && args.es.es_url.is_some() {
        let client = args.es.client(None)?;
        let (indexed, deleted) = store::write_es(&client, &args.es_index, &docs).await?;
        tracing::info!(index = %args.es_index, indexed, deleted, "wrote Elasticsearch");
    }
    println!(
        "similarity: {} sessions ({} rejected), {} users, {} candidate pairs, {} similar pairs \
         (threshold {}, reported from {:.4}, {} permutations, {} bands x {} rows), {:.2} s",
        read.records - read.rejected,
        read.rejected,
        result.stats.users,
        result.stats.candidate_pairs,
        result.stats.similar_pairs,
        params.threshold,
        params.min_similarity(),
        params.num_perm,
        result.lsh.bands,
        result.lsh.rows,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `shopstream similar --user ID`: prints a user's most similar users.
#[derive(Debug, Clone, clap::Args)]
pub struct SimilarArgs {
    /// The user id.
    #[arg(long)]
    pub user: String,
    /// Read a results file written by `similarity --output` instead of MongoDB.
    #[arg(long = "from")]
    pub from: Option<PathBuf>,
    /// MongoDB options.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Collection of the results.
    #[arg(long, default_value = SIMILAR_USERS_COLLECTION)]
    pub collection: String,
    /// Print at most this many users (default: all stored, i.e. the run's top-k).
    #[arg(long)]
    pub top: Option<usize>,
    /// Print the stored document as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Looks a user's document up as [`SimilarArgs`] says.
pub async fn lookup(args: &SimilarArgs) -> anyhow::Result<Option<SimilarUsersDoc>> {
    if args.user.trim().is_empty() {
        bail!("--user must not be empty");
    }
    match (&args.from, args.mongo.database().await?) {
        (Some(path), _) => Ok(store::find_in_results_file(path, &args.user)?),
        (None, Some(db)) => Ok(store::read_mongo(&db, &args.collection, &args.user).await?),
        (None, None) => {
            bail!("no source: pass --from FILE, or set SHOPSTREAM_MONGO_URL (--mongo-url)")
        }
    }
}

/// Formats a document as `similar` prints it.
pub fn render(d: &SimilarUsersDoc, top: Option<usize>) -> String {
    let mut out = format!(
        "similar users of {} (computed {}, threshold {}, {} permutations, {} bands x {} rows)\n",
        d.user_id,
        d.computed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        d.params.run.threshold,
        d.params.run.num_perm,
        d.params.bands,
        d.params.rows
    );
    let n = top.unwrap_or(usize::MAX);
    if d.similar.is_empty() {
        out.push_str("  (none at or above the threshold)\n");
    }
    for (i, s) in d.similar.iter().take(n).enumerate() {
        out.push_str(&format!("{:>4}. {}  {:.4}\n", i + 1, s.user_id, s.similarity));
    }
    out
}

/// Runs `shopstream similar`.
pub async fn run_similar(args: SimilarArgs) -> anyhow::Result<()> {
    let Some(mut d) = lookup(&args).await? else {
        bail!(
            "user {:?} has no similarity result (unknown user, or `similarity` has not run)",
            args.user
        );
    };
    if args.json {
        if let Some(n) = args.top {
            d.similar.truncate(n);
        }
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", render(&d, args.top));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    fn parse(argv: &[&str]) -> SimilarityArgs {
        shopstream_test_support::parse_args(argv).unwrap()
    }

    #[test]
    fn validation_names_the_problem() {
        let mut a = parse(&["--input", "x.jsonl", "--output", "o.jsonl", "--no-mongo", "--no-es"]);
        assert!(a.validate().is_ok());
        a.threshold = 1.0;
        assert!(format!("{:#}", a.validate().unwrap_err()).contains("threshold"));
        a.threshold = 0.5;
        a.top_k = 0;
        assert!(format!("{:#}", a.validate().unwrap_err()).contains("top_k"));
        a.top_k = MAX_TOP_K + 1;
        assert!(a.validate().unwrap_err().to_string().contains("--top-k"));
        a.top_k = 10;
        a.seed = u64::MAX;
        assert!(a.validate().unwrap_err().to_string().contains("--seed"));
        a.seed = 1;
        a.output = None;
        assert!(a.validate().unwrap_err().to_string().contains("no output"));
        a.input = None;
        a.mongo.mongo_url = None;
        assert!(a.validate().unwrap_err().to_string().contains("no input"));
    }
}
