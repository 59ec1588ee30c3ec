//! End to end: the graph viewer of the real graph-builder, which reads the
//! fixture upstream over loopback HTTP. Checks the page, its assets and
//! `/v1/streams` over HTTP, then, when Chromium and the browser test's npm
//! packages are installed (`.ci/browser` installs both), runs
//! `tests/browser/viewer.mjs` against the server in a real browser.
//!
//! The server serves four streams, in an order the page must change
//! (`branched`, `next`, `stable`, `testing` by name; Fedora's order is
//! stable, testing, next): `stable`, `testing` and `branched` are the
//! six-release fixture, and `next` is a long synthetic history as long as
//! the real `next` (217 releases, OCI images from the 151st on), for the
//! overview, the zoom and the deep links.
//!
//! The graph-builder shows a fleet policy file with a group for each kind
//! of rule, and a policy-engine with its clock at `MIDWAY` reads the same
//! file: the browser test checks that the updates the page shows offered
//! to each group are the ones the policy-engine serves it, and that the
//! rest are shown withheld, with why. A second graph-builder, without a
//! policy, shows the page without a group picker.
//!
//! The browser test runs in two parts, each a test with servers of its
//! own: `short` (the pickers, the details, the groups on `stable`, the
//! summary, a node UUID, the policy file refused) and `long` (the long
//! history, the keyboard, the figures of a slider step, a group change
//! and a zoom, a phone's screen, dark mode, the groups on `next`).
//!
//! Without Chromium the browser test is skipped with a message, except
//! under `CI=true`, where it fails. The long part's screenshot goes to
//! `$VIEWER_SCREENSHOT` when set, else to a temporary directory.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use support::*;

const STREAMS: &str = "stable = [\"x86_64\", \"aarch64\", \"ppc64le\"]\n\
    testing = [\"x86_64\"]\n\
    next = [\"x86_64\"]\n\
    branched = [\"x86_64\"]";
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

/// The fleet policy of the test: a release denied to the whole fleet
/// (30.2.0, older than every OCI image, so only checksum updates lead into
/// it), and a group for each kind of rule. At
/// `MIDWAY` (Friday 2027-01-15 08:50 UTC, 09:50 in Berlin), `weekend` is
/// outside its window and `friday-morning` inside it; `frozen` is frozen
/// at any time of the test. `old-pin` pins a release the OCI graph does
/// not have (30.2.0, OSTree only): its place in the release index, from
/// the OSTree graph, still withholds every OCI update newer than it.
/// `no-op` denies the first release of `stable` and is pinned to the first
/// of `next`, which no update leads into: a deny that changes nothing and
/// a pin no node reaches, which the page warns about. The guards halt a
/// release when more than half the nodes that arrived on it roll back
/// (`canary`'s own: more than 2%), judged from 3 nodes: see
/// [`Servers::halt_rollouts`].
fn policy() -> String {
    format!(
        r#"
[fleet]
deny = ["30.2.0"]

[guard]
min_nodes = 3
max_rolled_back = 0.5

[groups.canary]
wariness_max = 0.0

[groups.canary.guard]
min_nodes = 3
max_rolled_back = 0.02

[groups.production]
wariness_min = 0.8

[groups.pinned]
max_version = {{ stable = "31.2.0", next = "{pinned_next}" }}

[groups.old-pin]
max_version = {{ stable = "30.2.0" }}

[groups.denied]
deny = ["32.1.0"]

[groups.paused]
paused = true

[groups.weekend]
windows = [ {{ days = ["sat", "sun"], start = "02:00", end = "06:00", timezone = "Europe/Berlin" }} ]

[groups.friday-morning]
windows = [ {{ days = ["fri"], start = "09:00", end = "10:00", timezone = "Europe/Berlin" }} ]

[groups.frozen]
freezes = [ {{ from = "2020-01-01T00:00:00Z", to = "2100-01-01T00:00:00Z", reason = "release engineering freeze" }} ]

[groups.default]
deny = ["32.2.0"]

[groups.no-op]
deny = ["30.1.0"]
max_version = {{ next = "{first_next}" }}
"#,
        pinned_next = long_version(PINNED_NEXT),
        first_next = long_version(0)
    )
}

