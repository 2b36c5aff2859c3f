//! Model registry and privacy ledger, read from MongoDB (written by the offline jobs).
//!
//! The documents have one Rust type each, shared with their writers: a registry document is
//! read as [`shopstream_registry::ModelSummary`] (the fields the status needs), a ledger as
//! [`shopstream_privacy::BudgetDoc`].

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::options::Tls;
use shopstream_clients::mongo::{MongoAuth, check_url, client_options};
use shopstream_clients::{Secret, redact_url};
use shopstream_privacy::BudgetDoc;
use shopstream_registry::ModelSummary;
use tokio::sync::Mutex;

use crate::crd::{AnalyticsPipeline, BackendSpec, BudgetStatus, ModelStatus, PrivacySpec};
use crate::secrets::SecretValues;

/// Collection of registered models.
pub const MODEL_REGISTRY: &str = shopstream_registry::COLLECTION;
/// Collection of privacy ledgers.
pub const PRIVACY_BUDGET: &str = shopstream_privacy::store::COLLECTION;
/// At most this many registry documents are read per reconcile.
const MAX_REGISTRY_DOCS: i64 = 5000;

/// Errors reading the registry. None carries a Secret's value or a URL's credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The server is unreachable or refused a request.
    #[error("MongoDB at {url}: {source}")]
    Mongo {
        /// URL, credentials redacted.
        url: String,
        /// Cause.
        source: mongodb::error::Error,
    },
    /// The connection settings are refused (URL options, TLS material, credentials in clear).
    #[error("MongoDB: {0}")]
    Refused(String),
}

/// How the operator reaches one pipeline's MongoDB: the URL, and the pipeline's TLS and
/// credentials (read from the Secrets the spec names). `Debug` shows no Secret value.
#[derive(Clone, Default)]
pub struct MongoConnection {
    /// Connection string (never with credentials: the spec checks refuse them).
    pub url: String,
    /// PEM bundle of the CA(s); switches TLS on.
    pub ca_pem: Option<Secret>,
    /// SCRAM username and password.
    pub credentials: Option<(String, Secret)>,
    /// Skip certificate verification (switches TLS on; warned about).
    pub insecure_skip_verify: bool,
    /// Identifies the settings without any Secret value: the client cache's key.
    key: String,
}

impl fmt::Debug for MongoConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConnection")
            .field("url", &redact_url(&self.url))
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl MongoConnection {
    /// `url` without TLS or credentials.
    pub fn plain(url: impl Into<String>) -> Self {
        let url = url.into();
        MongoConnection { key: redact_url(&url), url, ..Default::default() }
    }

    /// The connection to `p`'s MongoDB (the URL its workloads use) with the TLS and
    /// credentials its spec names, from `secrets`. `None` when the resource has no namespace.
    pub fn for_pipeline(
        p: &AnalyticsPipeline,
        secrets: &SecretValues,
    ) -> Result<Option<Self>, RegistryError> {
        let Some(url) = crate::render::mongo_url(p) else { return Ok(None) };
        let mut conn = MongoConnection::plain(url);
        let BackendSpec::External(e) = &p.spec.mongodb.backend else { return Ok(Some(conn)) };
        let refused = |m: String| RegistryError::Refused(m);
        if let Some(t) = &e.tls {
            if let Some(ca) = &t.ca_secret {
                conn.ca_pem = Some(secrets.text(&ca.name, &ca.key).map_err(refused)?);
                conn.key.push_str(&format!("|ca={}/{}", secrets.version_key(&ca.name), ca.key));
            }
            conn.insecure_skip_verify = t.insecure_skip_verify;
            conn.key.push_str(&format!("|insecure={}", t.insecure_skip_verify));
        }
        // A read-only user for the operator when the spec names one.
        let reader = p.spec.mongodb.operator_credentials_secret.as_ref();
        if let Some(c) = reader.or(e.credentials_secret.as_ref()) {
            conn.credentials = Some((
                secrets.credential(&c.name, "username").map_err(refused)?.expose().to_string(),
                secrets.credential(&c.name, "password").map_err(refused)?,
            ));
            conn.key.push_str(&format!("|creds={}", secrets.version_key(&c.name)));
        }
        Ok(Some(conn))
    }
}

