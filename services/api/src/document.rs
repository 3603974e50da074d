//! The OpenAPI document: generated from the handlers (`#[utoipa::path]`) and the types they take
//! and answer with, merged with the collector's part; built once at start and served at
//! `/api/openapi.json`. Adding an endpoint is its handler, its route in [`crate::routes`] and its
//! types: the document follows.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{InfoBuilder, OpenApi, SecurityRequirement};

/// The API's document alone (no collector): its operations, the public health checks, the
/// security schemes and the tags.
pub fn openapi() -> OpenApi {
    let mut document = crate::routes().into_openapi();
    document.merge(beacon_runtime::admin::public_health_routes().into_openapi());
    document.info = InfoBuilder::new()
        .title("Beacon API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Plausible-compatible Stats API v1 and Beacon's own summary. Authenticate with \
             `Authorization: Bearer <key>` (`beacon key create --user EMAIL`) or the dashboard's \
             sign-in cookie. A site you do not own answers 404. The collector's endpoints (tag \
             `collector`) are served on the collector's own address.",
        ))
        .build();
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.add_security_scheme(
        "cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
            crate::auth::SESSION_COOKIE,
        ))),
    );
    components.add_security_scheme(
        "ingest_token",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A site ingest token (`beacon token create --site DOMAIN`), for server-side \
                     senders.",
                ))
                .build(),
        ),
    );
    document.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("cookie", Vec::<String>::new()),
    ]);
    document.tags = Some(
        [
            (
                "stats",
                "Statistics for site owners (Plausible's Stats API v1 and more).",
            ),
            (
                "pipeline",
                "The pipeline's lag and dead letters, for operators.",
            ),
            (
                "dashboard",
                "The browser side: pages, sign-in, assets, this document.",
            ),
            ("collector", "Ingest, on the collector's address."),
            ("health", "Liveness and readiness."),
        ]
        .into_iter()
        .map(|(name, description)| {
            TagBuilder::new()
                .name(name)
                .description(Some(description))
                .build()
        })
        .collect(),
    );
    document
}

/// The whole document served: the API's and `others` (the collector's), as JSON.
pub fn served(others: Vec<OpenApi>) -> String {
    let mut document = openapi();
    for other in others {
        document.merge(other);
    }
    document
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"the document does not serialize: {e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The router is built from [`crate::routes`] only, so a route added beside it (with
    /// `.route(…)`) would be served but missing from the document.
    #[test]
    fn no_route_is_added_outside_the_document() {
        let source = include_str!("lib.rs");
        for call in [".route(", ".route_service(", ".nest("] {
            assert!(!source.contains(call), "lib.rs adds a route with {call}");
        }
    }

    #[test]
    fn every_operation_has_a_tag_a_summary_and_its_answers() {
        let document = openapi();
        let mut operations = 0;
        for (path, item) in &document.paths.paths {
            for operation in [&item.get, &item.post].into_iter().flatten() {
                operations += 1;
                let tags = operation.tags.clone().unwrap_or_default();
                assert_eq!(tags.len(), 1, "{path}: {tags:?}");
                assert!(operation.summary.is_some(), "{path} has no summary");
                assert!(!operation.responses.responses.is_empty(), "{path}");
            }
        }
        // 18 routes of the API (one with two methods) and 2 health checks.
        assert_eq!(operations, 21, "{:?}", document.paths.paths.keys());
    }

    #[test]
    fn the_served_document_merges_the_collectors_part() {
        let mut collector = OpenApi::default();
        collector
            .paths
            .paths
            .insert("/track".into(), Default::default());
        let served: serde_json::Value =
            serde_json::from_str(&served(vec![collector])).expect("JSON");
        assert_eq!(served["openapi"], "3.1.0");
        assert!(served["paths"]["/track"].is_object());
        assert!(served["paths"]["/api/v1/stats/breakdown"]["get"].is_object());
        assert!(served["components"]["securitySchemes"]["ingest_token"].is_object());
    }
}