/// The release of the long history `pinned` is pinned at: one with an OCI
/// image, 36 releases before the newest.
const PINNED_NEXT: usize = 180;

fn asset_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fcos-graph-builder/assets")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The servers of a test: the upstream, the graph-builder with the fleet
/// policy and the policy-engine's rollouts, a policy-engine reading the
/// same file with its clock at `MIDWAY`, and a graph-builder without a
/// policy nor rollouts (the policy-engine reads its graphs, the same as
/// the other's: each of the policy-engine and the graph-builder of the
/// page needs the other's address at start). Each test has its own (the
/// browser test makes the policy file invalid for a moment).
struct Servers {
    upstream: Upstream,
    graph_builder: service_kit::server::Running,
    policy_engine: service_kit::server::Running,
    plain: service_kit::server::Running,
    policy_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Servers {
    async fn start() -> Servers {
        let upstream = Upstream::start();
        upstream.serve_fixture("stable");
        upstream.serve_fixture_as("stable", "testing");
        upstream.serve_fixture_as("stable", "branched");
        let (releases, updates) = long_history("next", LONG_HISTORY, FIRST_OCI);
        upstream.set("/next/releases.json", Canned::Body(releases));
        upstream.set("/next/updates.json", Canned::Body(updates));
        let dir = tempfile::tempdir().unwrap();
        let policy_file = dir.path().join("policy.toml");
        std::fs::write(&policy_file, policy()).unwrap();
        // The same page without a policy.
        let plain = fcos_graph_builder::start(graph_builder_settings(&upstream, STREAMS)).unwrap();
        // What a node of each group gets, at the time the browser test pins.
        let mut settings =
            policy_engine_settings(&format!("http://{}/v1/graph", plain.service_addr));
        settings.policy_path = Some(policy_file.clone());
        settings.rollouts.interval = std::time::Duration::from_millis(200);
        let policy_engine =
            fcos_policy_engine::start_with_clock(settings, Arc::new(|| MIDWAY)).unwrap();
        let mut settings = graph_builder_settings(&upstream, STREAMS);
        settings.policy_path = Some(policy_file.clone());
        settings.rollouts = Some(fcos_graph_builder::config::RolloutsSettings {
            url: format!("http://{}/v1/rollouts", policy_engine.status_addr)
                .parse()
                .unwrap(),
            refresh: std::time::Duration::from_millis(200),
        });
        let graph_builder = fcos_graph_builder::start(settings).unwrap();
        wait_ready(&graph_builder).await;
        wait_ready(&plain).await;
        wait_following(&policy_engine, &plain).await;
        wait_for_status(
            &format!("http://{}/v1/rollouts", graph_builder.service_addr),
            200,
        )
        .await;
        Servers {
            upstream,
            graph_builder,
            policy_engine,
            plain,
            policy_file,
            _dir: dir,
        }
    }

    /// Polls that make the policy-engine's guards halt three rollouts of
    /// `stable` x86_64, one of each kind, and waits until the page's
    /// graph-builder shows them as the policy-engine serves them:
    /// - 31.2.0 (OSTree) for every node: 2 of the 3 nodes of
    ///   `production` (its wariness hides the rollout of 32.2.0 from them)
    ///   that arrived roll back, over `[guard]`'s half;
    /// - 32.2.0 (OCI) for `canary` alone: 1 of its 3 nodes rolls back,
    ///   over its own guard's 2% but not over `[guard]`'s half;
    /// - 32.2.0 (OSTree) on `metal` alone: 2 of the 3 `metal` nodes of
    ///   `friday-morning` roll back, 0 of its 3 `aws` nodes: half of `[guard]`
    ///   is crossed on `metal` only.
    async fn halt_rollouts(&self) {
        let pe = self.policy_engine.service_addr;
        roll_back(
            pe,
            "stable",
            false,
            ("30.2.0", "31.2.0"),
            ("production", "aws", 0.0),
            (100, 3),
            2,
        )
        .await;
        roll_back(
            pe,
            "stable",
            true,
            ("32.1.0", "32.2.0"),
            ("canary", "aws", 0.0),
            (200, 3),
            1,
        )
        .await;
        roll_back(
            pe,
            "stable",
            false,
            ("31.2.0", "32.2.0"),
            ("friday-morning", "aws", 0.0),
            (300, 3),
            0,
        )
        .await;
        roll_back(
            pe,
            "stable",
            false,
            ("31.2.0", "32.2.0"),
            ("friday-morning", "metal", 0.0),
            (400, 3),
            2,
        )
        .await;
        let served = format!("http://{}/v1/rollouts", self.policy_engine.status_addr);
        let shown = format!("http://{}/v1/rollouts", self.graph_builder.service_addr);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let (_, pe) = get(&served).await;
            let pe: serde_json::Value = serde_json::from_str(&pe).unwrap();
            let (_, gb) = get(&shown).await;
            let gb: serde_json::Value = serde_json::from_str(&gb).unwrap();
            let halts = pe["halts"].as_array().map_or(0, Vec::len);
            if halts == 3 && gb["rollouts"] == pe {
                let mut kinds: Vec<String> = pe["halts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| {
                        format!(
                            "{} {} {} {}",
                            h["scheme"], h["release"], h["group"], h["platform"]
                        )
                    })
                    .collect();
                kinds.sort();
                assert_eq!(
                    kinds,
                    [
                        "\"checksum\" \"31.2.0\" null null",
                        "\"checksum\" \"32.2.0\" null \"metal\"",
                        "\"oci\" \"32.2.0\" \"canary\" null",
                    ]
                );
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the halts never showed: {pe} / {gb}"
            );
            actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    fn base(&self) -> String {
        format!("http://{}/", self.graph_builder.service_addr)
    }

    /// What the browser test needs for the group picker.
    fn policy_args(&self) -> PolicyArgs {
        // When the windows of `weekend` open next after MIDWAY, as the
        // policy-engine computes it: the page must say the same.
        let rules = commons::fleet_policy::Policy::parse(&policy(), &self.policy_file, 0)
            .expect("the test policy loads");
        let next_window = rules.groups["weekend"]
            .next_window(MIDWAY)
            .expect("the weekend opens within a week");
        PolicyArgs {
            policy_engine: format!("http://{}/", self.policy_engine.service_addr),
            policy_file: self.policy_file.clone(),
            no_policy_url: format!("http://{}/", self.plain.service_addr),
            next_window,
        }
    }

    async fn stop(self) {
        self.graph_builder.stop().await.unwrap();
        self.policy_engine.stop().await.unwrap();
        self.plain.stop().await.unwrap();
        self.upstream.stop().await;
    }
}

#[actix_web::test]
async fn graph_builder_serves_the_viewer() {
    let servers = Servers::start().await;
    let base = servers.base();
    let plain_base = format!("http://{}/", servers.plain.service_addr);

    // The page and everything it loads, from the binary, with their types.
    for (file, content_type) in [
        ("index.html", "text/html; charset=utf-8"),
        ("viewer.js", "text/javascript; charset=utf-8"),
        ("page.js", "text/javascript; charset=utf-8"),
        ("data.js", "text/javascript; charset=utf-8"),
        ("policy.js", "text/javascript; charset=utf-8"),
        ("rollouts.js", "text/javascript; charset=utf-8"),
        ("layout.js", "text/javascript; charset=utf-8"),
        ("draw.js", "text/javascript; charset=utf-8"),
        ("place.js", "text/javascript; charset=utf-8"),
        ("details.js", "text/javascript; charset=utf-8"),
        ("controls.js", "text/javascript; charset=utf-8"),
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
    assert!(page.contains("<script type=\"module\" src=\"assets/viewer.js\"></script>"));
    assert!(page.contains("href=\"assets/viewer.css\""));

    // The pickers' list, and the graphs the page reads.
    let (status, headers, body) = fetch(&format!("{base}v1/streams")).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "application/json");
    let streams: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        streams,
        serde_json::json!({
            "branched": ["x86_64"],
            "next": ["x86_64"],
            "stable": ["x86_64", "aarch64", "ppc64le"],
            "testing": ["x86_64"],
        })
    );
    let graph = get_graph(&format!("{base}v1/graph?basearch=x86_64&stream=stable")).await;
    assert_eq!(graph["nodes"][3]["version"], "31.2.0");
    let graph = get_graph(&format!("{base}v1/graph?basearch=x86_64&stream=next")).await;
    assert_eq!(versions(&graph).len(), LONG_HISTORY);
    assert_eq!(versions(&graph)[0], "31.20200103.1.0");
    let graph = get_graph(&format!(
        "{base}v1/graph?basearch=x86_64&stream=next&oci=true"
    ))
    .await;
    assert_eq!(versions(&graph).len(), LONG_HISTORY - FIRST_OCI);
    let (status, _, _) = fetch(&format!("{base}assets/missing.js")).await;
    assert_eq!(status, 404);

