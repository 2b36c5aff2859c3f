//! Redis: the gate's state. `rediss://` URLs switch TLS on; a custom CA, an ACL username and a
//! password come from files.

use std::path::PathBuf;

use redis::{ConnectionAddr, IntoConnectionInfo, TlsCertificates};
use shopstream_contract as contract;

use crate::{ClientError, read_file, read_secret, redact_url};

const BACKEND: &str = "Redis";

/// Redis connection settings (flatten into a command's arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Redis URL: `redis://host:port[/db]`, or `rediss://` for TLS. Credentials belong in the
    /// files below, not in the URL.
    #[arg(long, env = contract::env::REDIS_URL, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// PEM file of the CA(s) that sign the server's certificate (the system's CAs without).
    #[arg(long, env = contract::env::REDIS_CA_FILE)]
    pub redis_ca_file: Option<PathBuf>,
    /// File holding the ACL username (`default` without).
    #[arg(long, env = contract::env::REDIS_USERNAME_FILE)]
    pub redis_username_file: Option<PathBuf>,
    /// File holding the password.
    #[arg(long, env = contract::env::REDIS_PASSWORD_FILE)]
    pub redis_password_file: Option<PathBuf>,
    /// Do not verify the server's certificate (never in production).
    #[arg(long, env = contract::env::REDIS_INSECURE_SKIP_VERIFY)]
    pub redis_insecure_skip_verify: bool,
}

impl RedisArgs {
    /// Plain settings for `url` (tests and tools).
    pub fn for_url(url: impl Into<String>) -> Self {
        RedisArgs {
            redis_url: url.into(),
            redis_ca_file: None,
            redis_username_file: None,
            redis_password_file: None,
            redis_insecure_skip_verify: false,
        }
    }

    /// The URL as it may be printed.
    pub fn display_url(&self) -> String {
        redact_url(&self.redis_url)
    }

    /// A client with the TLS and authentication settings applied. Connects lazily: a server
    /// that is down, refuses the password or presents an untrusted certificate shows in the
    /// first connection, as an error naming Redis and the cause.
    pub fn client(&self) -> Result<redis::Client, ClientError> {
        let url = self.display_url();
        let err = |source| ClientError::Redis { url: url.clone(), source };
        let mut info = self.redis_url.as_str().into_connection_info().map_err(err)?;
        let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
        if !tls && (self.redis_ca_file.is_some() || self.redis_insecure_skip_verify) {
            return Err(ClientError::Invalid(format!(
                "Redis: --redis-ca-file and --redis-insecure-skip-verify need a rediss:// URL, \
                 not {url}"
            )));
        }
        let username = self
            .redis_username_file
            .as_deref()
            .map(|p| read_secret(BACKEND, "--redis-username-file", p))
            .transpose()?;
        let password = self
            .redis_password_file
            .as_deref()
            .map(|p| read_secret(BACKEND, "--redis-password-file", p))
            .transpose()?;
        if username.is_some() && password.is_none() {
            return Err(ClientError::Invalid(
                "Redis: --redis-username-file needs --redis-password-file".into(),
            ));
        }
        if !tls && (password.is_some() || info.redis_settings().password().is_some()) {
            tracing::warn!(
                url = %url,
                "Redis: the password crosses the network in clear over redis://; use rediss://"
            );
        }
        if username.is_some() || password.is_some() {
            let mut settings = info.redis_settings().clone();
            if let Some(u) = username {
                settings = settings.set_username(u.expose());
            }
            if let Some(p) = password {
                settings = settings.set_password(p.expose());
            }
            info = info.set_redis_settings(settings);
        }
        if !tls {
            return redis::Client::open(info).map_err(err);
        }
        if self.redis_insecure_skip_verify {
            crate::warn_insecure(BACKEND, "--redis-insecure-skip-verify");
            if let ConnectionAddr::TcpTls { host, port, .. } = info.addr().clone() {
                info = info.set_addr(ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: true,
                    tls_params: None,
                });
            }
        }
        let root_cert = self
            .redis_ca_file
            .as_deref()
            .map(|p| read_file(BACKEND, "--redis-ca-file", p))
            .transpose()?;
        redis::Client::build_with_tls(info, TlsCertificates { client_tls: None, root_cert })
            .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_on_a_plain_url_is_refused_and_urls_print_without_passwords() {
        let mut a = RedisArgs::for_url("redis://:hunter2@127.0.0.1:6379");
        assert_eq!(a.display_url(), "redis://***@127.0.0.1:6379");
        a.redis_ca_file = Some("/nonexistent/ca.pem".into());
        let e = a.client().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("need a rediss:// URL") && !e.contains("hunter2"), "{e}");
        let mut b = RedisArgs::for_url("rediss://127.0.0.1:6380");
        b.redis_ca_file = Some("/nonexistent/ca.pem".into());
        let e = b.client().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("Redis: cannot read --redis-ca-file /nonexistent/ca.pem"), "{e}");
    }
}
