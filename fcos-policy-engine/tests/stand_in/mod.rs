//! A stand-in graph-builder whose answers each test crafts (a real HTTP
//! server on `127.0.0.1:0`), and the real `fcos-policy-engine` binary
//! following it.

#![allow(dead_code)]

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use service_kit::web::GraphBody;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_support::{logged_addr, Process};

const BIN: &str = env!("CARGO_BIN_EXE_fcos-policy-engine");

/// What the stand-in graph-builder answers for a listing or a graph.
#[derive(Clone)]
pub enum Answer {
    /// 200 with this JSON and its `ETag`; 304 to a matching
    /// `If-None-Match` when `conditional`, as the graph-builder does.
    Json { body: Vec<u8>, conditional: bool },
    /// This status, empty body.
    Status(u16),
    /// 200 with `len` zero bytes streamed in 1 MiB chunks, announced in
    /// `Content-Length` when `announced` (chunked otherwise).
    Huge { len: u64, announced: bool },
}

/// One MiB of zeroes, streamed again and again (nothing large is
/// allocated by the test).
static ZEROES: [u8; 1 << 20] = [0; 1 << 20];

/// A stand-in graph-builder: a real HTTP server on `127.0.0.1:0` answering
/// `/v1/scopes` and `/v1/graph?…` as set, counting the requests.
pub struct FakeGraphBuilder {
    pub addr: SocketAddr,
    pub answers: Arc<Mutex<HashMap<String, Answer>>>,
    pub hits: Arc<Mutex<HashMap<String, usize>>>,
    pub handle: actix_web::dev::ServerHandle,
}

/// The key of a request: `/v1/scopes`, or `stream/basearch/oci` for a
/// graph.
pub fn key_of(req: &HttpRequest) -> String {
    if req.path() != "/v1/graph" {
        return req.path().to_string();
    }
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let field = |name: &str| query.get(name).cloned().unwrap_or_default();
    format!("{}/{}/{}", field("stream"), field("basearch"), field("oci"))
}

impl FakeGraphBuilder {
    pub fn start() -> FakeGraphBuilder {
        let answers: Arc<Mutex<HashMap<String, Answer>>> = Arc::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (a, h) = (Arc::clone(&answers), Arc::clone(&hits));
        let server = HttpServer::new(move || {
            let (answers, hits) = (Arc::clone(&a), Arc::clone(&h));
            App::new().default_service(web::to(move |req: HttpRequest| {
                let key = key_of(&req);
                *hits.lock().unwrap().entry(key.clone()).or_default() += 1;
                let answer = answers.lock().unwrap().get(&key).cloned();
                async move {
                    match answer {
                        Some(Answer::Json { body, conditional }) => {
                            let tag = etag(&body);
                            let matches = req
                                .headers()
                                .get("if-none-match")
                                .is_some_and(|v| v.to_str().ok() == Some(tag.as_str()));
                            if conditional && matches {
                                // Held as the graph-builder holds a poll.
                                actix_web::rt::time::sleep(Duration::from_millis(500)).await;
                                return HttpResponse::NotModified().finish();
                            }
                            HttpResponse::Ok()
                                .content_type("application/json")
                                .insert_header(("ETag", tag))
                                .body(body)
                        }
                        Some(Answer::Status(code)) => HttpResponse::build(
                            actix_web::http::StatusCode::from_u16(code).unwrap(),
                        )
                        .finish(),
                        Some(Answer::Huge { len, announced }) => {
                            let chunks =
                                futures_util::stream::unfold(0u64, move |sent| async move {
                                    (sent < len).then(|| {
                                        let n = (len - sent).min(ZEROES.len() as u64);
                                        let chunk = web::Bytes::from_static(&ZEROES[..n as usize]);
                                        (Ok::<_, actix_web::Error>(chunk), sent + n)
                                    })
                                });
                            let mut response = HttpResponse::Ok();
                            response.content_type("application/json");
                            if announced {
                                response.no_chunking(len);
                            }
                            response.streaming(chunks)
                        }
                        None => HttpResponse::NotFound().finish(),
                    }
                }
            }))
        })
        .workers(1)
        .shutdown_timeout(0)
        .bind("127.0.0.1:0")
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        FakeGraphBuilder {
            addr,
            answers,
            hits,
            handle,
        }
    }

    pub fn set(&self, key: &str, answer: Answer) {
        self.answers.lock().unwrap().insert(key.to_string(), answer);
    }

    /// Answers `/v1/scopes` with `body` (conditionally).
    pub fn set_listing(&self, body: Vec<u8>) {
        self.set(
            "/v1/scopes",
            Answer::Json {
                body,
                conditional: true,
            },
        );
    }

    /// Answers both schemes of `stream`/`basearch` with `answer`.
    pub fn set_graphs(&self, stream: &str, basearch: &str, answer: Answer) {
        for oci in ["false", "true"] {
            self.set(&format!("{stream}/{basearch}/{oci}"), answer.clone());
        }
    }