    // The policy the page reads, and none from the other graph-builder.
    let (status, _, body) = fetch(&format!("{base}v1/policy")).await;
    assert_eq!(status, 200, "{body}");
    let shown: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(shown["policy"]["groups"]["paused"]["closed"], "paused");
    assert_eq!(
        shown["policy"]["fleet"]["deny"],
        serde_json::json!(["30.2.0"])
    );
    assert_eq!(
        shown["policy"]["groups"]["denied"]["deny"],
        serde_json::json!(["32.1.0", "30.2.0"])
    );
    assert_eq!(shown["policy"]["groups"]["frozen"]["closed"], "freeze");
    assert_eq!(
        shown["policy"]["groups"]["pinned"]["max_version"]["next"],
        long_version(PINNED_NEXT)
    );
    let (status, _, body) = fetch(&format!("{plain_base}v1/policy")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["policy"],
        serde_json::Value::Null
    );

    // The page's graph-builder shows the policy-engine's rollouts.
    let (status, body) = get(&format!("{base}v1/rollouts")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&format!("{plain_base}v1/rollouts")).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "{\"rollouts\":null}"),
        "without [rollouts]"
    );
    servers.halt_rollouts().await;

    // The pickers, the details, the group picker against the
    // policy-engine, the summary, a node UUID, the policy file refused,
    // the halted rollouts.
    run_browser_test(&base, &servers.policy_args(), "short").await;
    servers.stop().await;
}

