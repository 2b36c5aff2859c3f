//! MongoDB: the sink's sessions, the registry, the privacy budget and the similar users.
//!
//! TLS with a custom CA and SCRAM credentials come from files. Only the connection-string
//! options in [`ALLOWED_OPTIONS`] are accepted and only SCRAM mechanisms: the driver's other
//! mechanisms (MONGODB-OIDC, MONGODB-AWS, X.509, GSSAPI) can make it read ambient credentials
//! of the process (a pod's ServiceAccount token, cloud metadata) and send them to the server,
//! and the `tls*File` options would make it read files of the process; TLS material is set
//! through the typed settings instead.

use std::path::PathBuf;
use std::time::Duration;

use mongodb::options::{AuthMechanism, ClientOptions, Credential, Tls, TlsOptions};
use shopstream_contract as contract;

use crate::{ClientError, Secret, read_credentials, read_file, redact_url};

const BACKEND: &str = "MongoDB";

/// Connection-string options accepted (lower case). Everything else is refused.
pub const ALLOWED_OPTIONS: &[&str] = &[
    "appname",
    "authmechanism",
    "authsource",
    "compressors",
    "connecttimeoutms",
    "directconnection",
    "heartbeatfrequencyms",
    "journal",
    "loadbalanced",
    "localthresholdms",
    "maxconnecting",
    "maxidletimems",
    "maxpoolsize",
    "minpoolsize",
    "readconcernlevel",
    "readpreference",
    "readpreferencetags",
    "replicaset",
    "retryreads",
    "retrywrites",
    "serverselectiontimeoutms",
    "sockettimeoutms",
    "srvmaxhosts",
    "srvservicename",
    "ssl",
    "tls",
    "w",
    "wtimeoutms",
    "zlibcompressionlevel",
];

/// Authentication mechanisms accepted (`authMechanism`); without one the driver negotiates
/// SCRAM.
pub const ALLOWED_MECHANISMS: &[&str] = &["SCRAM-SHA-1", "SCRAM-SHA-256"];

/// Checks a connection string's scheme, options and mechanism without parsing hosts (no DNS).
/// The message says what is wrong and what to do instead; it never repeats credentials.
pub fn check_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("not a mongodb:// or mongodb+srv:// URL".into());
    };
    if scheme != "mongodb" && scheme != "mongodb+srv" {
        return Err(format!("scheme {scheme:?} is not mongodb or mongodb+srv"));
    }
    let Some((_, query)) = rest.split_once('?') else { return Ok(()) };
    for pair in query.split(['&', ';']).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let lower = key.to_ascii_lowercase();
        if lower == "authmechanism" {
            let mechanism = value.to_ascii_uppercase();
            if !ALLOWED_MECHANISMS.contains(&mechanism.as_str()) {
                return Err(format!(
                    "authMechanism={value} is not accepted (only {}): other mechanisms can make \
                     the driver send ambient credentials of the process, such as a pod's \
                     ServiceAccount token, to the server",
                    ALLOWED_MECHANISMS.join(", ")
                ));
            }
        } else if (lower.starts_with("tls") && lower != "tls") || lower == "authmechanismproperties"
        {
            return Err(format!(
                "option {key} is not accepted in the URL: set TLS through the CA file and \
                 insecure-skip-verify settings (a pipeline's tls field), never through files or \
                 properties named in a URL"
            ));
        } else if !ALLOWED_OPTIONS.contains(&lower.as_str()) {
            return Err(format!("unknown option {key} (accepted: {})", ALLOWED_OPTIONS.join(", ")));
        }
    }
    Ok(())
}

/// `url` without its `authMechanism` and `authSource` options, and their values (the
/// mechanism is one of [`ALLOWED_MECHANISMS`], which [`check_url`] has made sure of).
fn take_auth_options(url: &str) -> (String, Option<AuthMechanism>, Option<String>) {
    let Some((base, query)) = url.split_once('?') else { return (url.to_string(), None, None) };
    let mut mechanism = None;
    let mut source = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key.eq_ignore_ascii_case("authSource") {
                source = Some(value.to_string());
                return false;
            }
            if !key.eq_ignore_ascii_case("authMechanism") {
                return true;
            }
            mechanism = match value.to_ascii_uppercase().as_str() {
                "SCRAM-SHA-1" => Some(AuthMechanism::ScramSha1),
                "SCRAM-SHA-256" => Some(AuthMechanism::ScramSha256),
                _ => None,
            };
            false
        })
        .collect();
    (format!("{base}?{}", kept.join("&")), mechanism, source)
}

