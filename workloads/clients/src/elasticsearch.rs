//! Elasticsearch: the processor's indexes and the similar users. `https://` URLs with a custom
//! CA; basic authentication or an API key from files.

use std::path::PathBuf;
use std::time::Duration;

use elasticsearch::Elasticsearch;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::Url;
use elasticsearch::http::transport::{SingleNodeConnectionPool, Transport, TransportBuilder};
use shopstream_contract as contract;

use crate::{ClientError, has_userinfo, read_credentials, read_file, read_secret, redact_url};

const BACKEND: &str = "Elasticsearch";

/// Elasticsearch connection settings (flatten into a command's arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct EsArgs {
    /// Elasticsearch URL (`http://` or `https://`). Credentials belong in the files below.
    #[arg(long, env = contract::env::ES_URL)]
    pub es_url: Option<String>,
    /// PEM file of the CA(s) that sign the server's certificate (the system's CAs without).
    #[arg(long, env = contract::env::ES_CA_FILE)]
    pub es_ca_file: Option<PathBuf>,
    /// File holding the username (basic authentication).
    #[arg(long, env = contract::env::ES_USERNAME_FILE)]
    pub es_username_file: Option<PathBuf>,
    /// File holding the password (basic authentication).
    #[arg(long, env = contract::env::ES_PASSWORD_FILE)]
    pub es_password_file: Option<PathBuf>,
    /// File holding an API key in its encoded form (base64 of `id:key`), instead of a password.
    #[arg(long, env = contract::env::ES_API_KEY_FILE)]
    pub es_api_key_file: Option<PathBuf>,
    /// Do not verify the server's certificate (never in production).
    #[arg(long, env = contract::env::ES_INSECURE_SKIP_VERIFY)]
    pub es_insecure_skip_verify: bool,
}

impl EsArgs {
    /// Plain settings for `url` (tests and tools).
    pub fn for_url(url: impl Into<String>) -> Self {
        EsArgs {
            es_url: Some(url.into()),
            es_ca_file: None,
            es_username_file: None,
            es_password_file: None,
            es_api_key_file: None,
            es_insecure_skip_verify: false,
        }
    }

    /// The URL as it may be printed (empty without one).
    pub fn display_url(&self) -> String {
        self.es_url.as_deref().map(redact_url).unwrap_or_default()
    }

    fn credentials(&self) -> Result<Option<Credentials>, ClientError> {
        if let Some(path) = &self.es_api_key_file {
            if self.es_username_file.is_some() || self.es_password_file.is_some() {
                return Err(ClientError::Invalid(
                    "Elasticsearch: --es-api-key-file replaces --es-username-file and \
                     --es-password-file; give one or the other"
                        .into(),
                ));
            }
            let key = read_secret(BACKEND, "--es-api-key-file", path)?;
            return Ok(Some(Credentials::EncodedApiKey(key.expose().to_string())));
        }
        let basic = read_credentials(
            BACKEND,
            ("--es-username-file", self.es_username_file.as_deref()),
            ("--es-password-file", self.es_password_file.as_deref()),
        )?;
        Ok(basic.map(|(u, p)| Credentials::Basic(u, p.expose().to_string())))
    }

    /// A transport with TLS and authentication applied and an optional per-request timeout.
    pub fn transport(&self, timeout: Option<Duration>) -> Result<Transport, ClientError> {
        let Some(es_url) = &self.es_url else {
            return Err(ClientError::Invalid(
                "Elasticsearch: no URL; set --es-url or SHOPSTREAM_ES_URL".into(),
            ));
        };
        let shown = self.display_url();
        let invalid = |message: String| ClientError::Elasticsearch { url: shown.clone(), message };
        if has_userinfo(es_url) {
            return Err(invalid(
                "credentials in the URL are refused (they would be printed and sent to every \
                 log); use --es-username-file/--es-password-file or --es-api-key-file"
                    .into(),
            ));
        }
        let url = Url::parse(es_url).map_err(|e| invalid(e.to_string()))?;
        let https = url.scheme() == "https";
        if !https && (self.es_ca_file.is_some() || self.es_insecure_skip_verify) {
            return Err(invalid(
                "--es-ca-file and --es-insecure-skip-verify need an https:// URL".into(),
            ));
        }
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url));
        if let Some(t) = timeout {
            builder = builder.timeout(t);
        }
        if let Some(credentials) = self.credentials()? {
            if !https {
                tracing::warn!(url = %shown, "Elasticsearch: credentials cross the network in clear over http://; use https://");
            }
            builder = builder.auth(credentials);
        }
        if self.es_insecure_skip_verify {
            crate::warn_insecure(BACKEND, "--es-insecure-skip-verify");
            builder = builder.cert_validation(CertificateValidation::None);
        } else if let Some(path) = &self.es_ca_file {
            let pem = read_file(BACKEND, "--es-ca-file", path)?;
            let certs = Certificate::from_pem(&pem)
                .map_err(|e| invalid(format!("--es-ca-file {}: {e}", path.display())))?;
            builder = builder.cert_validation(CertificateValidation::Full(certs));
        }
        builder.build().map_err(|e| invalid(e.to_string()))
    }

    /// A client (see [`EsArgs::transport`]).
    pub fn client(&self, timeout: Option<Duration>) -> Result<Elasticsearch, ClientError> {
        Ok(Elasticsearch::new(self.transport(timeout)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(a: &EsArgs) -> String {
        a.transport(None).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn refuses_credentials_in_the_url_and_tls_settings_on_http() {
        let e = err(&EsArgs::for_url("https://elastic:hunter2@h:9200"));
        assert!(e.contains("credentials in the URL are refused") && !e.contains("hunter2"), "{e}");
        let mut a = EsArgs::for_url("http://h:9200");
        a.es_insecure_skip_verify = true;
        assert!(err(&a).contains("need an https:// URL"));
        let mut b = EsArgs::for_url("https://h:9200");
        b.es_ca_file = Some("/nonexistent.pem".into());
        assert!(err(&b).starts_with("Elasticsearch: cannot read --es-ca-file"), "{}", err(&b));
        assert!(EsArgs::for_url("http://h:9200").transport(None).is_ok());
        let none = EsArgs { es_url: None, ..EsArgs::for_url("") };
        assert!(err(&none).contains("no URL"));
    }
}