/// The long history in a browser: the overview, the zoom, the keyboard,
/// the figures of a slider step, a group change and a zoom, a phone's
/// screen, dark mode, the group views of `next` against the
/// policy-engine, and the screenshot.
#[actix_web::test]
async fn the_viewer_on_a_long_history() {
    let servers = Servers::start().await;
    run_browser_test(&servers.base(), &servers.policy_args(), "long").await;
    servers.stop().await;
}

/// The version of release `i` of the long history: Fedora CoreOS style
/// (`MAJOR.YYYYMMDD.1.0`), three a month from January 2020, a new major
/// version every 20 releases.
fn long_version(i: usize) -> String {
    let (year, month, day) = (2020 + i / 36, (i % 36) / 3 + 1, 3 + 10 * (i % 3));
    format!("{}.{year}{month:02}{day:02}.1.0", 31 + i / 20)
}

/// Releases of the long synthetic history, as many as the real `next` has.
const LONG_HISTORY: usize = 217;
/// Index of its first release with an OCI image.
const FIRST_OCI: usize = 150;

/// The release index and updates metadata of a long history of `stream`:
/// `count` releases with Fedora CoreOS style versions (`MAJOR.YYYYMMDD.1.0`,
/// three a month from January 2020), a new major version every 20 releases
/// behind a barrier, one dead-end (the 38th release), every other release a
/// rollout (complete, but for the last one: half-way at `MIDWAY`, like the
/// fixture's 32.2.0), x86_64 OSTree commits for all and OCI images from
/// the release at `first_oci` on.
fn long_history(stream: &str, count: usize, first_oci: usize) -> (Vec<u8>, Vec<u8>) {
    let mut releases = Vec::new();
    let mut updates = Vec::new();
    for i in 0..count {
        let version = long_version(i);
        let mut release = serde_json::json!({
            "version": version,
            "commits": [{"architecture": "x86_64", "checksum": format!("c{i}-x86")}],
        });
        if i >= first_oci {
            release["oci-images"] = serde_json::json!([{
                "architecture": "x86_64",
                "image": "quay.io/fedora/fedora-coreos",
                "digest-ref": format!("quay.io/fedora/fedora-coreos@sha256:o{i}-x86"),
            }]);
        }
        releases.push(release);
        let metadata = if i > 0 && i % 20 == 0 {
            let reason = format!("https://example.org/rebase/{}", 31 + i / 20);
            serde_json::json!({"barrier": {"reason": reason}})
        } else if i == 37 {
            serde_json::json!({"deadend": {"reason": "https://example.org/deadend"}})
        } else if i + 1 == count {
            serde_json::json!({"rollout": {"start_epoch": 1_800_000_000, "start_percentage": 0.2, "duration_minutes": 100}})
        } else if i % 2 == 1 {
            // From 2020-01-01, ten days apart: long complete at `MIDWAY`.
            let start = 1_577_836_800 + 864_000 * i;
            serde_json::json!({"rollout": {"start_epoch": start, "start_percentage": 0.0, "duration_minutes": 2880}})
        } else {
            continue;
        };
        updates.push(serde_json::json!({"version": version, "metadata": metadata}));
    }
    // Both documents have this shape.
    let document = |releases: Vec<serde_json::Value>| {
        serde_json::json!({
            "stream": stream,
            "metadata": {"last-modified": "2026-01-01T00:00:00Z"},
            "releases": releases,
        })
        .to_string()
        .into_bytes()
    };
    (document(releases), document(updates))
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

/// What the browser test needs for the group picker.
struct PolicyArgs {
    /// The policy-engine reading the same policy, its clock at `MIDWAY`.
    policy_engine: String,
    /// The policy file (the test makes it invalid for a moment).
    policy_file: PathBuf,
    /// A graph-builder without a policy.
    no_policy_url: String,
    /// When the windows of `weekend` open next after `MIDWAY`.
    next_window: i64,
}

/// Runs the browser test against `base`, or says why it is skipped (and
/// fails instead under CI).
async fn run_browser_test(base: &str, policy: &PolicyArgs, part: &str) {
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

    // The screenshot of the long history is the one of the docs.
    let screenshot = match std::env::var_os("VIEWER_SCREENSHOT") {
        Some(path) if part == "long" => PathBuf::from(path),
        _ => std::env::temp_dir().join(format!("fcos-viewer-{part}-{}.png", std::process::id())),
    };
    let mut command = Command::new("node");
    command
        .current_dir(&browser_dir)
        .arg("viewer.mjs")
        .args(["--url", base, "--part", part])
        .arg("--screenshot")
        .arg(&screenshot)
        .args(["--stream", "stable", "--basearch", "x86_64"])
        .args(["--at", &MIDWAY.to_string()])
        // A barrier of the OSTree graph, with a link as its reason.
        .args(["--click", "31.2.0", "--expect-payload", "c31-2-x86"])
        // Half-way through its rollout: 0.2 + 0.8 × 50/100.
        .args(["--rollout", "32.2.0", "--expect-progress", "60%"])
        // Above that progress: the edges into 32.2.0 are hidden.
        .args(["--wariness", "0.7"])
        // The overview, zoom, deep links and OCI start on a long history.
        .args(["--long-stream", "next"])
        // The group picker: against the policy-engine, the policy file
        // unreadable for a moment, and a server without a policy.
        .args(["--policy-engine", &policy.policy_engine])
        .arg("--policy-file")
        .arg(&policy.policy_file)
        .args(["--no-policy-url", &policy.no_policy_url])
        .args(["--window-group", "weekend"])
        .args(["--expect-next-window", &policy.next_window.to_string()]);
    if part == "short" {
        // Servers::halt_rollouts made them.
        command.arg("--expect-halts");
    }
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