/// TLS and credentials of a MongoDB connection, resolved (secrets read).
#[derive(Debug, Clone, Default)]
pub struct MongoAuth {
    /// CA bundle file; switches TLS on.
    pub ca_file: Option<PathBuf>,
    /// SCRAM username and password.
    pub credentials: Option<(String, Secret)>,
    /// Skip certificate verification (switches TLS on).
    pub insecure_skip_verify: bool,
}

/// Driver options for `url` with `auth` applied, after [`check_url`]. Parsing a
/// `mongodb+srv://` URL resolves its DNS records.
pub async fn client_options(url: &str, auth: &MongoAuth) -> Result<ClientOptions, ClientError> {
    let shown = redact_url(url);
    check_url(url).map_err(|m| ClientError::Invalid(format!("MongoDB URL {shown}: {m}")))?;
    // The mechanism and source are applied below, with the credentials from files: the
    // driver refuses a SCRAM mechanism in a URL that has no username, and drops its source.
    let (url, mechanism, source) = take_auth_options(url);
    let mut opts = ClientOptions::parse(&url)
        .await
        .map_err(|source| ClientError::MongoUrl { url: shown.clone(), source })?;
    if auth.ca_file.is_some() || auth.insecure_skip_verify {
        if matches!(opts.tls, Some(Tls::Disabled)) {
            return Err(ClientError::Invalid(format!(
                "MongoDB URL {shown} says tls=false but a CA file or insecure-skip-verify is set"
            )));
        }
        if let Some(ca) = &auth.ca_file {
            read_file(BACKEND, "--mongo-ca-file", ca)?;
        }
        if auth.insecure_skip_verify {
            crate::warn_insecure(BACKEND, "--mongo-insecure-skip-verify");
        }
        let tls = TlsOptions::builder()
            .ca_file_path(auth.ca_file.clone())
            .allow_invalid_certificates(auth.insecure_skip_verify.then_some(true))
            .build();
        opts.tls = Some(Tls::Enabled(tls));
    }
    if let Some((user, password)) = &auth.credentials {
        opts.credential = Some(
            Credential::builder()
                .username(user.clone())
                .password(password.expose().to_string())
                .source(source)
                .mechanism(mechanism)
                .build(),
        );
    } else if let Some(c) = opts.credential.as_mut() {
        // A username in the URL (local runs): its mechanism and source as the URL says.
        c.mechanism = mechanism.or(c.mechanism.take());
        c.source = source.or(c.source.take());
    }
    if opts.credential.is_some() && !matches!(opts.tls, Some(Tls::Enabled(_))) {
        tracing::warn!(url = %shown, "MongoDB: authenticating without TLS");
    }
    Ok(opts)
}

/// MongoDB connection settings (flatten into a command's arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct MongoArgs {
    /// MongoDB connection string (without it, commands that can read a file instead do so).
    /// Credentials belong in the files below, not in the URL.
    #[arg(long, env = contract::env::MONGO_URL)]
    pub mongo_url: Option<String>,
    /// MongoDB database.
    #[arg(long, env = contract::env::MONGO_DB, default_value = "shopstream")]
    pub mongo_db: String,
    /// PEM file of the CA(s) that sign the server's certificate; switches TLS on.
    #[arg(long, env = contract::env::MONGO_CA_FILE)]
    pub mongo_ca_file: Option<PathBuf>,
    /// File holding the SCRAM username.
    #[arg(long, env = contract::env::MONGO_USERNAME_FILE)]
    pub mongo_username_file: Option<PathBuf>,
    /// File holding the SCRAM password.
    #[arg(long, env = contract::env::MONGO_PASSWORD_FILE)]
    pub mongo_password_file: Option<PathBuf>,
    /// Do not verify the server's certificate (never in production).
    #[arg(long, env = contract::env::MONGO_INSECURE_SKIP_VERIFY)]
    pub mongo_insecure_skip_verify: bool,
}

impl MongoArgs {
    /// Plain settings for `url` and database `db` (tests and tools).
    pub fn for_url(url: impl Into<String>, db: impl Into<String>) -> Self {
        MongoArgs {
            mongo_url: Some(url.into()),
            mongo_db: db.into(),
            mongo_ca_file: None,
            mongo_username_file: None,
            mongo_password_file: None,
            mongo_insecure_skip_verify: false,
        }
    }

    /// Checks the settings (not the server); the message names the flag.
    pub fn validate(&self) -> Result<(), ClientError> {
        let db = &self.mongo_db;
        if db.is_empty() || db.contains(['/', '\\', '.', ' ', '"', '$']) {
            return Err(ClientError::Invalid(format!(
                "--mongo-db {db:?} is not a valid MongoDB database name"
            )));
        }
        if let Some(url) = &self.mongo_url {
            check_url(url).map_err(|m| {
                ClientError::Invalid(format!("--mongo-url {}: {m}", redact_url(url)))
            })?;
        }
        Ok(())
    }

