//! The OpenAPI 3 document (`openapi.json`, checked in beside this file and kept in
//! sync with [`crate::router`] by a test) and `/docs`, a self-contained page that
//! renders it and lets you try each call (no CDN: the machine may be offline).
use axum::response::{Html, IntoResponse};
use base64::Engine as _;
use sha2::Digest as _;

pub const OPENAPI: &str = include_str!("openapi.json");

pub async fn openapi() -> impl IntoResponse {
    ([("content-type", "application/json")], OPENAPI)
}

const PAGE: &str = include_str!("docs.html");

/// The page's Content-Security-Policy: its one inline script and one inline
/// style by hash, `fetch` to this origin only, and no framing.
fn csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        let hash = |open: &str, close: &str| {
            let inner = PAGE
                .split_once(open)
                .and_then(|(_, rest)| rest.split_once(close))
                .map_or("", |(inner, _)| inner);
            let d = sha2::Sha256::digest(inner.as_bytes());
            format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(d))
        };
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash("<script>", "</script>"),
            hash("<style>", "</style>"),
        )
    })
}

pub async fn page() -> impl IntoResponse {
    (
        [
            ("content-security-policy", csp()),
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
        ],
        Html(PAGE),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every route registered in `crate::router` (read from its source) is in the
    /// OpenAPI document with the same methods, and the document names nothing else.
    #[test]
    fn openapi_matches_the_router() {
        let src = include_str!("lib.rs");
        let mut routes = BTreeSet::new();
        // Each `.route(...)` call, however rustfmt wraps it: scan to its closing paren.
        for (start, _) in src.match_indices(".route(") {
            let mut depth = 0;
            let mut end = start;
            for (i, c) in src[start..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = start + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call: String = src[start..end].split_whitespace().collect();
            let path = call.split('"').nth(1).unwrap_or_default();
            for m in ["get", "post", "patch", "delete"] {
                if call.contains(&format!("{m}(")) {
                    routes.insert(format!("{m} {path}"));
                }
            }
        }
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap_or_default();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for m in item.as_object().into_iter().flatten().map(|(m, _)| m) {
                documented.insert(format!("{m} {path}"));
            }
        }
        assert!(routes.len() > 10, "found the routes: {routes:?}");
        assert_eq!(routes, documented, "routes and openapi.json disagree");
    }

    /// The page has exactly one inline script and one inline style (what the
    /// CSP hashes), and no inline event handler attribute, which the CSP would
    /// block.
    #[test]
    fn the_csp_covers_the_page() {
        let page = super::PAGE;
        assert_eq!(page.matches("<script").count(), 1);
        assert_eq!(page.matches("<style").count(), 1);
        assert!(!page.contains(" onclick=") && !page.contains(" onload="));
        assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
        let csp = super::csp();
        assert_eq!(csp.matches("'sha256-").count(), 2, "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn every_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap_or_default();
        let text = super::OPENAPI;
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "dangling $ref {name}"
            );
        }
    }
}