/// How long an unused client is kept (a rotated Secret or a changed URL leaves the old one
/// unused).
const IDLE_CLIENT: Duration = Duration::from_secs(600);

/// What the registry says about a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryView {
    /// Latest version per model name, sorted by name.
    pub models: Vec<ModelStatus>,
    /// The budget (from the ledger, or the spec's total with nothing spent).
    pub budget: BudgetStatus,
}

/// Reads the model registry and the privacy ledger from MongoDB (see the module docs), with
/// one client per connection (URL + the names and versions of its Secrets, never their
/// values), reused across reconciles.
#[derive(Default)]
pub struct RegistryReader {
    clients: Mutex<HashMap<String, (mongodb::Client, Instant)>>,
    /// A private (0700) directory of this process for CA files, created on first use.
    ca_dir: std::sync::Mutex<Option<PathBuf>>,
}

/// Creates a fresh directory only this user can enter under the system's temporary directory
/// (`TMPDIR`): created with mode 0700 by this call, so no one else can have prepared it.
fn private_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    let mut last = None;
    for attempt in 0..16u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            base.join(format!("shopstream-operator-{}-{nanos:08x}-{attempt}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free directory name")))
}

/// Writes `pem` to `dir` as `ca-<hash of the content>.pem`, mode 0600 (written to a new
/// temporary file and renamed, so a reader never sees half a file); an existing file with the
/// same content is reused.
pub fn write_ca_file(dir: &Path, pem: &[u8]) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let hash = shopstream_contract::fnv1a(pem);
    let path = dir.join(format!("ca-{hash:016x}.pem"));
    if std::fs::read(&path).is_ok_and(|existing| existing == pem) {
        return Ok(path);
    }
    let tmp = dir.join(format!(".ca-{hash:016x}-{:?}.tmp", std::thread::current().id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(pem)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// The registry documents as [`ModelSummary`]s. A document this version cannot read (another
/// writer, an older shape) is skipped with a warning, not fatal for the whole status.
pub fn summaries(docs: Vec<Document>) -> Vec<ModelSummary> {
    docs.into_iter()
        .filter_map(|d| match mongodb::bson::from_document::<ModelSummary>(d) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "skipping a registry document of another shape");
                None
            }
        })
        .collect()
}

