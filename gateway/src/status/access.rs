//! Who may read the status surface: the token (bearer, HTTP basic password, or the session
//! cookie a login form sets for kiosk displays) and, on the token-less loopback default, only
//! requests addressed to a loopback name (DNS rebinding).
//!
//! The session cookie holds an HMAC of a fixed label keyed by the token, never the token: it
//! stays valid across restarts (a kiosk on the ward keeps showing the page after an update)
//! and is revoked by changing the token.

use std::net::IpAddr;

use axum::http::{header, HeaderMap, HeaderValue};

/// The name of the session cookie.
pub const COOKIE: &str = "medgw_session";
/// How long a kiosk stays signed in (a year; changing the token signs every display out).
pub const COOKIE_MAX_AGE_S: u64 = 365 * 24 * 3600;

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session cookie's value for `token`: hex of HMAC-SHA256(token, label).
pub fn session_value(token: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    hex::encode(ring::hmac::sign(&key, b"medgw status session v1").as_ref())
}

/// `Set-Cookie` for a signed-in browser; `Secure` when a TLS proxy in front says so.
pub fn session_cookie(value: &str, https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_MAX_AGE_S}{secure}")
}

/// Whether the request came through a TLS-terminating proxy (`X-Forwarded-Proto: https`).
pub fn via_https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// Whether the request carries the token: `Authorization: Bearer` or `Basic` (any user name,
/// the token as password; the scheme in any case, RFC 9110), or the session cookie.
pub fn authorized(headers: &HeaderMap, token: &str, session: &str) -> bool {
    // An empty token admits nobody: configuration checking refuses one, and this is the second
    // line (`curl -u anyone:` sends an empty password, which would match it).
    if token.is_empty() {
        return false;
    }
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("bearer") && same(credentials.as_bytes(), token.as_bytes()) {
            return true;
        }
        if scheme.eq_ignore_ascii_case("basic") {
            use base64::Engine;
            if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) {
                if let Some(pos) = decoded.iter().position(|b| *b == b':') {
                    if same(&decoded[pos + 1..], token.as_bytes()) {
                        return true;
                    }
                }
            }
        }
    }
    cookie(headers, COOKIE).is_some_and(|v| same(v.as_bytes(), session.as_bytes()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v: &HeaderValue| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether a `Host` header names this loopback server: `localhost`, a 127.0.0.0/8 address or
/// `[::1]`, with no port or the bound one. A page of another site that rebinds its DNS name to
/// 127.0.0.1 still sends its own name, and is refused.
pub fn loopback_host(host: &str, port: u16) -> bool {
    let host = host.trim();
    let (name, host_port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((name, "")) => (name, None),
            Some((name, p)) => match p.strip_prefix(':') {
                Some(p) => (name, Some(p)),
                None => return false,
            },
            None => return false,
        }
    } else {
        match host.split_once(':') {
            Some((name, p)) => (name, Some(p)),
            None => (host, None),
        }
    };
    let port_ok = match host_port {
        None => true,
        Some(p) => p.parse::<u16>().is_ok_and(|p| p == port),
    };
    let name_ok = name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    port_ok && name_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn tokens_by_bearer_or_basic_password_in_any_case() {
        let s = session_value("s3cret");
        assert!(!authorized(&HeaderMap::new(), "s3cret", &s));
        let auth = |v: &str| authorized(&with(header::AUTHORIZATION, v), "s3cret", &s);
        assert!(auth("Bearer s3cret"));
        assert!(auth("bearer s3cret"));
        assert!(auth("BEARER  s3cret"));
        assert!(!auth("Bearer s3cre"));
        assert!(!auth("Bearers3cret"));
        assert!(!auth("Token s3cret"));
        // "nurse:s3cret"
        assert!(auth("Basic bnVyc2U6czNjcmV0"));
        assert!(auth("basic bnVyc2U6czNjcmV0"));
        assert!(!auth("Basic bnVyc2U6d3Jvbmc="));
    }

    #[test]
    fn the_session_cookie_is_an_hmac_not_the_token() {
        let s = session_value("s3cret");
        assert_eq!(s.len(), 64);
        assert!(!s.contains("s3cret"));
        assert_ne!(s, session_value("s3cret2"), "another token, another session");
        let c = |v: &str| authorized(&with(header::COOKIE, v), "s3cret", &s);
        assert!(c(&format!("{COOKIE}={s}")));
        assert!(c(&format!("theme=dark; {COOKIE}={s}; lang=en")));
        assert!(!c(&format!("{COOKIE}={}", session_value("wrong"))));
        assert!(!c(&format!("{COOKIE}=s3cret")), "the token itself is not a session");
        assert!(!c(&format!("other={s}")));
        let set = session_cookie(&s, false);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"), "{set}");
        assert!(session_cookie(&s, true).ends_with("; Secure"));
    }

    #[test]
    fn only_loopback_names_on_the_bound_port() {
        for ok in ["localhost", "LOCALHOST:8080", "127.0.0.1", "127.0.0.1:8080", "127.1.2.3:8080", "[::1]", "[::1]:8080"] {
            assert!(loopback_host(ok, 8080), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.1:8081",
            "localhost:80x",
            "10.0.0.1:8080",
            "localhost.evil.example:8080",
            "[::2]:8080",
            "[::1]x",
            "[::1",
            "",
        ] {
            assert!(!loopback_host(bad, 8080), "{bad}");
        }
    }
}
