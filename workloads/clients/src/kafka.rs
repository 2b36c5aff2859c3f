//! Kafka: TLS and SASL settings of every Kafka client (workloads and the operator's admin
//! client). The connection settings themselves (bootstrap servers, batching) live in
//! `shopstream-kafka`, whose `KafkaArgs` flattens [`KafkaSecurityArgs`].

use std::path::PathBuf;

use rdkafka::ClientConfig;
use shopstream_contract as contract;

use crate::{ClientError, Secret, read_credentials};

const BACKEND: &str = "Kafka";

/// `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SecurityProtocol {
    /// No TLS, no authentication (a private network only).
    #[default]
    Plaintext,
    /// TLS, no SASL (optionally a client certificate).
    Ssl,
    /// SASL without TLS: refused with credentials, which would cross the network in clear.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// librdkafka's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    /// Whether the connection is encrypted.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether the client authenticates with SASL.
    pub fn sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

/// `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SaslMechanism {
    /// SCRAM-SHA-512 (the default: the password never crosses the wire).
    #[default]
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
    /// SCRAM-SHA-256.
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    /// PLAIN: the password is sent to the broker (over TLS only).
    #[value(name = "PLAIN")]
    Plain,
}

impl SaslMechanism {
    /// librdkafka's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::Plain => "PLAIN",
        }
    }
}

/// Kafka security settings on the command line / environment (flattened into `KafkaArgs`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KafkaSecurityArgs {
    /// Security protocol.
    #[arg(long, env = contract::env::KAFKA_SECURITY_PROTOCOL, value_enum, default_value_t)]
    pub kafka_security_protocol: SecurityProtocol,
    /// SASL mechanism (with a `sasl-*` protocol).
    #[arg(long, env = contract::env::KAFKA_SASL_MECHANISM, value_enum, default_value_t)]
    pub kafka_sasl_mechanism: SaslMechanism,
    /// File holding the SASL username.
    #[arg(long, env = contract::env::KAFKA_USERNAME_FILE)]
    pub kafka_username_file: Option<PathBuf>,
    /// File holding the SASL password.
    #[arg(long, env = contract::env::KAFKA_PASSWORD_FILE)]
    pub kafka_password_file: Option<PathBuf>,
    /// PEM file of the CA(s) that sign the brokers' certificates (the system's CAs without).
    #[arg(long, env = contract::env::KAFKA_CA_FILE)]
    pub kafka_ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (mutual TLS).
    #[arg(long, env = contract::env::KAFKA_CERT_FILE)]
    pub kafka_cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key (mutual TLS).
    #[arg(long, env = contract::env::KAFKA_KEY_FILE)]
    pub kafka_key_file: Option<PathBuf>,
    /// Do not verify the brokers' certificates (never in production).
    #[arg(long, env = contract::env::KAFKA_INSECURE_SKIP_VERIFY)]
    pub kafka_insecure_skip_verify: bool,
}

/// PEM material: a file the client library reads, or the PEM text itself (what the operator
/// has, from a Secret it read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    /// A file.
    File(PathBuf),
    /// The PEM text.
    Inline(Secret),
}

/// A client certificate and its key (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCert {
    /// PEM files.
    Files {
        /// Certificate.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// PEM text.
    Inline {
        /// Certificate.
        cert: Secret,
        /// Private key.
        key: Secret,
    },
}

/// Resolved Kafka security: what [`KafkaSecurity::apply`] sets on a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaSecurity {
    /// Protocol.
    pub protocol: SecurityProtocol,
    /// SASL mechanism (used with a SASL protocol).
    pub mechanism: SaslMechanism,
    /// SASL username and password.
    pub credentials: Option<(String, Secret)>,
    /// CA bundle.
    pub ca: Option<Pem>,
    /// Client certificate and key.
    pub client_cert: Option<ClientCert>,
    /// Skip certificate verification.
    pub insecure_skip_verify: bool,
}

