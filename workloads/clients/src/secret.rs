//! Secret values read from files.

use std::fmt;
use std::path::Path;

use crate::ClientError;

/// A secret value (password, API key, key material). `Debug` and `Display` print
/// `<redacted>`; the value is reached only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one call that sends it to its backend.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Reads a file a setting names (CA bundles, certificates); the error names the backend, the
/// flag and the file.
pub fn read_file(
    backend: &'static str,
    flag: &'static str,
    path: &Path,
) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::File {
        backend,
        flag,
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a secret from a file (a mounted Secret key), without the trailing line break editors
/// and `echo` add. An empty file is an error: an empty password is a misconfiguration.
pub fn read_secret(
    backend: &'static str,
    flag: &'static str,
    path: &Path,
) -> Result<Secret, ClientError> {
    let bytes = read_file(backend, flag, path)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        ClientError::Invalid(format!("{backend}: {flag} {} is not UTF-8 text", path.display()))
    })?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(ClientError::Invalid(format!("{backend}: {flag} {} is empty", path.display())));
    }
    Ok(Secret(value.to_string()))
}

/// A username and a password from two files (flag, path) that go together: both or neither.
pub fn read_credentials(
    backend: &'static str,
    (user_flag, user_path): (&'static str, Option<&Path>),
    (password_flag, password_path): (&'static str, Option<&Path>),
) -> Result<Option<(String, Secret)>, ClientError> {
    let user = user_path.map(|p| read_secret(backend, user_flag, p)).transpose()?;
    let password = password_path.map(|p| read_secret(backend, password_flag, p)).transpose()?;
    match (user, password) {
        (Some(u), Some(p)) => Ok(Some((u.0, p))),
        (None, None) => Ok(None),
        _ => Err(ClientError::Invalid(format!(
            "{backend}: {user_flag} and {password_flag} go together"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_and_files_lose_only_the_line_break() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        let dir = std::env::temp_dir().join(format!("clients-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let f = dir.join("password");
        std::fs::write(&f, " pass word \n").unwrap_or_else(|e| panic!("{e}"));
        let read =
            read_secret("Redis", "--redis-password-file", &f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.expose(), " pass word ");
        std::fs::write(&f, "\n").unwrap_or_else(|e| panic!("{e}"));
        let empty = read_secret("Redis", "--redis-password-file", &f).err().map(|e| e.to_string());
        assert!(empty.is_some_and(|m| m.contains("Redis") && m.contains("is empty")));
        let missing = read_secret("Redis", "--redis-password-file", &dir.join("nope")).err();
        let m = missing.map(|e| e.to_string()).unwrap_or_default();
        assert!(m.starts_with("Redis: cannot read --redis-password-file"), "{m}");
        std::fs::write(&f, "pw\n").unwrap_or_else(|e| panic!("{e}"));
        let pair = |u: Option<&Path>, p: Option<&Path>| {
            read_credentials("MongoDB", ("--mongo-username-file", u), ("--mongo-password-file", p))
        };
        let both = pair(Some(&f), Some(&f)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            both.map(|(u, p)| (u, p.expose().to_string())),
            Some(("pw".into(), "pw".into()))
        );
        assert!(pair(None, None).is_ok_and(|c| c.is_none()));
        let half = pair(Some(&f), None).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(half, "MongoDB: --mongo-username-file and --mongo-password-file go together");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
