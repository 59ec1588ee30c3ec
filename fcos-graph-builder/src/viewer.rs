//! The graph viewer: a page on the service port (`/`) that draws the graphs
//! of `/v1/graph` for a person, with its script, style sheet and icon under
//! `/assets/`, and `GET /v1/streams`, the configured streams and their
//! basearches, which the page reads to fill its pickers.
//!
//! Everything is compiled into the binary (no network access needed to use
//! the page), and the page runs under a strict Content-Security-Policy: no
//! inline script or style, and requests only to its own origin.

use crate::service::ServiceState;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};

/// Content-Security-Policy of every viewer response: scripts, styles and
/// requests from the page's own origin only, nothing inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One file of the viewer, as served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// Request path.
    pub path: &'static str,
    /// `Content-Type` of the response.
    pub content_type: &'static str,
    /// The file.
    pub body: &'static str,
}

/// The viewer's files: the page, then what it loads. The script is ES
/// modules served as they are, no build step: `viewer.js` imports the
/// others by relative path (`./draw.js`), so each is listed here.
pub static ASSETS: [Asset; 13] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../assets/index.html"),
    },
    Asset {
        path: "/assets/viewer.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/viewer.js"),
    },
    Asset {
        path: "/assets/page.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/page.js"),
    },
    Asset {
        path: "/assets/data.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/data.js"),
    },
    Asset {
        path: "/assets/policy.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/policy.js"),
    },
    Asset {
        path: "/assets/rollouts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/rollouts.js"),
    },
    Asset {
        path: "/assets/layout.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/layout.js"),
    },
    Asset {
        path: "/assets/place.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/place.js"),
    },
    Asset {
        path: "/assets/draw.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/draw.js"),
    },
    Asset {
        path: "/assets/details.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/details.js"),
    },
    Asset {
        path: "/assets/controls.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/controls.js"),
    },
    Asset {
        path: "/assets/viewer.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/viewer.css"),
    },
    Asset {
        path: "/assets/favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../assets/favicon.svg"),
    },
];

/// The response serving `asset`.
fn serve_asset(asset: &Asset) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .body(asset.body)
}

/// `GET /v1/streams`: `{"stream": ["basearch", …], …}`, the streams the
/// graph-builder is configured with, in name order.
pub async fn serve_streams(state: web::Data<ServiceState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .json(state.store.configured())
}

