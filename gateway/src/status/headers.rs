//! Response headers that keep the status surface out of other sites' frames, caches and
//! scripts: every answer (pages, API, 401s) is `no-store` and may not be framed; pages run
//! only their own inline script and style, allowed by hash.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The policy of answers that are not pages (JSON, text): nothing may load or frame them.
const DATA_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The Content-Security-Policy of an HTML page: its inline `<script>` and `<style>` blocks
/// allowed by SHA-256 hash, fetches to this origin only, never framed.
pub fn page_policy(html: &str) -> String {
    let scripts = hashes(html, "script");
    let styles = hashes(html, "style");
    let list = |h: &[String]| if h.is_empty() { "'none'".to_string() } else { h.join(" ") };
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'",
        list(&scripts),
        list(&styles)
    )
}

/// `'sha256-…'` of the text of each `<tag>…</tag>` block.
fn hashes(html: &str, tag: &str) -> Vec<String> {
    use base64::Engine;
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let Some(end) = body.find(&close) else { break };
        let digest = ring::digest::digest(&ring::digest::SHA256, &body.as_bytes()[..end]);
        out.push(format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest.as_ref())));
        rest = &body[end + close.len()..];
    }
    out
}

/// Adds the headers every answer carries; a handler's own `Content-Security-Policy` and
/// `Cache-Control` are kept.
pub async fn harden(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(DATA_POLICY));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_blocks_are_allowed_by_their_hash() {
        // sha256("alert(1)") and sha256("p{}"), as browsers compute them.
        let p = page_policy("<html><style>p{}</style><script>alert(1)</script></html>");
        assert!(p.contains("script-src 'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"), "{p}");
        assert!(p.contains("style-src 'sha256-"), "{p}");
        assert!(p.contains("frame-ancestors 'none'"));
        let none = page_policy("<html></html>");
        assert!(none.contains("script-src 'none'; style-src 'none'"), "{none}");
    }
}
