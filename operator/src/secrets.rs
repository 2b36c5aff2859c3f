//! The values of the Secrets a pipeline names, as the operator read them for its own
//! connections (the Kafka admin client, the registry reader).
//!
//! Only Secrets the spec names ([`crate::validate::referenced_secrets`]) are read, only in the
//! pipeline's namespace. Values never leave this process except to the backend they are for:
//! they are not rendered into children, logged, put in a status or used as a cache key (caches
//! are keyed by Secret names and `resourceVersion`s, see [`SecretValues::version_key`]).

use std::collections::BTreeMap;
use std::fmt;

use shopstream_clients::Secret;

/// One Secret: its `resourceVersion` and its data.
#[derive(Clone, Default)]
struct Fetched {
    resource_version: String,
    data: BTreeMap<String, Vec<u8>>,
}

/// The Secrets of one pipeline, by name. `Debug` prints names and key names only.
#[derive(Clone, Default)]
pub struct SecretValues {
    secrets: BTreeMap<String, Fetched>,
}

impl fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.secrets.iter().map(|(name, s)| {
                (name, (s.resource_version.as_str(), s.data.keys().collect::<Vec<_>>()))
            }))
            .finish()
    }
}

impl SecretValues {
    /// Records the Secret `name` as read.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        resource_version: impl Into<String>,
        data: BTreeMap<String, Vec<u8>>,
    ) {
        self.secrets
            .insert(name.into(), Fetched { resource_version: resource_version.into(), data });
    }

    /// Whether the Secret `name` was read.
    pub fn contains(&self, name: &str) -> bool {
        self.secrets.contains_key(name)
    }

    /// The raw bytes of `key` in `name`.
    pub fn bytes(&self, name: &str, key: &str) -> Result<&[u8], String> {
        let s = self
            .secrets
            .get(name)
            .ok_or_else(|| format!("Secret {name:?} is missing or was not read"))?;
        s.data
            .get(key)
            .map(Vec::as_slice)
            .ok_or_else(|| format!("Secret {name:?} has no key {key:?}"))
    }

    /// `key` in `name` as UTF-8 text, whole (PEM material).
    pub fn text(&self, name: &str, key: &str) -> Result<Secret, String> {
        let b = self.bytes(name, key)?;
        let s = std::str::from_utf8(b)
            .map_err(|_| format!("key {key:?} of Secret {name:?} is not UTF-8 text"))?;
        Ok(Secret::new(s))
    }

    /// `key` in `name` as a credential: UTF-8, without the trailing line break `echo` and
    /// editors add (as the workloads read their files), not empty.
    pub fn credential(&self, name: &str, key: &str) -> Result<Secret, String> {
        let t = self.text(name, key)?;
        let v = t.expose().trim_end_matches(['\n', '\r']);
        if v.is_empty() {
            return Err(format!("key {key:?} of Secret {name:?} is empty"));
        }
        Ok(Secret::new(v))
    }

    /// The `resourceVersion` of every Secret read, by name.
    pub fn versions(&self) -> std::collections::BTreeMap<String, String> {
        self.secrets.iter().map(|(n, s)| (n.clone(), s.resource_version.clone())).collect()
    }

    /// `name@resourceVersion` (or `name@missing`): identifies the content of a Secret without
    /// containing it (what caches of clients built from it are keyed by).
    pub fn version_key(&self, name: &str) -> String {
        match self.secrets.get(name) {
            Some(s) => format!("{name}@{}", s.resource_version),
            None => format!("{name}@missing"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_but_never_printed() {
        let mut v = SecretValues::default();
        v.insert(
            "creds",
            "42",
            BTreeMap::from([
                ("username".to_string(), b"app\n".to_vec()),
                ("password".to_string(), b"hunter2".to_vec()),
                ("empty".to_string(), b"\n".to_vec()),
            ]),
        );
        assert_eq!(
            v.credential("creds", "username").map(|s| s.expose().to_string()),
            Ok("app".into())
        );
        assert!(v.credential("creds", "empty").is_err());
        assert!(v.bytes("creds", "nope").is_err_and(|e| e.contains("no key")));
        assert!(v.bytes("other", "x").is_err_and(|e| e.contains("missing")));
        assert_eq!(v.version_key("creds"), "creds@42");
        let dbg = format!("{v:?}");
        assert!(dbg.contains("password") && !dbg.contains("hunter2"), "{dbg}");
    }
}
