//! Shared pieces of the end-to-end tests: a real HTTP upstream serving
//! fixture documents (changeable, or failing on purpose), the services
//! started on `127.0.0.1:0`, and an HTTP client.

#![allow(dead_code)]

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use commons::config::ServiceSettings;
use futures_util::StreamExt;
use service_kit::server::Running;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
// Not every test crate runs a binary.
#[allow(unused_imports)]
pub use test_support::{logged_addr, Process};

/// Time the rollout of the fixture's 32.2.0 is half-way: it starts at
/// 1_800_000_000 at 0.2 and lasts 100 minutes, so 50 minutes in it is 0.6.
pub const MIDWAY: i64 = 1_800_000_000 + 50 * 60;

/// What the upstream answers for one path.
#[derive(Clone)]
pub enum Canned {
    /// 200 with this body, an `ETag` and a `Last-Modified`; 304 to a
    /// matching `If-None-Match`.
    Body(Vec<u8>),
    /// This status, empty body.
    Status(u16),
    /// Headers, then nothing for an hour.
    Hang,
    /// 200, then this body one byte every 100 ms.
    Trickle(Vec<u8>),
    /// 429 with `Retry-After` of this many seconds.
    RetryAfter(u64),
}

/// The `ETag` the upstream gives a body: its length and a checksum.
fn etag(body: &[u8]) -> String {
    let sum = body.iter().fold(0u64, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u64::from(*b))
    });
    format!("\"{}-{sum:x}\"", body.len())
}

/// A real HTTP server serving canned documents by path.
pub struct Upstream {
    pub addr: SocketAddr,
    routes: Arc<RwLock<HashMap<String, Canned>>>,
    hits: Arc<RwLock<HashMap<String, usize>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Upstream {
    /// Starts an upstream serving nothing yet (404 everywhere).
    pub fn start() -> Upstream {
        Upstream::start_on("127.0.0.1:0".parse().unwrap(), Arc::default())
    }

    /// Stops this upstream and starts another on the same address with the
    /// same routes (after a period of "connection refused").
    pub async fn restart(self) -> Upstream {
        self.handle.stop(false).await;
        Upstream::start_on(self.addr, self.routes)
    }

    fn start_on(addr: SocketAddr, routes: Arc<RwLock<HashMap<String, Canned>>>) -> Upstream {
        let hits: Arc<RwLock<HashMap<String, usize>>> = Arc::default();
        let (r, h) = (Arc::clone(&routes), Arc::clone(&hits));
        let server = HttpServer::new(move || {
            let (routes, hits) = (Arc::clone(&r), Arc::clone(&h));
            App::new().default_service(web::to(move |req: HttpRequest| {
                let (routes, hits) = (Arc::clone(&routes), Arc::clone(&hits));
                async move {
                    *hits
                        .write()
                        .unwrap()
                        .entry(req.path().to_string())
                        .or_default() += 1;
                    let canned = routes.read().unwrap().get(req.path()).cloned();
                    match canned {
                        Some(Canned::Body(body)) => {
                            let tag = etag(&body);
                            let matches = req
                                .headers()
                                .get("if-none-match")
                                .is_some_and(|v| v.to_str().ok() == Some(tag.as_str()));
                            if matches {
                                *hits
                                    .write()
                                    .unwrap()
                                    .entry(format!("304 {}", req.path()))
                                    .or_default() += 1;
                                return HttpResponse::NotModified().finish();
                            }
                            HttpResponse::Ok()
                                .content_type("application/json")
                                .insert_header(("ETag", tag))
                                .insert_header(("Last-Modified", "Thu, 01 Jan 2026 00:00:00 GMT"))
                                .body(body)
                        }
                        Some(Canned::Hang) => {
                            actix_web::rt::time::sleep(Duration::from_secs(3600)).await;
                            HttpResponse::Ok().finish()
                        }
                        Some(Canned::Trickle(body)) => {
                            let chunks = futures_util::stream::iter(body).then(|byte| async move {
                                actix_web::rt::time::sleep(Duration::from_millis(100)).await;
                                Ok::<_, actix_web::Error>(web::Bytes::from(vec![byte]))
                            });
                            HttpResponse::Ok()
                                .content_type("application/json")
                                .streaming(chunks)
                        }
                        Some(Canned::RetryAfter(seconds)) => HttpResponse::TooManyRequests()
                            .insert_header(("Retry-After", seconds.to_string()))
                            .finish(),
                        Some(Canned::Status(code)) => HttpResponse::build(
                            actix_web::http::StatusCode::from_u16(code).unwrap(),
                        )
                        .finish(),
                        None => HttpResponse::NotFound().finish(),
                    }
                }
            }))
        })
        .workers(1)
        .shutdown_timeout(0)
        .bind(addr)
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Upstream {
            addr,
            routes,
            hits,
            handle,
        }
    }

    /// Serves `body` at `path`.
    pub fn set(&self, path: &str, canned: Canned) {
        self.routes
            .write()
            .unwrap()
            .insert(path.to_string(), canned);
    }

    /// Serves the fixture documents of `stream` at `/<stream>/releases.json`
    /// and `/<stream>/updates.json`.
    pub fn serve_fixture(&self, stream: &str) {
        for doc in ["releases.json", "updates.json"] {
            self.set(
                &format!("/{stream}/{doc}"),
                Canned::Body(std::fs::read(fixture(stream, doc)).unwrap()),
            );
        }
    }

    /// Serves the fixture documents of `source` as those of `stream`.
    pub fn serve_fixture_as(&self, source: &str, stream: &str) {
        for doc in ["releases.json", "updates.json"] {
            let text = std::fs::read_to_string(fixture(source, doc)).unwrap();
            let text = text.replace(
                &format!("\"stream\": \"{source}\""),
                &format!("\"stream\": \"{stream}\""),
            );
            self.set(&format!("/{stream}/{doc}"), Canned::Body(text.into_bytes()));
        }
    }

    /// Requests seen for `path`; `"304 <path>"` counts the 304 answers.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.read().unwrap().get(path).copied().unwrap_or(0)
    }

