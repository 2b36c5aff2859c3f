//! Client settings for the backends: one typed struct per backend, flattened into every
//! command that talks to it, so a setting has the same flag and environment variable (from
//! [`shopstream_contract::env`]) in every workload.
//!
//! Every backend can be reached over TLS with a custom CA and with authentication:
//!
//! | backend | module | TLS | authentication |
//! |---|---|---|---|
//! | Kafka | [`kafka`] | `ssl` / `sasl-ssl`, CA, client certificate | SASL PLAIN, SCRAM-SHA-256/512 |
//! | Redis | [`redis`] | `rediss://`, CA | ACL username + password |
//! | MongoDB | [`mongo`] | CA (switches TLS on) | SCRAM username + password |
//! | Elasticsearch | [`elasticsearch`] | `https://`, CA | basic or API key |
//!
//! Secrets come from files (a Kubernetes Secret mounted into the one container that needs it),
//! never from the environment or a URL the operator renders; they are held as [`Secret`]s,
//! whose `Debug` prints nothing of them, and URLs are printed through [`redact_url`].

pub mod elasticsearch;
pub mod kafka;
pub mod mongo;
pub mod redis;
mod secret;

pub use elasticsearch::EsArgs;
pub use kafka::{
    ClientCert, KafkaSecurity, KafkaSecurityArgs, Pem, SaslMechanism, SecurityProtocol,
};
pub use mongo::{MongoArgs, MongoAuth};
pub use redis::RedisArgs;
pub use secret::{Secret, read_credentials, read_file, read_secret};

use std::path::PathBuf;
use thiserror::Error;

/// A client could not be set up.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The MongoDB connection string is invalid.
    #[error("MongoDB URL {url}: {source}")]
    MongoUrl {
        /// The URL, credentials redacted.
        url: String,
        /// The driver's error.
        #[source]
        source: mongodb::error::Error,
    },
    /// The Redis URL or TLS material is invalid.
    #[error("Redis {url}: {source}")]
    Redis {
        /// The URL, credentials redacted.
        url: String,
        /// The client library's error.
        #[source]
        source: ::redis::RedisError,
    },
    /// The Elasticsearch URL or TLS material is invalid.
    #[error("Elasticsearch {url}: {message}")]
    Elasticsearch {
        /// The URL, credentials redacted.
        url: String,
        /// Why.
        message: String,
    },
    /// A file a setting names cannot be read.
    #[error("{backend}: cannot read {flag} {}: {source}", .path.display())]
    File {
        /// The backend (`Kafka`, `Redis`, `MongoDB`, `Elasticsearch`).
        backend: &'static str,
        /// The flag that names the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A setting is invalid; the message names the backend and the flag.
    #[error("{0}")]
    Invalid(String),
}

/// `url` with any `user:password@` replaced by `***@`: what may be printed, logged or put in a
/// status. Works on any `scheme://[userinfo@]host...` string, including MongoDB's multi-host
/// form, which a URL parser refuses.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://***@{}{tail}", &authority[at + 1..]),
        None => url.to_string(),
    }
}

/// Whether `url` carries credentials (`user@` or `user:password@`) in its authority.
pub fn has_userinfo(url: &str) -> bool {
    redact_url(url) != url
}

/// Logs a loud warning that certificate verification is off for `backend`.
fn warn_insecure(backend: &str, flag: &str) {
    tracing::warn!(
        backend,
        flag,
        "certificate verification is OFF for {backend} ({flag}): anyone on the network path can \
         read and change this traffic; use a CA file instead"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_userinfo_everywhere_and_keeps_the_rest() {
        assert_eq!(redact_url("redis://u:p@h:6379/0"), "redis://***@h:6379/0");
        assert_eq!(redact_url("rediss://:p@h:6379"), "rediss://***@h:6379");
        assert_eq!(
            redact_url("mongodb://u:p%40x@h1:1,h2:2/db?tls=true&x=a@b"),
            "mongodb://***@h1:1,h2:2/db?tls=true&x=a@b"
        );
        assert_eq!(redact_url("https://h:9200"), "https://h:9200");
        assert_eq!(redact_url("http://h:9200/?q=a@b"), "http://h:9200/?q=a@b");
        assert_eq!(redact_url("not a url"), "not a url");
        assert!(has_userinfo("https://elastic:changeme@h:9200"));
        assert!(!has_userinfo("https://h:9200/a@b"));
    }
}