    /// Answers both schemes of `stream`/`basearch` with the graph `body`.
    pub fn set_graph(&self, stream: &str, basearch: &str, body: &[u8]) {
        self.set_graphs(
            stream,
            basearch,
            Answer::Json {
                body: body.to_vec(),
                conditional: false,
            },
        );
    }

    pub fn hits(&self, key: &str) -> usize {
        self.hits.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    pub fn graph_url(&self) -> String {
        format!("http://{}/v1/graph", self.addr)
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

/// The `ETag` the graph-builder gives `body`.
pub fn etag(body: &[u8]) -> String {
    GraphBody::new(body.to_vec()).etag().to_string()
}

/// A valid graph of one release, `version`, its payload padded to `pad`
/// bytes.
pub fn graph_padded(version: &str, pad: usize) -> Vec<u8> {
    let payload = format!("p-{version}-{}", "x".repeat(pad));
    format!(
        r#"{{"nodes":[{{"version":"{version}","metadata":{{"org.fedoraproject.coreos.releases.age_index":"0","org.fedoraproject.coreos.scheme":"checksum"}},"payload":"{payload}"}}],"edges":[]}}"#
    )
    .into_bytes()
}

pub fn graph(version: &str) -> Vec<u8> {
    graph_padded(version, 0)
}

/// A listing of both schemes of each `(stream, basearch)` whose graph has
/// the `ETag` of `graph`.
pub fn listing(scopes: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let entries: Vec<serde_json::Value> = scopes
        .iter()
        .flat_map(|(stream, basearch, graph)| {
            [false, true].map(|oci| {
                serde_json::json!({"stream": stream, "basearch": basearch, "oci": oci, "etag": etag(graph)})
            })
        })
        .collect();
    serde_json::json!({ "scopes": entries })
        .to_string()
        .into_bytes()
}

/// The policy-engine binary, started with `extra` appended to its
/// `[upstream]` section, and its addresses.
pub struct PolicyEngine {
    pub process: Process,
    pub service: SocketAddr,
    pub status: SocketAddr,
    pub _config: tempfile::NamedTempFile,
}

impl PolicyEngine {
    pub async fn start(graph_url: &str, extra: &str) -> PolicyEngine {
        PolicyEngine::start_with(graph_url, extra, None).await
    }

    /// Started by `sh` after `ulimit -f blocks`, when given.
    pub async fn start_with(graph_url: &str, extra: &str, ulimit_f: Option<u32>) -> PolicyEngine {
        let config = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            config.path(),
            format!(
                "[service]\naddress = \"127.0.0.1\"\nport = 0\n[status]\naddress = \"127.0.0.1\"\nport = 0\n[upstream]\ngraph_url = \"{graph_url}\"\nwait_secs = 1\ntimeout_secs = 2\n{extra}"
            ),
        )
        .unwrap();
        let mut command = match ulimit_f {
            Some(blocks) => {
                let mut command = Command::new("sh");
                command
                    .arg("-c")
                    .arg(format!("ulimit -f {blocks} && exec \"$0\" \"$@\""))
                    .arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        command.arg("-v").arg("-c").arg(config.path());
        let mut process = Process::spawn(&mut command);
        let line = process.line_with("policy-engine listening").await;
        PolicyEngine {
            service: logged_addr(&line, "service_addr"),
            status: logged_addr(&line, "status_addr"),
            process,
            _config: config,
        }
    }

    pub fn graph_url(&self, stream: &str, basearch: &str, oci: bool) -> String {
        format!(
            "http://{}/v1/graph?basearch={basearch}&stream={stream}&oci={oci}",
            self.service
        )
    }

    /// The status and body the policy-engine answers for a scope.
    pub async fn graph(&self, stream: &str, basearch: &str, oci: bool) -> (u16, String) {
        get(&self.graph_url(stream, basearch, oci)).await
    }

    /// Waits until a scope is served with `version` in it.
    pub async fn wait_serving(&self, stream: &str, basearch: &str, oci: bool, version: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = self.graph(stream, basearch, oci).await;
            if status == 200 && body.contains(&format!("\"version\":\"{version}\"")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{stream}/{basearch} never served {version}: {status} {body}\n{}",
                self.process.log()
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = get(&format!("http://{}/metrics", self.status)).await;
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Waits until `series` passes `accept`; returns its value.
    pub async fn wait_metric(&self, series: &str, accept: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(value) = self.metric(series).await {
                if accept(value) {
                    return value;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{series} never reached the expected value: {:?}\n{}",
                self.metric(series).await,
                self.process.log()
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn readyz(&self) -> (u16, serde_json::Value) {
        let (status, body) = get(&format!("http://{}/readyz", self.status)).await;
        (status, serde_json::from_str(&body).unwrap())
    }
}

pub async fn get(url: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}