impl KafkaSecurityArgs {
    /// Reads the credential files and checks that the settings fit together.
    pub fn resolve(&self) -> Result<KafkaSecurity, ClientError> {
        let credentials = read_credentials(
            BACKEND,
            ("--kafka-username-file", self.kafka_username_file.as_deref()),
            ("--kafka-password-file", self.kafka_password_file.as_deref()),
        )?;
        let client_cert = match (&self.kafka_cert_file, &self.kafka_key_file) {
            (Some(c), Some(k)) => Some(ClientCert::Files { cert: c.clone(), key: k.clone() }),
            (None, None) => None,
            _ => {
                return Err(ClientError::Invalid(
                    "Kafka: --kafka-cert-file and --kafka-key-file go together".into(),
                ));
            }
        };
        for (flag, path) in [
            ("--kafka-ca-file", &self.kafka_ca_file),
            ("--kafka-cert-file", &self.kafka_cert_file),
            ("--kafka-key-file", &self.kafka_key_file),
        ] {
            if let Some(p) = path {
                crate::read_file(BACKEND, flag, p)?;
            }
        }
        let security = KafkaSecurity {
            protocol: self.kafka_security_protocol,
            mechanism: self.kafka_sasl_mechanism,
            credentials,
            ca: self.kafka_ca_file.clone().map(Pem::File),
            client_cert,
            insecure_skip_verify: self.kafka_insecure_skip_verify,
        };
        security.validate()?;
        Ok(security)
    }
}

impl KafkaSecurity {
    /// Checks that the settings fit together; the message names the flags.
    pub fn validate(&self) -> Result<(), ClientError> {
        let p = self.protocol;
        let bad = |m: &str| Err(ClientError::Invalid(format!("Kafka: {m}")));
        if p.sasl() && self.credentials.is_none() {
            return bad(&format!(
                "--kafka-security-protocol {} needs --kafka-username-file and --kafka-password-file",
                p.as_str()
            ));
        }
        if !p.sasl() && self.credentials.is_some() {
            return bad("SASL credentials need --kafka-security-protocol sasl-ssl");
        }
        if p == SecurityProtocol::SaslPlaintext {
            return bad(
                "--kafka-security-protocol sasl-plaintext would send the credentials and every \
                 record in clear; use sasl-ssl",
            );
        }
        if !p.tls()
            && (self.ca.is_some() || self.client_cert.is_some() || self.insecure_skip_verify)
        {
            return bad("a CA, client certificate or --kafka-insecure-skip-verify needs \
                 --kafka-security-protocol ssl or sasl-ssl");
        }
        Ok(())
    }

    /// Sets the security properties on a librdkafka configuration.
    pub fn apply(&self, cfg: &mut ClientConfig) {
        cfg.set("security.protocol", self.protocol.as_str());
        if self.protocol.sasl() {
            cfg.set("sasl.mechanism", self.mechanism.as_str());
            if let Some((user, password)) = &self.credentials {
                cfg.set("sasl.username", user).set("sasl.password", password.expose());
            }
        }
        if !self.protocol.tls() {
            return;
        }
        // Check the broker's name against its certificate (librdkafka's default since 2.0,
        // set here so an older library cannot weaken it).
        cfg.set("ssl.endpoint.identification.algorithm", "https");
        match &self.ca {
            Some(Pem::File(p)) => {
                cfg.set("ssl.ca.location", p.display().to_string());
            }
            Some(Pem::Inline(pem)) => {
                cfg.set("ssl.ca.pem", pem.expose());
            }
            None => {}
        }
        match &self.client_cert {
            Some(ClientCert::Files { cert, key }) => {
                cfg.set("ssl.certificate.location", cert.display().to_string())
                    .set("ssl.key.location", key.display().to_string());
            }
            Some(ClientCert::Inline { cert, key }) => {
                cfg.set("ssl.certificate.pem", cert.expose()).set("ssl.key.pem", key.expose());
            }
            None => {}
        }
        if self.insecure_skip_verify {
            crate::warn_insecure(BACKEND, "--kafka-insecure-skip-verify");
            cfg.set("enable.ssl.certificate.verification", "false")
                .set("ssl.endpoint.identification.algorithm", "none");
        }
    }

