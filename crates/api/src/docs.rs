//! The OpenAPI 3 document (`openapi.json`, checked in beside this file and kept in
//! sync with [`crate::router`] by a test) and `/docs`, a self-contained page that
//! renders it and lets you try each call (no CDN: the machine may be offline).
use axum::response::{Html, IntoResponse};

pub const OPENAPI: &str = include_str!("openapi.json");

pub async fn openapi() -> impl IntoResponse {
    ([("content-type", "application/json")], OPENAPI)
}

pub async fn page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
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
