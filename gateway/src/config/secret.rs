//! Secrets (MQTT password, status token) from a file or an environment variable, and the
//! check that a secret file is not readable by others.

use super::model::Secret;
use super::reader::{Reader, SecretRead, Tbl};

impl Reader<'_> {
    /// A secret from `file_key` (a file, its trailing newline removed) or `env_key` (an
    /// environment variable). An empty secret is an error: it is never what was meant, and an
    /// empty status token would let anyone in.
    pub(super) fn secret(&mut self, t: &mut Tbl, file_key: &str, env_key: &str) -> Option<SecretRead> {
        let file = self.path(t, file_key, None);
        let env = self.string(t, env_key, None);
        let (secret, key, span, origin, file) = match (file, env) {
            (Some(_), Some((_, span))) => {
                self.err(span, &Self::key(t, env_key), format!("both {file_key} and {env_key} are set"), Some("keep one".into()));
                return None;
            }
            (Some((path, span)), None) => match std::fs::read_to_string(&path) {
                Ok(s) => {
                    (s.trim_end_matches(['\r', '\n']).to_string(), Self::key(t, file_key), span, path.display().to_string(), Some(path))
                }
                Err(e) => {
                    self.err(
                        span,
                        &Self::key(t, file_key),
                        format!("cannot read {}: {e}", path.display()),
                        Some("check the path and that the medgw user may read it".into()),
                    );
                    return None;
                }
            },
            (None, Some((var, span))) => match std::env::var(&var) {
                Ok(s) => (s, Self::key(t, env_key), span, format!("environment variable {var}"), None),
                Err(_) => {
                    self.err(
                        span,
                        &Self::key(t, env_key),
                        format!("environment variable {var} is not set"),
                        Some(format!("set {var} in the service's environment")),
                    );
                    return None;
                }
            },
            (None, None) => return None,
        };
        if secret.trim().is_empty() {
            self.err(span, &key, format!("{origin} is empty"), Some("an empty secret is never accepted".into()));
            return None;
        }
        Some(SecretRead { secret: Secret(secret), key, span, file })
    }

    /// A secret file that the group or others may read: an error when what it protects is
    /// reachable beyond loopback (`exposed`), a warning otherwise (a test bench or a demo).
    pub(super) fn secret_permissions(&mut self, s: &SecretRead, exposed: bool, protects: &str) {
        use std::os::unix::fs::PermissionsExt;
        let Some(path) = &s.file else { return };
        let Ok(meta) = std::fs::metadata(path) else { return };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o044 == 0 {
            return;
        }
        let message = format!(
            "{} is readable by {} (mode {mode:03o}), and it protects {protects}",
            path.display(),
            if mode & 0o004 != 0 { "every user" } else { "its group" }
        );
        let hint = Some(format!("chmod 600 {}, owned by the user medgw runs as", path.display()));
        if exposed {
            self.err(s.span.clone(), &s.key, message, hint);
        } else {
            self.warn(s.span.clone(), &s.key, message, hint);
        }
    }
}