    /// Whether a librdkafka property is one of those [`KafkaSecurity`] owns (a free-form option
    /// may not set them: it would bypass the checks above).
    pub fn owns_property(key: &str) -> bool {
        let k = key.trim().to_ascii_lowercase();
        k.starts_with("security.")
            || k.starts_with("ssl.")
            || k.starts_with("ssl_")
            || k.starts_with("sasl.")
            || k == "enable.ssl.certificate.verification"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(s: &KafkaSecurity) -> Vec<(String, String)> {
        let mut cfg = ClientConfig::new();
        s.apply(&mut cfg);
        let mut v: Vec<(String, String)> =
            cfg.config_map().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        v.sort();
        v
    }

    #[test]
    fn sasl_ssl_with_scram_sets_exactly_the_librdkafka_properties() {
        let s = KafkaSecurity {
            protocol: SecurityProtocol::SaslSsl,
            mechanism: SaslMechanism::ScramSha256,
            credentials: Some(("app".into(), Secret::new("pw"))),
            ca: Some(Pem::File("/etc/ca.pem".into())),
            client_cert: None,
            insecure_skip_verify: false,
        };
        s.validate().unwrap_or_else(|e| panic!("{e}"));
        let want: Vec<(String, String)> = [
            ("sasl.mechanism", "SCRAM-SHA-256"),
            // rdkafka never prints a password, not even in its own configuration map.
            ("sasl.password", "[sanitized for safety]"),
            ("sasl.username", "app"),
            ("security.protocol", "sasl_ssl"),
            ("ssl.ca.location", "/etc/ca.pem"),
            ("ssl.endpoint.identification.algorithm", "https"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(props(&s), want);
        let mut cfg = ClientConfig::new();
        s.apply(&mut cfg);
        assert_eq!(cfg.get("sasl.password"), Some("pw"));
        // The operator's form: PEM text instead of files.
        let inline = KafkaSecurity {
            ca: Some(Pem::Inline(Secret::new("-----BEGIN CERTIFICATE-----"))),
            client_cert: Some(ClientCert::Inline { cert: Secret::new("C"), key: Secret::new("K") }),
            ..s
        };
        let p = props(&inline);
        assert!(p.contains(&("ssl.ca.pem".into(), "-----BEGIN CERTIFICATE-----".into())));
        assert!(p.contains(&("ssl.certificate.pem".into(), "C".into())));
        assert!(p.contains(&("ssl.key.pem".into(), "K".into())));
        assert!(!format!("{inline:?}").contains("pw"), "Debug must not print the password");
    }

    #[test]
    fn settings_that_would_leak_or_do_nothing_are_refused() {
        let creds = Some(("u".to_string(), Secret::new("p")));
        let err = |s: KafkaSecurity| s.validate().err().map(|e| e.to_string()).unwrap_or_default();
        let plain_sasl = KafkaSecurity {
            protocol: SecurityProtocol::SaslPlaintext,
            credentials: creds.clone(),
            ..Default::default()
        };
        assert!(err(plain_sasl).contains("in clear"));
        let creds_without_sasl = KafkaSecurity {
            protocol: SecurityProtocol::Ssl,
            credentials: creds,
            ..Default::default()
        };
        assert!(err(creds_without_sasl).contains("need --kafka-security-protocol sasl-ssl"));
        let sasl_without_creds =
            KafkaSecurity { protocol: SecurityProtocol::SaslSsl, ..Default::default() };
        assert!(err(sasl_without_creds).contains("needs --kafka-username-file"));
        let ca_on_plaintext =
            KafkaSecurity { ca: Some(Pem::File("/ca".into())), ..Default::default() };
        assert!(err(ca_on_plaintext).contains("needs --kafka-security-protocol ssl"));
        assert!(KafkaSecurity::default().validate().is_ok());
        assert_eq!(
            props(&KafkaSecurity::default()),
            vec![("security.protocol".into(), "plaintext".into())]
        );
    }

    #[test]
    fn insecure_skip_verify_turns_off_both_checks() {
        let s = KafkaSecurity {
            protocol: SecurityProtocol::Ssl,
            insecure_skip_verify: true,
            ..Default::default()
        };
        let p = props(&s);
        assert!(p.contains(&("enable.ssl.certificate.verification".into(), "false".into())));
        assert!(p.contains(&("ssl.endpoint.identification.algorithm".into(), "none".into())));
    }

    #[test]
    fn free_form_options_cannot_touch_security() {
        for k in
            ["security.protocol", "SSL.CA.LOCATION", "sasl.jaas.config", "sasl.oauthbearer.method"]
        {
            assert!(KafkaSecurity::owns_property(k), "{k}");
        }
        assert!(!KafkaSecurity::owns_property("linger.ms"));
    }
}
