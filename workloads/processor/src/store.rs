//! Where documents go: the [`DocStore`] trait and its Elasticsearch implementation
//! ([`EsStore`]).

use std::future::Future;
use std::time::Duration;

use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use elasticsearch::http::headers::HeaderMap;
use serde_json::{Value, json};
use shopstream_clients::EsArgs;

use crate::bulk::{Batch, ItemOutcome, classify_response, is_retryable_status};
use crate::mapping::{Indexes, index_settings, index_template};

/// Why a whole bulk request failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or answered with a transient error: retry later.
    #[error("document store unavailable: {0}")]
    Unavailable(String),
    /// The store refused the whole request (HTTP 4xx other than 408/429): retrying the same
    /// request cannot help.
    #[error("document store refused the request (HTTP {status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// What the store said.
        message: String,
    },
}

/// A store of documents written in `_bulk` batches.
pub trait DocStore: Send {
    /// Writes the batch and returns one outcome per operation, in order; an error when the
    /// request as a whole failed (then nothing is known about the items).
    fn write(
        &mut self,
        batch: &Batch,
    ) -> impl Future<Output = Result<Vec<ItemOutcome>, StoreError>> + Send;

    /// Called before retrying after the store was unavailable: a store that restarted may have
    /// lost its set-up (the Elasticsearch sink re-creates its templates and indexes). The
    /// default does nothing.
    fn recover(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}

/// Counts what it is given and stores nothing (the engine's tests).
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub(crate) struct CountingSink {
    /// Documents received.
    pub docs: u64,
    /// Body bytes received.
    pub bytes: u64,
    /// Requests received.
    pub requests: u64,
}

#[cfg(test)]
impl DocStore for CountingSink {
    async fn write(&mut self, batch: &Batch) -> Result<Vec<ItemOutcome>, StoreError> {
        self.docs += batch.len() as u64;
        self.bytes += batch.body().len() as u64;
        self.requests += 1;
        Ok(vec![ItemOutcome::Ok; batch.len()])
    }
}

/// Errors setting up the indexes.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Elasticsearch could not be reached (retry).
    #[error("elasticsearch unavailable: {0}")]
    Unavailable(String),
    /// Elasticsearch refused a template, an index or a mapping: an existing index has an
    /// incompatible mapping, or the request is invalid. Needs an operator.
    #[error("setting up {what}: HTTP {status}: {body}")]
    Refused {
        /// What was being set up.
        what: String,
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// The URL, TLS or credential settings are invalid.
    #[error(transparent)]
    Settings(#[from] shopstream_clients::ClientError),
}

/// The Elasticsearch sink: `_bulk` requests through the `elasticsearch` client.
#[derive(Debug, Clone)]
pub struct EsStore {
    client: Elasticsearch,
    timeout: Duration,
    indexes: Option<Indexes>,
}

impl EsStore {
    /// A client for the cluster `es` names (with its TLS and credentials) and a per-request
    /// timeout.
    pub fn new(es: &EsArgs, timeout: Duration) -> Result<EsStore, SetupError> {
        let client = es.client(Some(timeout))?;
        Ok(EsStore { client, timeout, indexes: None })
    }

    /// The underlying client.
    pub fn client(&self) -> &Elasticsearch {
        &self.client
    }

    async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<(u16, String), SetupError> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let response = self
            .client
            .send(
                method,
                path,
                HeaderMap::new(),
                None::<&()>,
                Some(bytes.as_slice()),
                Some(self.timeout),
            )
            .await
            .map_err(|e| SetupError::Unavailable(e.to_string()))?;
        let status = response.status_code().as_u16();
        let text = response.text().await.map_err(|e| SetupError::Unavailable(e.to_string()))?;
        if is_retryable_status(status) {
            return Err(SetupError::Unavailable(format!("HTTP {status} on {path}: {text}")));
        }
        Ok((status, text))
    }

    /// Creates (or updates) the index templates and creates the indexes with their explicit
    /// mappings. Idempotent: existing indexes get the mapping merged in (new fields are added;
    /// a conflicting existing field is an error that needs an operator).
    pub async fn ensure_indexes(&mut self, indexes: &Indexes) -> Result<(), SetupError> {
        self.indexes = Some(indexes.clone());
        for (name, mapping) in indexes.with_mappings() {
            let refused = |what: String, status: u16, body: String| SetupError::Refused {
                what,
                status,
                body,
            };
            let (status, body) = self
                .send_json(
                    Method::Put,
                    &format!("/_index_template/{name}"),
                    &index_template(name, &mapping),
                )
                .await?;
            if !(200..300).contains(&status) {
                return Err(refused(format!("index template {name}"), status, body));
            }
            let create = json!({ "settings": index_settings(), "mappings": mapping });
            let (status, body) = self.send_json(Method::Put, &format!("/{name}"), &create).await?;
            if (200..300).contains(&status) {
                tracing::info!(index = name, "index created");
                continue;
            }
            if !body.contains("resource_already_exists_exception") {
                return Err(refused(format!("index {name}"), status, body));
            }
            let (status, body) =
                self.send_json(Method::Put, &format!("/{name}/_mapping"), &mapping).await?;
            if !(200..300).contains(&status) {
                return Err(refused(format!("mapping of existing index {name}"), status, body));
            }
            tracing::info!(index = name, "index exists, mapping up to date");
        }
        Ok(())
    }
}

impl DocStore for EsStore {
    async fn recover(&mut self) -> Result<(), StoreError> {
        let Some(indexes) = self.indexes.clone() else { return Ok(()) };
        self.ensure_indexes(&indexes).await.map_err(|e| match e {
            SetupError::Unavailable(m) => StoreError::Unavailable(m),
            other => StoreError::Unavailable(format!("re-creating indexes: {other}")),
        })
    }

    async fn write(&mut self, batch: &Batch) -> Result<Vec<ItemOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let response = self
            .client
            .send(
                Method::Post,
                "/_bulk",
                HeaderMap::new(),
                None::<&()>,
                Some(batch.body()),
                Some(self.timeout),
            )
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let status = response.status_code().as_u16();
        let body = response.bytes().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        if is_retryable_status(status) {
            return Err(StoreError::Unavailable(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(512)])
            )));
        }
        if !(200..300).contains(&status) {
            return Err(StoreError::Refused {
                status,
                message: String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned(),
            });
        }
        classify_response(&body, batch.len()).map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}