    /// `[upstream]` lines pointing the graph-builder here.
    pub fn upstream_toml(&self) -> String {
        format!(
            "release_index_url = \"http://{0}/${{stream}}/releases.json\"\nupdates_url = \"http://{0}/${{stream}}/updates.json\"\n",
            self.addr
        )
    }

    /// Stops serving and closes every connection, kept-alive ones too,
    /// before returning: a client's next request finds nothing to reuse
    /// (a stop that does not wait for the worker leaves it a moment in
    /// which an idle connection still answers).
    pub async fn stop(&self) {
        // Graceful only in that it waits for the worker, which, with no
        // shutdown timeout, drops its connections at once.
        self.handle.stop(true).await;
    }
}

/// Path of a fixture file.
pub fn fixture(stream: &str, doc: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(stream)
        .join(doc)
}

/// Graph-builder settings on loopback port 0 reading `upstream`, refreshing
/// every second, for `streams` (TOML `[streams]` lines).
pub fn graph_builder_settings(upstream: &Upstream, streams: &str) -> fcos_graph_builder::Settings {
    let text = format!(
        "[service]\naddress = \"127.0.0.1\"\nport = 0\n[status]\naddress = \"127.0.0.1\"\nport = 0\n[upstream]\n{}refresh_secs = 1\ntimeout_secs = 2\n[streams]\n{streams}\n",
        upstream.upstream_toml()
    );
    let file = commons::config::parse_toml(&text, "test").unwrap();
    fcos_graph_builder::Settings::from_file(file).unwrap()
}

/// Policy-engine settings on loopback port 0 reading `graph_url`, with
/// polls held at most a second.
pub fn policy_engine_settings(graph_url: &str) -> fcos_policy_engine::Settings {
    policy_engine_settings_with(graph_url, "")
}

/// [`policy_engine_settings`] with more `[upstream]` lines.
pub fn policy_engine_settings_with(
    graph_url: &str,
    upstream: &str,
) -> fcos_policy_engine::Settings {
    let text = format!(
        "[service]\naddress = \"127.0.0.1\"\nport = 0\n[status]\naddress = \"127.0.0.1\"\nport = 0\n[upstream]\ngraph_url = \"{graph_url}\"\nwait_secs = 1\ntimeout_secs = 2\n{upstream}"
    );
    let file = commons::config::parse_toml(&text, "test").unwrap();
    fcos_policy_engine::Settings::from_file(file).unwrap()
}

