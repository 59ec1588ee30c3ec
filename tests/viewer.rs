//! End to end: the graph viewer of the real graph-builder, which reads the
//! fixture upstream over loopback HTTP. Checks the page, its assets and
//! `/v1/streams` over HTTP, then, when Chromium and the browser test's npm
//! packages are installed (`.ci/browser` installs both), runs
//! `tests/browser/viewer.mjs` against the server in a real browser.
//!
//! Without Chromium the browser test is skipped with a message, except
//! under `CI=true`, where it fails. The browser test's screenshot goes to
//! `$VIEWER_SCREENSHOT` when set, else to a temporary directory.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

const STREAMS: &str = "stable = [\"x86_64\", \"aarch64\", \"ppc64le\"]";
const CHROMIUM: &str = "/usr/bin/chromium";

/// GETs `url` and returns status, headers and body.
async fn fetch(url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// A response header as text ("" when absent).
fn header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn asset_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fcos-graph-builder/assets")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[actix_web::test]
async fn graph_builder_serves_the_viewer() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let graph_builder =
        fcos_graph_builder::start(graph_builder_settings(&upstream, STREAMS)).unwrap();
    wait_ready(&graph_builder).await;
    let base = format!("http://{}/", graph_builder.service_addr);

    // The page and everything it loads, from the binary, with their types.
    for (file, content_type) in [
        ("index.html", "text/html; charset=utf-8"),
        ("viewer.js", "text/javascript; charset=utf-8"),
        ("viewer.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let path = match file {
            "index.html" => String::new(),
            _ => format!("assets/{file}"),
        };
        let (status, headers, body) = fetch(&format!("{base}{path}")).await;
        assert_eq!(status, 200, "/{path}");
        assert_eq!(header(&headers, "content-type"), content_type, "/{path}");
        assert_eq!(body, asset_file(file), "/{path}");
        let policy = header(&headers, "content-security-policy");
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    }
    let (_, _, page) = fetch(&base).await;
    assert!(page.contains("<script src=\"assets/viewer.js\" defer></script>"));
    assert!(page.contains("href=\"assets/viewer.css\""));

    // The pickers' list, and the graphs the page reads.
    let (status, headers, body) = fetch(&format!("{base}v1/streams")).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "application/json");
    let streams: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        streams,
        serde_json::json!({"stable": ["x86_64", "aarch64", "ppc64le"]})
    );
    let graph = get_graph(&format!("{base}v1/graph?basearch=x86_64&stream=stable")).await;
    assert_eq!(graph["nodes"][3]["version"], "31.2.0");
    let (status, _, _) = fetch(&format!("{base}assets/missing.js")).await;
    assert_eq!(status, 404);

    run_browser_test(&base).await;

    graph_builder.stop().await.unwrap();
    upstream.stop().await;
}

/// Whether the browser test must run: under CI (`CI=true`, as CI services
/// set it) a missing browser fails the test instead of skipping it, so that
/// a skipped browser test cannot pass unnoticed.
fn browser_test_required(ci: Option<&str>) -> bool {
    ci.is_some_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

#[test]
fn a_missing_browser_fails_under_ci_only() {
    assert!(browser_test_required(Some("true")));
    assert!(browser_test_required(Some("TRUE")));
    assert!(browser_test_required(Some("1")));
    assert!(!browser_test_required(None));
    assert!(!browser_test_required(Some("")));
    assert!(!browser_test_required(Some("false")));
}

/// Runs the browser test against `base`, or says why it is skipped (and
/// fails instead under CI).
async fn run_browser_test(base: &str) {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let missing: Vec<String> = [
        PathBuf::from(CHROMIUM),
        browser_dir.join("node_modules/playwright-core"),
    ]
    .into_iter()
    .filter(|p| !p.exists())
    .map(|p| p.display().to_string())
    .collect();
    if !missing.is_empty() {
        let message = format!(
            "the viewer's browser test cannot run: missing {}; `bash .ci/browser` installs what it needs",
            missing.join(" and ")
        );
        let ci = std::env::var("CI").ok();
        assert!(
            !browser_test_required(ci.as_deref()),
            "{message} (CI={})",
            ci.unwrap_or_default()
        );
        eprintln!("SKIPPED {message}");
        return;
    }

    let screenshot = match std::env::var_os("VIEWER_SCREENSHOT") {
        Some(path) => PathBuf::from(path),
        None => std::env::temp_dir().join(format!("fcos-viewer-{}.png", std::process::id())),
    };
    let mut command = Command::new("node");
    command
        .current_dir(&browser_dir)
        .arg("viewer.mjs")
        .args(["--url", base])
        .arg("--screenshot")
        .arg(&screenshot)
        .args(["--stream", "stable", "--basearch", "x86_64"])
        .args(["--at", &MIDWAY.to_string()])
        // A barrier of the OSTree graph, with a link as its reason.
        .args(["--click", "31.2.0", "--expect-payload", "c31-2-x86"])
        // Half-way through its rollout: 0.2 + 0.8 × 50/100.
        .args(["--rollout", "32.2.0", "--expect-progress", "60%"])
        // Above that progress: the edges into 32.2.0 are hidden.
        .args(["--wariness", "0.7"]);
    let output = actix_web::rt::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("cannot run `node` (needed by the browser test)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("viewer test: all "), "{stdout}");
    println!("screenshot: {}", screenshot.display());
}
