//! Client settings for the backends: one typed struct per backend, flattened into every
//! command that talks to it, so a setting has the same flag and environment variable (from
//! [`shopstream_contract::env`]) in every workload.

use shopstream_contract as contract;
use thiserror::Error;

/// A client could not be set up.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The MongoDB connection string is invalid.
    #[error("MongoDB URL: {0}")]
    MongoUrl(#[source] mongodb::error::Error),
    /// A setting is invalid; the message names the flag.
    #[error("{0}")]
    Invalid(String),
}

/// MongoDB: where the sink's sessions, the registry, the privacy budget and the similar users
/// live.
#[derive(Debug, Clone, clap::Args)]
pub struct MongoArgs {
    /// MongoDB connection string (without it, commands that can read a file instead do so).
    #[arg(long, env = contract::env::MONGO_URL)]
    pub mongo_url: Option<String>,
    /// MongoDB database.
    #[arg(long, env = contract::env::MONGO_DB, default_value = "shopstream")]
    pub mongo_db: String,
}

impl MongoArgs {
    /// Checks the settings (not the server); the message names the flag.
    pub fn validate(&self) -> Result<(), ClientError> {
        let db = &self.mongo_db;
        if db.is_empty() || db.contains(['/', '\\', '.', ' ', '"', '$']) {
            return Err(ClientError::Invalid(format!(
                "--mongo-db {db:?} is not a valid MongoDB database name"
            )));
        }
        Ok(())
    }

    /// The database, or `None` without `--mongo-url`. Connects lazily: a server that is down
    /// shows in the first operation, not here.
    pub async fn database(&self) -> Result<Option<mongodb::Database>, ClientError> {
        let Some(url) = &self.mongo_url else { return Ok(None) };
        let client = mongodb::Client::with_uri_str(url).await.map_err(ClientError::MongoUrl)?;
        Ok(Some(client.database(&self.mongo_db)))
    }
}