/// The `ETag` of the graph-builder's current scope listing.
pub async fn listing_etag(graph_builder: &Running) -> String {
    let response = client()
        .get(format!("http://{}/v1/scopes", graph_builder.service_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.headers()["etag"].to_str().unwrap().to_string()
}

/// The `/readyz` answer of a service: status and JSON body.
pub async fn readyz(running: &Running) -> (u16, serde_json::Value) {
    let (status, body) = get(&format!("http://{}/readyz", running.status_addr)).await;
    (status, serde_json::from_str(&body).unwrap())
}

/// Waits until the policy-engine follows the graph-builder's current
/// listing.
pub async fn wait_following(policy_engine: &Running, graph_builder: &Running) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let etag = listing_etag(graph_builder).await;
        let (_, body) = readyz(policy_engine).await;
        if body["details"]["listing_etag"].as_str() == Some(etag.as_str()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the policy-engine never followed listing {etag}: {body}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A graph-builder and a policy-engine reading it, time pinned at `now`.
pub struct Stack {
    pub graph_builder: Running,
    pub policy_engine: Running,
}

impl Stack {
    pub fn start(upstream: &Upstream, streams: &str, now: i64) -> Stack {
        Stack::start_with(upstream, streams, now, "")
    }

    /// A stack whose policy-engine configuration has `extra` appended (more
    /// `[upstream]` lines, then other sections).
    pub fn start_with(upstream: &Upstream, streams: &str, now: i64, extra: &str) -> Stack {
        let graph_builder =
            fcos_graph_builder::start(graph_builder_settings(upstream, streams)).unwrap();
        let graph_url = format!("http://{}/v1/graph", graph_builder.service_addr);
        let policy_engine = fcos_policy_engine::start_with_clock(
            policy_engine_settings_with(&graph_url, extra),
            Arc::new(move || now),
        )
        .unwrap();
        Stack {
            graph_builder,
            policy_engine,
        }
    }

    /// Waits until the graph-builder is ready and the policy-engine
    /// follows it.
    pub async fn wait_ready(&self) {
        wait_ready(&self.graph_builder).await;
        wait_following(&self.policy_engine, &self.graph_builder).await;
    }

    pub fn gb(&self, query: &str) -> String {
        format!(
            "http://{}/v1/graph?{query}",
            self.graph_builder.service_addr
        )
    }

    pub fn pe(&self, query: &str) -> String {
        format!(
            "http://{}/v1/graph?{query}",
            self.policy_engine.service_addr
        )
    }

    pub async fn stop(self) {
        self.graph_builder.stop().await.unwrap();
        self.policy_engine.stop().await.unwrap();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// GETs `url` and returns status and body.
pub async fn get(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// GETs `url`, expects 200 and a graph.
pub async fn get_graph(url: &str) -> serde_json::Value {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Polls `url` until it answers `status`, for at most 15 seconds.
pub async fn wait_for_status(url: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(response) = client().get(url).send().await {
            if response.status().as_u16() == status {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{url} never answered {status}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the status port of `running` says ready.
pub async fn wait_ready(running: &Running) {
    wait_for_status(&format!("http://{}/readyz", running.status_addr), 200).await;
}

/// The versions of a graph's nodes.
pub fn versions(graph: &serde_json::Value) -> Vec<String> {
    graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["version"].as_str().unwrap().to_string())
        .collect()
}

/// A graph's edges as `(from version, to version)`, sorted.
pub fn edges(graph: &serde_json::Value) -> Vec<(String, String)> {
    let names = versions(graph);
    let mut edges: Vec<(String, String)> = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let from = e[0].as_u64().unwrap() as usize;
            let to = e[1].as_u64().unwrap() as usize;
            (names[from].clone(), names[to].clone())
        })
        .collect();
    edges.sort();
    edges
}

/// `[(from, to)]` of string slices, sorted, for comparisons.
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}

/// Reads a metric's value from a Prometheus text page (first sample whose
/// line starts with `series`).
pub async fn metric(status_addr: SocketAddr, series: &str) -> Option<f64> {
    let (_, text) = get(&format!("http://{status_addr}/metrics")).await;
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Polls a metric until `accept` holds, for at most 15 seconds; returns its
/// value.
pub async fn wait_metric(
    status_addr: SocketAddr,
    series: &str,
    accept: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = metric(status_addr, series).await {
            if accept(value) {
                return value;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{series} never reached the expected value"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The fixture documents of `stream` with one more release, `33.1.0`, a
/// barrier with an x86_64 commit: a visible, valid change.
pub fn fixture_with_new_release(stream: &str) -> (Vec<u8>, Vec<u8>) {
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture(stream, "releases.json")).unwrap()).unwrap();
    index["releases"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "version": "33.1.0",
            "commits": [{"architecture": "x86_64", "checksum": "c33-1-x86"}]
        }));
    let mut updates: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture(stream, "updates.json")).unwrap()).unwrap();
    updates["releases"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"version": "33.1.0", "metadata": {"barrier": {"reason": "new"}}}));
    (
        index.to_string().into_bytes(),
        updates.to_string().into_bytes(),
    )
}

/// The real `fcos-cincinnati serve` binary on loopback ports, reading an
/// upstream, with a policy file; killed when dropped.
pub struct ServedWithPolicy {
    /// The process, its log read as it comes.
    pub process: Process,
    /// The policy-engine's service and status ports.
    pub pe: SocketAddr,
    pub pe_status: SocketAddr,
    /// The graph-builder's service port.
    pub gb: SocketAddr,
    /// The policy file in force (rewrite it to reload).
    pub policy: PathBuf,
    /// Holds the policy and configuration files.
    pub dir: tempfile::TempDir,
}

/// Starts `fcos-cincinnati serve` reading `upstream`, building the
/// `[graph-builder.streams]` given as TOML lines in `streams`, with a
/// policy file holding `policy_text`; `extra` is more TOML for the
/// configuration. Returns once both services log their addresses.
pub async fn serve_with_policy(
    upstream: &Upstream,
    streams: &str,
    policy_text: &str,
    extra: &str,
) -> ServedWithPolicy {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, policy_text).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[graph-builder.service]\naddress = \"127.0.0.1\"\nport = 0\n[graph-builder.status]\naddress = \"127.0.0.1\"\nport = 0\n[graph-builder.upstream]\n{}refresh_secs = 1\n[graph-builder.streams]\n{streams}\n[policy-engine.service]\naddress = \"127.0.0.1\"\nport = 0\n[policy-engine.status]\naddress = \"127.0.0.1\"\nport = 0\n[policy-engine.policy]\npath = \"{}\"\n{extra}",
            upstream.upstream_toml(),
            policy.display()
        ),
    )
    .unwrap();
    let mut process = Process::spawn(
        std::process::Command::new(env!("CARGO_BIN_EXE_fcos-cincinnati"))
            .args(["serve", "-c"])
            .arg(&config),
    );
    let gb_line = process.line_with("graph-builder listening").await;
    let pe_line = process.line_with("policy-engine listening").await;
    ServedWithPolicy {
        pe: logged_addr(&pe_line, "service_addr"),
        pe_status: logged_addr(&pe_line, "status_addr"),
        gb: logged_addr(&gb_line, "service_addr"),
        process,
        policy,
        dir,
    }
}

