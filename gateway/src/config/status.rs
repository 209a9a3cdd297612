//! The `[status]` table.

use super::model::{StatusConfig, MIN_TOKEN_CHARS};
use super::reader::{Reader, Tbl};

impl Reader<'_> {
    pub(super) fn status(&mut self, top: &mut Tbl) -> StatusConfig {
        let Some(mut t) = self.table(top, "status") else { return StatusConfig::default() };
        let enabled = self.boolean(&mut t, "enabled", true);
        let mut bind_span = t.span.clone();
        let bind = match self.string(&mut t, "bind", None) {
            None => StatusConfig::default().bind,
            Some((s, span)) => match s.parse::<std::net::SocketAddr>() {
                Ok(a) => {
                    bind_span = span;
                    a
                }
                Err(_) => {
                    self.err(
                        span,
                        "status.bind",
                        format!("{s:?} is not an address:port"),
                        Some("e.g. \"127.0.0.1:8080\", or \"0.0.0.0:8080\" with a token".into()),
                    );
                    StatusConfig::default().bind
                }
            },
        };
        let token_given = t.t.iter().any(|(k, _)| matches!(k.get_ref().as_ref(), "token_file" | "token_env"));
        let token = self.secret(&mut t, "token_file", "token_env");
        let exposed = enabled && !bind.ip().is_loopback();
        if let Some(s) = &token {
            let chars = s.secret.expose().chars().count();
            if chars < MIN_TOKEN_CHARS {
                self.err(
                    s.span.clone(),
                    &s.key,
                    format!("the token has {chars} characters; at least {MIN_TOKEN_CHARS} are required"),
                    Some("make one with `openssl rand -hex 16` (32 characters)".into()),
                );
            }
            self.secret_permissions(s, exposed, "the status page");
        }
        let token = token.map(|s| s.secret);
        // A token that was given but refused above is reported there, not again here.
        if exposed && !token_given {
            self.err(
                bind_span,
                "status.bind",
                format!("{bind} is reachable from the network but no token is set"),
                Some("set token_file or token_env (the page shows clinical values), or bind to 127.0.0.1".into()),
            );
        }
        let defaults = StatusConfig::default();
        let max_connections = self.int(&mut t, "max_connections", 1..=1024, defaults.max_connections as i64) as usize;
        let header_timeout_s = self.int(&mut t, "header_timeout_s", 1..=300, defaults.header_timeout_s as i64) as u64;
        self.finish(t, &["enabled", "bind", "token_file", "token_env", "max_connections", "header_timeout_s"]);
        StatusConfig { enabled, bind, token, max_connections, header_timeout_s }
    }
}