/// The latest version of each model.
pub fn latest_models(docs: &[ModelSummary]) -> Vec<ModelStatus> {
    let mut best: HashMap<&str, &ModelSummary> = HashMap::new();
    for d in docs {
        if best.get(d.name.as_str()).is_some_and(|m| m.version >= d.version) {
            continue;
        }
        best.insert(&d.name, d);
    }
    let mut out: Vec<ModelStatus> = best
        .into_values()
        .map(|d| ModelStatus {
            name: d.name.clone(),
            version: d.version,
            roc_auc: Some(d.metrics.roc_auc),
            epsilon: d.privacy.epsilon,
            trained_at: d
                .trained_at
                .try_to_rfc3339_string()
                .unwrap_or_else(|_| d.trained_at.timestamp_millis().to_string()),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The budget from the ledger document, or from the spec when no ledger exists yet.
pub fn budget(ledger: Option<&BudgetDoc>, spec: &PrivacySpec) -> BudgetStatus {
    let (total, spent, delta, spent_delta) = match ledger {
        Some(l) => (l.total_epsilon, l.spent_epsilon, l.delta, l.spent_delta),
        None => (spec.total_epsilon, 0.0, spec.delta, 0.0),
    };
    BudgetStatus {
        total_epsilon: total,
        spent_epsilon: spent,
        remaining_epsilon: (total - spent).max(0.0),
        delta,
        spent_delta,
        remaining_delta: (delta - spent_delta).max(0.0),
    }
}

/// `x` in scientific notation with at most four significant digits (`3e-4`, `1.235e-5`).
fn sci(x: f64) -> String {
    let s = format!("{x:.3e}");
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => {
            format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => s,
    }
}

/// Relative slack when comparing what is left with what a run costs (as the ledger does).
const TOLERANCE: f64 = 1e-9;

/// Whether another training run fits: `Some(message)` naming what ran out (epsilon, delta or
/// both), `None` when it fits.
pub fn exhausted(budget: &BudgetStatus, spec: &PrivacySpec) -> Option<String> {
    let short = |left: f64, need: f64, total: f64| left < need - TOLERANCE * total.max(need);
    let mut out = Vec::new();
    if short(budget.remaining_epsilon, spec.epsilon_per_run, budget.total_epsilon) {
        out.push(format!(
            "remaining epsilon {:.4} (total {:.4}, spent {:.4}) is less than epsilonPerRun {:.4}",
            budget.remaining_epsilon,
            budget.total_epsilon,
            budget.spent_epsilon,
            spec.epsilon_per_run
        ));
    }
    let delta_per_run = spec.delta_per_run();
    if short(budget.remaining_delta, delta_per_run, budget.delta) {
        out.push(format!(
            "remaining delta {} (total {}, spent {}) is less than deltaPerRun {}",
            sci(budget.remaining_delta),
            sci(budget.delta),
            sci(budget.spent_delta),
            sci(delta_per_run)
        ));
    }
    (!out.is_empty()).then(|| format!("{}; the training CronJob is suspended", out.join(", and ")))
}

impl RegistryReader {
    /// The CA file for `pem` in this process's private directory.
    fn ca_file(&self, pem: &Secret) -> Result<PathBuf, RegistryError> {
        let refused = |e: std::io::Error| {
            RegistryError::Refused(format!(
                "cannot write the CA bundle to a private temporary directory under {} ({e}); \
                 give the operator a writable TMPDIR (an emptyDir)",
                std::env::temp_dir().display()
            ))
        };
        let mut guard = self
            .ca_dir
            .lock()
            .map_err(|_| RegistryError::Refused("CA directory lock poisoned".into()))?;
        let dir = match guard.as_ref() {
            Some(d) => d.clone(),
            None => {
                let d = private_dir().map_err(refused)?;
                *guard = Some(d.clone());
                d
            }
        };
        write_ca_file(&dir, pem.expose().as_bytes()).map_err(refused)
    }

    async fn client(&self, conn: &MongoConnection) -> Result<mongodb::Client, RegistryError> {
        let shown = redact_url(&conn.url);
        // Refuse what could make the driver read ambient credentials or files before it
        // parses anything (client_options checks again).
        check_url(&conn.url).map_err(|m| RegistryError::Refused(format!("URL {shown}: {m}")))?;
        let mut clients = self.clients.lock().await;
        let now = Instant::now();
        if let Some((c, used)) = clients.get_mut(&conn.key) {
            *used = now;
            return Ok(c.clone());
        }
        clients.retain(|_, (_, used)| now.duration_since(*used) < IDLE_CLIENT);
        let auth = MongoAuth {
            ca_file: conn.ca_pem.as_ref().map(|pem| self.ca_file(pem)).transpose()?,
            credentials: conn.credentials.clone(),
            insecure_skip_verify: conn.insecure_skip_verify,
        };
        let mut opts = client_options(&conn.url, &auth)
            .await
            .map_err(|e| RegistryError::Refused(e.to_string()))?;
        if opts.credential.is_some() && !matches!(opts.tls, Some(Tls::Enabled(_))) {
            return Err(RegistryError::Refused(format!(
                "URL {shown}: credentials without TLS would cross the network in clear: refused"
            )));
        }
        opts.server_selection_timeout = Some(Duration::from_secs(3));
        opts.connect_timeout = Some(Duration::from_secs(3));
        opts.app_name = Some("shopstream-operator".into());
        let client = mongodb::Client::with_options(opts)
            .map_err(|source| RegistryError::Mongo { url: shown.clone(), source })?;
        clients.insert(conn.key.clone(), (client.clone(), now));
        Ok(client)
    }

    /// Reads the registry and the ledger of `pipeline`.
    pub async fn read(
        &self,
        conn: &MongoConnection,
        database: &str,
        pipeline: &str,
        privacy: &PrivacySpec,
    ) -> Result<RegistryView, RegistryError> {
        let url = redact_url(&conn.url);
        let err = |source| RegistryError::Mongo { url: url.clone(), source };
        let db = self.client(conn).await?.database(database);
        let docs: Vec<Document> = db
            .collection::<Document>(MODEL_REGISTRY)
            .find(doc! {})
            .projection(ModelSummary::projection())
            .sort(doc! { "name": 1, "version": -1 })
            .limit(MAX_REGISTRY_DOCS)
            .await
            .map_err(err)?
            .try_collect()
            .await
            .map_err(err)?;
        let models = summaries(docs);
        let ledger = db
            .collection::<BudgetDoc>(PRIVACY_BUDGET)
            .find_one(doc! { "_id": pipeline })
            .await
            .map_err(err)?;
        Ok(RegistryView {
            models: latest_models(&models),
            budget: budget(ledger.as_ref(), privacy),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_files_are_private_and_named_by_their_content() {
        use std::os::unix::fs::PermissionsExt;
        let dir = private_dir().unwrap_or_else(|e| panic!("{e}"));
        let mode = |p: &Path| {
            std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or_default()
        };
        assert_eq!(mode(&dir), 0o700);
        let a = write_ca_file(&dir, b"PEM A").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&a), 0o600);
        assert_eq!(std::fs::read(&a).unwrap_or_default(), b"PEM A");
        assert_eq!(write_ca_file(&dir, b"PEM A").ok(), Some(a.clone()), "same content, same file");
        let b = write_ca_file(&dir, b"PEM B").unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(a, b);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_url_the_driver_must_not_follow_is_refused_before_connecting() {
        let reader = RegistryReader::default();
        let oidc = MongoConnection::plain(
            "mongodb://h:27017/?authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:k8s",
        );
        let err = reader.read(&oidc, "db", "ns/p", &privacy()).await.err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains("ServiceAccount")), "{err:?}");
        let mut creds = MongoConnection::plain("mongodb://h:27017/");
        creds.credentials = Some(("u".into(), Secret::new("pw-value")));
        let err = reader.read(&creds, "db", "ns/p", &privacy()).await.err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains("in clear")), "{err:?}");
        assert!(!format!("{creds:?} {err:?}").contains("pw-value"));
    }

    #[test]
    fn the_operator_reads_with_its_own_user_when_the_spec_names_one() {
        let text = include_str!("../../crds/examples/pipeline.yaml");
        let mut v: serde_json::Value =
            serde_norway::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        v["metadata"]["namespace"] = "ns".into();
        v["spec"]["mongodb"] = serde_json::json!({
            "external": { "url": "mongodb://m:27017", "credentialsSecret": { "name": "writer" },
                          "tls": { "caSecret": { "name": "ca" } } },
        });
        let mut secrets = crate::secrets::SecretValues::default();
        let creds = |u: &str, p: &str| {
            std::collections::BTreeMap::from([
                ("username".to_string(), u.as_bytes().to_vec()),
                ("password".to_string(), p.as_bytes().to_vec()),
            ])
        };
        secrets.insert("writer", "1", creds("writer", "w-pw"));
        secrets.insert("reader", "7", creds("reader", "r-pw"));
        secrets.insert(
            "ca",
            "3",
            std::collections::BTreeMap::from([("ca.crt".to_string(), b"PEM".to_vec())]),
        );
        let conn = |v: &serde_json::Value| {
            let p: AnalyticsPipeline =
                serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}"));
            MongoConnection::for_pipeline(&p, &secrets)
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("a connection"))
        };
        let user = |c: &MongoConnection| c.credentials.as_ref().map(|(u, _)| u.clone());
        assert_eq!(user(&conn(&v)).as_deref(), Some("writer"));
        v["spec"]["mongodb"]["operatorCredentialsSecret"] = serde_json::json!({ "name": "reader" });
        let reader = conn(&v);
        assert_eq!(user(&reader).as_deref(), Some("reader"));
        assert!(reader.key.contains("creds=reader@7"), "{}", reader.key);
        assert!(!reader.key.contains("r-pw"));
    }

    fn privacy() -> PrivacySpec {
        PrivacySpec { total_epsilon: 1.0, delta: 1e-5, epsilon_per_run: 1.0, delta_per_run: None }
    }
}