/// Polls of nodes as Zincati sends them to the policy-engine at `pe` (its
/// service port), on `stream` x86_64 (`oci`: the OCI graph), each node
/// with its own UUID (`first_node` on), of `group` and `platform` and of
/// rollout wariness `wariness`: every node polls from `from` (and is
/// offered `to`), then from `to` (it arrived), then the first
/// `rolled_back` of them from `from` again (they rolled back: a node is
/// counted so when `to` is still the update it was last offered, so `to`
/// must offer it none).
#[allow(clippy::too_many_arguments)]
pub async fn roll_back(
    pe: SocketAddr,
    stream: &str,
    oci: bool,
    (from, to): (&str, &str),
    (group, platform, wariness): (&str, &str, f64),
    (first_node, nodes): (u32, u32),
    rolled_back: u32,
) {
    let poll = |node: u32, version: &str| {
        let mut query = format!(
            "http://{pe}/v1/graph?basearch=x86_64&stream={stream}&os_version={version}&node_uuid={node:032x}&rollout_wariness={wariness}&group={group}&platform={platform}"
        );
        if oci {
            query.push_str("&oci=true");
        }
        query
    };
    let nodes = first_node..first_node + nodes;
    for version in [from, to] {
        for node in nodes.clone() {
            assert_eq!(get(&poll(node, version)).await.0, 200);
        }
    }
    for node in nodes.take(rolled_back as usize) {
        assert_eq!(get(&poll(node, from)).await.0, 200);
    }
}