    /// The TLS and credentials settings, files read.
    pub fn auth(&self) -> Result<MongoAuth, ClientError> {
        let credentials = read_credentials(
            BACKEND,
            ("--mongo-username-file", self.mongo_username_file.as_deref()),
            ("--mongo-password-file", self.mongo_password_file.as_deref()),
        )?;
        Ok(MongoAuth {
            ca_file: self.mongo_ca_file.clone(),
            credentials,
            insecure_skip_verify: self.mongo_insecure_skip_verify,
        })
    }

    /// A client, or `None` without `--mongo-url`. Connects lazily: a server that is down,
    /// refuses the credentials or presents an untrusted certificate shows in the first
    /// operation, not here.
    pub async fn client(&self) -> Result<Option<mongodb::Client>, ClientError> {
        let Some(url) = &self.mongo_url else { return Ok(None) };
        let mut opts = client_options(url, &self.auth()?).await?;
        opts.server_selection_timeout.get_or_insert(Duration::from_secs(10));
        let client = mongodb::Client::with_options(opts)
            .map_err(|source| ClientError::MongoUrl { url: redact_url(url), source })?;
        Ok(Some(client))
    }

    /// The database, or `None` without `--mongo-url` (see [`MongoArgs::client`]).
    pub async fn database(&self) -> Result<Option<mongodb::Database>, ClientError> {
        Ok(self.client().await?.map(|c| c.database(&self.mongo_db)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambient_mechanisms_file_options_and_unknown_options_are_refused() {
        for ok in [
            "mongodb://h:27017",
            "mongodb://h1:1,h2:2/db?replicaSet=rs0&directConnection=false",
            "mongodb+srv://cluster.example.com/?authSource=admin&tls=true",
            "mongodb://h/?authMechanism=SCRAM-SHA-256&retryWrites=true&w=majority",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        let refused = |url: &str| check_url(url).err().unwrap_or_default();
        for bad in [
            "mongodb://h/?authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:k8s",
            "mongodb://h/?authMechanism=MONGODB-AWS",
            "mongodb://h/?authMechanism=MONGODB-X509",
            "mongodb://h/?authMechanism=GSSAPI",
            "mongodb://h/?authMechanism=PLAIN",
        ] {
            assert!(refused(bad).contains("ServiceAccount token"), "{bad}: {}", refused(bad));
        }
        assert!(
            refused("mongodb://h/?authMechanismProperties=ENVIRONMENT:k8s")
                .contains("not accepted")
        );
        assert!(refused("mongodb://h/?tlsCAFile=/var/run/secrets/token").contains("tlsCAFile"));
        assert!(refused("mongodb://h/?tlsInsecure=true").contains("not accepted"));
        assert!(refused("mongodb://h/?foo=1").contains("unknown option foo"));
        assert!(refused("http://h").contains("scheme"));
    }

    #[test]
    fn validate_names_the_flag_and_hides_the_password() {
        let a = MongoArgs::for_url("mongodb://u:hunter2@h/?authMechanism=MONGODB-AWS", "db");
        let e = a.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("--mongo-url mongodb://***@h/"), "{e}");
        assert!(!e.contains("hunter2"));
    }

    #[tokio::test]
    async fn files_become_tls_and_scram_options() {
        let dir = std::env::temp_dir().join(format!("clients-mongo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("ca.pem"), "not read by the parser")
            .unwrap_or_else(|e| panic!("{e}"));
        let auth = MongoAuth {
            ca_file: Some(dir.join("ca.pem")),
            credentials: Some(("app".into(), Secret::new("pw"))),
            insecure_skip_verify: false,
        };
        let url = "mongodb://127.0.0.1:1/?authSource=admin&authMechanism=SCRAM-SHA-256";
        let opts = client_options(url, &auth).await.unwrap_or_else(|e| panic!("{e}"));
        let Some(Tls::Enabled(tls)) = &opts.tls else { panic!("TLS must be on") };
        assert_eq!(tls.ca_file_path.as_deref(), Some(dir.join("ca.pem").as_path()));
        let c = opts.credential.as_ref().unwrap_or_else(|| panic!("credential"));
        assert_eq!(c.username.as_deref(), Some("app"));
        assert_eq!(c.password.as_deref(), Some("pw"));
        assert_eq!(c.source.as_deref(), Some("admin"));
        assert_eq!(c.mechanism, Some(AuthMechanism::ScramSha256));
        let off = client_options("mongodb://127.0.0.1:1/?tls=false", &auth).await;
        assert!(off.err().is_some_and(|e| e.to_string().contains("tls=false")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