/// Routes of the viewer: the page and its assets, and `/v1/streams`.
/// Each answers GET and HEAD, and a JSON 405 to other methods.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for asset in &ASSETS {
        let handler = move || async move { serve_asset(asset) };
        cfg.service(
            web::resource(asset.path)
                .route(web::get().to(handler))
                .route(web::head().to(handler))
                .default_service(web::to(service_kit::web::method_not_allowed)),
        );
    }
    cfg.service(
        web::resource("/v1/streams")
            .route(web::get().to(serve_streams))
            .route(web::head().to(serve_streams))
            .default_service(web::to(service_kit::web::method_not_allowed)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::GraphStore;
    use actix_web::http::{Method, StatusCode};
    use actix_web::test::{call_service, init_service, read_body, read_body_json, TestRequest};
    use actix_web::App;
    use std::collections::BTreeMap;

    /// A response header as text ("" when absent).
    fn header_of(response: &actix_web::dev::ServiceResponse, name: header::HeaderName) -> String {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    fn state() -> ServiceState {
        let configured = BTreeMap::from([
            ("next".to_string(), vec!["x86_64".to_string()]),
            (
                "stable".to_string(),
                vec!["x86_64".to_string(), "aarch64".to_string()],
            ),
        ]);
        ServiceState::new(GraphStore::new(configured), &prometheus::Registry::new()).unwrap()
    }

    #[actix_web::test]
    async fn serves_every_asset_with_its_type_and_policy() {
        let app = init_service(
            App::new()
                .app_data(web::Data::new(state()))
                .configure(crate::service::configure),
        )
        .await;
        for asset in &ASSETS {
            let req = TestRequest::get().uri(asset.path).to_request();
            let response = call_service(&app, req).await;
            assert_eq!(response.status(), StatusCode::OK, "{}", asset.path);
            assert_eq!(
                header_of(&response, header::CONTENT_TYPE),
                asset.content_type
            );
            assert_eq!(
                header_of(&response, header::CONTENT_SECURITY_POLICY),
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(
                header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
                "nosniff"
            );
            let body = read_body(response).await;
            assert_eq!(body, asset.body.as_bytes());

            let req = TestRequest::default()
                .method(Method::HEAD)
                .uri(asset.path)
                .to_request();
            assert_eq!(call_service(&app, req).await.status(), StatusCode::OK);
            let req = TestRequest::post().uri(asset.path).to_request();
            let response = call_service(&app, req).await;
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        }
        // Unknown paths still get the JSON 404.
        let req = TestRequest::get().uri("/assets/missing.js").to_request();
        let response = call_service(&app, req).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            "application/json"
        );
    }

    #[actix_web::test]
    async fn lists_the_configured_streams() {
        let app = init_service(
            App::new()
                .app_data(web::Data::new(state()))
                .configure(crate::service::configure),
        )
        .await;
        let req = TestRequest::get().uri("/v1/streams").to_request();
        let response = call_service(&app, req).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            "application/json"
        );
        let body: serde_json::Value = read_body_json(response).await;
        assert_eq!(
            body,
            serde_json::json!({"next": ["x86_64"], "stable": ["x86_64", "aarch64"]})
        );
    }

    #[test]
    fn page_loads_only_served_assets_and_nothing_inline() {
        let page = ASSETS[0].body;
        let mut referenced = 0;
        for attribute in ["src=\"", "href=\""] {
            for (at, _) in page.match_indices(attribute) {
                let rest = &page[at + attribute.len()..];
                let target = &rest[..rest.find('"').unwrap()];
                if target.starts_with("assets/") {
                    let path = format!("/{target}");
                    assert!(
                        ASSETS.iter().any(|a| a.path == path),
                        "{target} is not served"
                    );
                    referenced += 1;
                } else {
                    // Only in-page fragments otherwise: nothing from elsewhere.
                    assert!(target.starts_with('#'), "{target} is not an asset");
                }
            }
        }
        // The entry module, the style sheet and the icon; the entry
        // module imports the other modules.
        assert_eq!(referenced, 3);
        // What the policy would block: inline scripts, styles and handlers.
        assert_eq!(page.matches("<script").count(), 1);
        assert!(page.contains("<script type=\"module\" src=\"assets/viewer.js\"></script>"));
        for blocked in ["<style", " style=", " onclick=", " onload=", "javascript:"] {
            assert!(!page.contains(blocked), "the page contains {blocked}");
        }
        for script in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            for blocked in [
                "innerHTML",
                "eval(",
                "new Function",
                ".setAttribute('style'",
            ] {
                assert!(
                    !script.body.contains(blocked),
                    "{} uses {blocked}",
                    script.path
                );
            }
        }
    }
    /// The modules a script imports: the specifiers of its `import … from`
    /// lines.
    fn imports(script: &str) -> Vec<&str> {
        script
            .lines()
            .filter(|line| line.starts_with("import "))
            .map(|line| {
                let from = &line[line.rfind(" from ").expect("import … from") + 6..];
                from.trim_end_matches(';').trim_matches('\'')
            })
            .collect()
    }

    #[test]
    fn the_script_is_modules_that_import_only_served_modules() {
        let scripts: Vec<&Asset> = ASSETS.iter().filter(|a| a.path.ends_with(".js")).collect();
        // Split by concern: the entry module and one per concern, none of
        // them the whole viewer.
        assert!(scripts.len() >= 6, "{} scripts", scripts.len());
        let mut imported = std::collections::BTreeSet::from(["/assets/viewer.js".to_string()]);
        for script in &scripts {
            assert!(
                script.body.lines().count() <= 900,
                "{} has {} lines",
                script.path,
                script.body.lines().count()
            );
            assert_eq!(script.content_type, "text/javascript; charset=utf-8");
            for specifier in imports(script.body) {
                // Relative to /assets/, as the browser resolves it: nothing
                // from elsewhere, no bare names a build step would resolve.
                let name = specifier
                    .strip_prefix("./")
                    .unwrap_or_else(|| panic!("{}: import of {specifier}", script.path));
                let path = format!("/assets/{name}");
                assert!(
                    ASSETS.iter().any(|a| a.path == path),
                    "{} imports {specifier}, which is not served",
                    script.path
                );
                imported.insert(path);
            }
        }
        // Every module served is loaded by the page.
        let served: std::collections::BTreeSet<String> =
            scripts.iter().map(|a| a.path.to_string()).collect();
        assert_eq!(imported, served);
    }
}
