//! Similar users for the furniture shop: MinHash over each user's behaviour tokens merged across
//! sessions, LSH banding tuned for a Jaccard threshold, top-k similar users per user with their
//! estimated similarity, stored in MongoDB (`similar_users`) and Elasticsearch
//! (`shopstream-similar-users`).
//!
//! Pure logic and I/O are apart:
//! - [`tokens`]: the behaviour tokens of a session and per-user merging (documented table).
//! - [`minhash`]: seeded, deterministic MinHash signatures (datasketch's `affine32` scheme).
//! - [`lsh`]: band/row choice as datasketch's `MinHashLSH` makes it, and a sorted-band index.
//! - [`pipeline`]: candidate pairs, estimated Jaccard, threshold filter, top-k per user.
//! - [`store`]: JSON-lines and MongoDB inputs; MongoDB, Elasticsearch and file outputs.
//! - [`synthetic`]: planted clusters with exact similarities, for tests and benchmarks.
//! - [`cli`]: the `shopstream similarity` (CronJob) and `shopstream similar --user ID` commands.
//!
//! ```
//! use shopstream_similarity::{SimilarityParams, UserTokens, compute};
//!
//! let mut users = UserTokens::new();
//! users.add_tokens("u1", ["view:1", "view:2", "ref:Google"]);
//! users.add_tokens("u2", ["view:1", "view:2", "ref:Google"]);
//! users.add_tokens("u3", ["view:9", "dev:tablet"]);
//! let result = compute(&users, &SimilarityParams::default()).unwrap();
//! assert_eq!(result.users[0].similar[0].user_id, "u2");
//! assert!(result.users[2].similar.is_empty());
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod lsh;
pub mod minhash;
pub mod pipeline;
pub mod store;
pub mod synthetic;
#[doc(hidden)]
pub mod tokens;

pub use cli::{SimilarArgs, SimilarityArgs, run_similar, run_similarity};
pub use lsh::{LshIndex, LshParams, optimal_params};
pub use minhash::{MinHasher, Signatures, estimated_jaccard};
pub use pipeline::{
    RunStats, SimilarUser, SimilarityIndex, SimilarityParams, SimilarityResult, UserSimilarity,
    compute,
};
pub use tokens::{UserTokens, jaccard, session_tokens};

use thiserror::Error;

/// Errors of the similarity library.
#[derive(Debug, Error)]
pub enum SimilarityError {
    /// A parameter is out of range.
    #[error("invalid {name}: {message}")]
    InvalidParam {
        /// Name of the parameter.
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A record of an input could not be used.
    #[error("{source_name}: record {record}: {message}")]
    BadRecord {
        /// File name or collection the record came from.
        source_name: String,
        /// 1-based line number or position of the record.
        record: u64,
        /// What is wrong with it.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A MongoDB operation failed.
    #[error("MongoDB: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// An Elasticsearch request failed or was rejected.
    #[error("Elasticsearch: {0}")]
    Elastic(String),
}

impl SimilarityError {
    pub(crate) fn param(name: &'static str, message: impl Into<String>) -> Self {
        SimilarityError::InvalidParam { name, message: message.into() }
    }
}
