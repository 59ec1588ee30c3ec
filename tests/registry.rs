//! The registry source against a real registry: the CNCF distribution
//! registry (Debian's `docker-registry`) started on loopback by each test,
//! images made by the test (a config with labels and an empty layer per
//! architecture, an image index over them) pushed through the registry API.
//! Where a registry cannot be made to fail on purpose (429, a corrupt
//! manifest) or needs a token service of its own (the bearer token flow of
//! quay.io and ghcr.io), a real HTTP server serves the same documents.
//!
//! Without `docker-registry` installed these tests say so and pass, except
//! under `CI=true`, where they fail.

mod support;

use commons::metadata;
use fcos_graph_builder::config::{RegistryFile, RegistrySettings};
use fcos_graph_builder::registry::{RegistryMetrics, RegistryScraper};
use fcos_graph_builder::scraper::{Refreshed, ScraperMetrics};
use fcos_graph_builder::store::GraphStore;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// User and password of the htpasswd-protected registry, and the bcrypt
/// line `htpasswd -Bbn -C 5 fcos s3cret-pass` wrote for them.
const USER: &str = "fcos";
const PASSWORD: &str = "s3cret-pass";
const HTPASSWD: &str = "fcos:$2y$05$xiePGn.JND13mIvH83Gt3uvaHkkZ7pQGGlI2Dpnisp4goZ912t4MO\n";

/// The repository's path in the registry.
const NAME: &str = "me/my-fcos";

/// A distribution registry on a free loopback port, its storage and
/// access log in a temporary directory; stopped when dropped.
struct LocalRegistry {
    child: Child,
    /// The client pushing images (one, its connections kept).
    http: reqwest::Client,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    auth: Option<(String, String)>,
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LocalRegistry {
    /// Starts a registry (with basic authentication when `protected`), or
    /// `None` when `docker-registry` is not installed and `CI` is not set.
    async fn start(protected: bool) -> Option<LocalRegistry> {
        let installed = Command::new("docker-registry")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "docker-registry is not installed (apt-get install docker-registry)"
            );
            eprintln!(
                "SKIPPED: docker-registry is not installed (apt-get install docker-registry)"
            );
            return None;
        }
        // The registry cannot report a port it picked: pick a free one.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let auth = if protected {
            std::fs::write(dir.path().join("htpasswd"), HTPASSWD).unwrap();
            format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            )
        } else {
            String::new()
        };
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  inmemory: {{}}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: test-secret\n{auth}"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("access.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = LocalRegistry {
            child,
            http: client(),
            addr,
            dir,
            auth: protected.then(|| (USER.to_string(), PASSWORD.to_string())),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while client()
            .get(format!("http://{addr}/v2/"))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the registry never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(registry)
    }

    fn repository(&self) -> String {
        format!("{}/{NAME}", self.addr)
    }

    /// Requests the registry has answered so far (its access log has one
    /// line per request).
    fn requests(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"GET /v2/") || l.contains("\"HEAD /v2/"))
            .count()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/v2/{NAME}/{path}", self.addr)
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.auth {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    /// Uploads a blob unless `check` and the registry has it.
    async fn push_blob(&self, body: &[u8], check: bool) -> String {
        let digest = sha256(body);
        if check {
            let head = self
                .request(reqwest::Method::HEAD, &self.url(&format!("blobs/{digest}")))
                .send()
                .await
                .unwrap();
            if head.status() == 200 {
                return digest;
            }
        }
        let started = self
            .request(reqwest::Method::POST, &self.url("blobs/uploads/"))
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 202);
        let location = started.headers()["location"].to_str().unwrap().to_string();
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = self
            .request(
                reqwest::Method::PUT,
                &format!("{location}{separator}digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201, "{}", put.text().await.unwrap());
        digest
    }

    async fn put_manifest(&self, reference: &str, media_type: &str, body: &[u8]) -> String {
        let response = self
            .request(
                reqwest::Method::PUT,
                &self.url(&format!("manifests/{reference}")),
            )
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        sha256(body)
    }

    /// Pushes an image of each of `versions`, of stream `mine`, under its
    /// version as its tag.
    async fn push_versions(&self, versions: &[&str]) {
        for version in versions {
            self.push(version, &TestImage::new(version, "mine")).await;
        }
    }

    /// Pushes `image` under `tag` and returns what it pushed.
    async fn push(&self, tag: &str, image: &TestImage) -> Pushed {
        let documents = image.documents();
        // The layer is shared by every image; each config is new.
        for (position, blob) in documents.blobs.iter().enumerate() {
            self.push_blob(blob, position == 0).await;
        }
        for manifest in &documents.manifests {
            self.put_manifest(&sha256(manifest), OCI_MANIFEST, manifest)
                .await;
        }
        self.put_manifest(tag, OCI_INDEX, &documents.index).await;
        documents.pushed
    }

    /// Deletes the manifest `digest` and with it every tag naming it.
    async fn delete(&self, digest: &str) {
        let response = self
            .request(
                reqwest::Method::DELETE,
                &self.url(&format!("manifests/{digest}")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
}

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha256(bytes: &[u8]) -> String {
    fcos_graph_builder::registry::client::sha256_digest(bytes)
}

/// An empty tar archive: the one layer of every test image.
fn empty_layer() -> Vec<u8> {
    vec![0; 1024]
}

/// A multi-architecture test image.
#[derive(Clone)]
struct TestImage {
    version: String,
    /// The `com.coreos.stream` label, if any.
    stream: Option<String>,
    /// The `fedora-coreos.stream` annotation of each image manifest, if any.
    annotation: Option<String>,
    /// Container architectures.
    arches: Vec<&'static str>,
    created: String,
    /// Makes otherwise identical images differ (a rebuild).
    build: u32,
}

impl TestImage {
    fn new(version: &str, stream: &str) -> TestImage {
        TestImage {
            version: version.to_string(),
            stream: Some(stream.to_string()),
            annotation: None,
            arches: vec!["amd64", "arm64"],
            created: "2026-01-01T00:00:00Z".to_string(),
            build: 0,
        }
    }

    fn documents(&self) -> Documents {
        let layer = empty_layer();
        let layer_digest = sha256(&layer);
        let mut blobs = vec![layer.clone()];
        let mut manifests = Vec::new();
        let mut entries = Vec::new();
        let mut images = BTreeMap::new();
        for arch in &self.arches {
            let mut labels = json!({
                "org.opencontainers.image.version": self.version,
                "org.opencontainers.image.created": self.created,
                "build": self.build.to_string(),
            });
            if let Some(stream) = &self.stream {
                labels["com.coreos.stream"] = json!(stream);
            }
            let config = serde_json::to_vec(&json!({
                "architecture": arch,
                "os": "linux",
                "created": self.created,
                "config": {"Labels": labels},
                "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            }))
            .unwrap();
            let mut manifest = json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": sha256(&config), "size": config.len()},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": layer_digest, "size": layer.len()}],
            });
            if let Some(stream) = &self.annotation {
                manifest["annotations"] = json!({"fedora-coreos.stream": stream});
            }
            let manifest = serde_json::to_vec(&manifest).unwrap();
            entries.push(json!({
                "mediaType": OCI_MANIFEST,
                "digest": sha256(&manifest),
                "size": manifest.len(),
                "platform": {"architecture": arch, "os": "linux"},
            }));
            let basearch = fcos_graph_builder::registry::basearch_of(arch).unwrap();
            images.insert(basearch.to_string(), sha256(&manifest));
            blobs.push(config);
            manifests.push(manifest);
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries,
        }))
        .unwrap();
        Documents {
            pushed: Pushed {
                index: sha256(&index),
                images,
            },
            blobs,
            manifests,
            index,
        }
    }
}

/// Everything one image is made of.
struct Documents {
    pushed: Pushed,
    blobs: Vec<Vec<u8>>,
    manifests: Vec<Vec<u8>>,
    index: Vec<u8>,
}

/// Digests of a pushed image: its index, and its image of each basearch.
#[derive(Debug, Clone)]
struct Pushed {
    index: String,
    images: BTreeMap<String, String>,
}

/// The graph-builder's `[registry]` settings for `repository`.
fn registry_settings(repository: &str, extra: &str) -> RegistrySettings {
    let file: RegistryFile =
        commons::config::parse_toml(&format!("repository = \"{repository}\"\n{extra}"), "test")
            .unwrap();
    RegistrySettings::from_file(file).unwrap()
}

/// A registry scraper publishing into its own store.
fn scraper(settings: RegistrySettings) -> (RegistryScraper, GraphStore, prometheus::Registry) {
    let metrics_registry = prometheus::Registry::new();
    let store = GraphStore::new(BTreeMap::new()).with_registry();
    let scraper = RegistryScraper::new(
        settings,
        Duration::from_secs(5),
        Duration::from_secs(1),
        fcos_graph_builder::fetch::Fetcher::new(Duration::from_secs(5), 1 << 20).unwrap(),
        store.clone(),
        RegistryMetrics::register(&metrics_registry).unwrap(),
        ScraperMetrics::register(&metrics_registry).unwrap(),
    )
    .unwrap();
    (scraper, store, metrics_registry)
}

/// The OCI graph of `stream`/`basearch` in `store`.
fn stored_graph(store: &GraphStore, stream: &str, basearch: &str) -> serde_json::Value {
    let body = store
        .get(stream, basearch, commons::graph::Scheme::Oci)
        .unwrap();
    serde_json::from_slice(body.json()).unwrap()
}

fn error_count(registry: &prometheus::Registry, kind: &str) -> f64 {
    let text = String::from_utf8(service_kit::metrics::render(registry)).unwrap();
    let series = format!("fcos_cincinnati_gb_registry_errors_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap()
        .parse()
        .unwrap()
}

/// Graph-builder settings serving the fixture `stable` from `upstream` and
/// the registry streams of `repository`, refreshing every second.
fn side_by_side_settings(upstream: &Upstream, repository: &str) -> fcos_graph_builder::Settings {
    let text = format!(
        "[service]\naddress = \"127.0.0.1\"\nport = 0\n[status]\naddress = \"127.0.0.1\"\nport = 0\n[upstream]\n{}refresh_secs = 1\ntimeout_secs = 2\n[streams]\nstable = [\"x86_64\"]\n[registry]\nrepository = \"{repository}\"\ntags = \"v?[0-9.]+|latest\"\n",
        upstream.upstream_toml()
    );
    <fcos_graph_builder::Settings as commons::config::ServiceSettings>::from_file(
        commons::config::parse_toml(&text, "test").unwrap(),
    )
    .unwrap()
}

/// Polls the OCI graph of `scope` (`stream=…&basearch=…`) until `accept`
/// holds, for at most 15 seconds.
async fn wait_graph(
    gb: SocketAddr,
    scope: &str,
    accept: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let url = format!("http://{gb}/v1/graph?{scope}&oci=true");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get(&url).await;
        if status == 200 {
            let graph: serde_json::Value = serde_json::from_str(&body).unwrap();
            if accept(&graph) {
                return graph;
            }
        }
        assert!(Instant::now() < deadline, "{url} never as expected: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn registry_streams_follow_the_registry_beside_the_release_index() {
    let Some(registry) = LocalRegistry::start(false).await else {
        return;
    };
    let repository = registry.repository();
    let one = registry
        .push(
            "43.20260105.3.0",
            &TestImage::new("43.20260105.3.0", "mine"),
        )
        .await;
    let two = registry
        .push(
            "43.20260119.3.0",
            &TestImage::new("43.20260119.3.0", "mine"),
        )
        .await;
    // The same image under a moving tag is the same release.
    registry
        .push("latest", &TestImage::new("43.20260119.3.0", "mine"))
        .await;
    // A tag the `tags` expression leaves out.
    registry
        .push("scratch", &TestImage::new("1.0", "other"))
        .await;
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let gb = fcos_graph_builder::start(side_by_side_settings(&upstream, &repository)).unwrap();
    wait_ready(&gb).await;
    let addr = gb.service_addr;
    // The scopes found are counted from 0, before any request for them.
    for basearch in ["aarch64", "x86_64"] {
        let series = format!(
            r#"fcos_cincinnati_gb_cache_graph_requests_total{{basearch="{basearch}",stream="mine",type="oci"}}"#
        );
        assert_eq!(metric(gb.status_addr, &series).await, Some(0.0), "{series}");
    }

    // Both architectures; payloads are the repository at each image's digest.
    for (basearch, pushed) in [("x86_64", &one), ("aarch64", &two)] {
        let graph = wait_graph(addr, &format!("stream=mine&basearch={basearch}"), |_| true).await;
        assert_eq!(versions(&graph), ["43.20260105.3.0", "43.20260119.3.0"]);
        assert_eq!(
            edges(&graph),
            pairs(&[("43.20260105.3.0", "43.20260119.3.0")])
        );
        let payloads: Vec<&str> = graph["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["payload"].as_str().unwrap())
            .collect();
        assert!(payloads.contains(&format!("{repository}@{}", pushed.images[basearch]).as_str()));
        assert_eq!(graph["nodes"][1]["metadata"][metadata::ROLLOUT], "true");
        assert_eq!(graph["nodes"][1]["metadata"][metadata::START_VALUE], "1");
    }
    // Registry streams serve the OCI graph only; Fedora's stream is served
    // beside them; the left-out tag's stream is nowhere.
    let (status, body) = get(&format!(
        "http://{addr}/v1/graph?stream=mine&basearch=x86_64"
    ))
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["kind"],
        "unknown_scope"
    );
    let stable = get_graph(&format!(
        "http://{addr}/v1/graph?stream=stable&basearch=x86_64"
    ))
    .await;
    assert!(!versions(&stable).is_empty());
    let streams: serde_json::Value =
        serde_json::from_str(&get(&format!("http://{addr}/v1/streams")).await.1).unwrap();
    assert_eq!(streams["mine"], json!(["aarch64", "x86_64"]));
    assert_eq!(streams["stable"], json!(["x86_64"]));
    assert!(streams.get("other").is_none(), "{streams}");
    let scopes: serde_json::Value =
        serde_json::from_str(&get(&format!("http://{addr}/v1/scopes")).await.1).unwrap();
    let mine: Vec<&serde_json::Value> = scopes["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["stream"] == "mine")
        .collect();
    assert_eq!(mine.len(), 2);
    assert!(mine
        .iter()
        .all(|s| s["oci"] == true && s["etag"].is_string()));

    // A new tag is in the graph within a refresh.
    let three = registry
        .push(
            "43.20260202.3.0",
            &TestImage::new("43.20260202.3.0", "mine"),
        )
        .await;
    let graph = wait_graph(addr, "stream=mine&basearch=x86_64", |g| {
        versions(g).len() == 3
    })
    .await;
    assert_eq!(
        edges(&graph),
        pairs(&[
            ("43.20260105.3.0", "43.20260119.3.0"),
            ("43.20260105.3.0", "43.20260202.3.0"),
            ("43.20260119.3.0", "43.20260202.3.0"),
        ])
    );

    // A deleted tag goes.
    registry.delete(&one.index).await;
    wait_graph(addr, "stream=mine&basearch=x86_64", |g| {
        versions(g) == ["43.20260119.3.0", "43.20260202.3.0"]
    })
    .await;

    // `latest` moved to a rebuild of a version already served: refused,
    // counted, the served digest kept.
    let mut rebuild = TestImage::new("43.20260202.3.0", "mine");
    rebuild.build = 1;
    let moved = registry.push("latest", &rebuild).await;
    let status = gb.status_addr;
    wait_metric(
        status,
        r#"fcos_cincinnati_gb_registry_errors_total{kind="moved_tag"}"#,
        |v| v >= 1.0,
    )
    .await;
    let graph = wait_graph(addr, "stream=mine&basearch=x86_64", |_| true).await;
    let newest = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["version"] == "43.20260202.3.0")
        .unwrap();
    assert_eq!(
        newest["payload"],
        format!("{repository}@{}", three.images["x86_64"])
    );
    assert_ne!(three.images["x86_64"], moved.images["x86_64"]);
    gb.stop().await.unwrap();
    upstream.stop().await;
}

#[actix_web::test]
async fn a_node_booted_from_a_derived_image_finds_itself_and_the_newest_release() {
    let Some(registry) = LocalRegistry::start(false).await else {
        return;
    };
    let repository = registry.repository();
    // The stream from the manifest annotation (no label): as Zincati reads it.
    let mut image = TestImage::new("43.20260105.3.0", "unused");
    image.stream = None;
    image.annotation = Some("mine".to_string());
    let booted = registry.push("43.20260105.3.0", &image).await;
    for version in ["43.20260119.3.0", "43.20260202.3.0"] {
        let mut image = TestImage::new(version, "unused");
        image.stream = None;
        image.annotation = Some("mine".to_string());
        registry.push(version, &image).await;
    }
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let gb = fcos_graph_builder::start(side_by_side_settings(&upstream, &repository)).unwrap();
    let pe = fcos_policy_engine::start_with_clock(
        policy_engine_settings(&format!("http://{}/v1/graph", gb.service_addr)),
        std::sync::Arc::new(|| 1_800_000_000),
    )
    .unwrap();
    wait_ready(&gb).await;
    wait_graph(gb.service_addr, "stream=mine&basearch=aarch64", |g| {
        versions(g).len() == 3
    })
    .await;
    wait_following(&pe, &gb).await;

    // Zincati's request, as it sends it from a node booted from the image.
    let pullspec = format!("{repository}@{}", booted.images["aarch64"]);
    let query = format!(
        "node_uuid=0d7ba5b5c2a14b6a9f3f0a6b9a7f0e21&os_checksum={pullspec}&platform=qemu&oci=true&stream=mine&basearch=aarch64&group=default&os_version=43.20260105.3.0"
    );
    let graph = get_graph(&format!("http://{}/v1/graph?{query}", pe.service_addr)).await;
    let nodes = graph["nodes"].as_array().unwrap();
    let own = nodes
        .iter()
        .position(|n| n["payload"] == pullspec.as_str())
        .expect("the node finds its own payload");
    assert_eq!(nodes[own]["version"], "43.20260105.3.0");
    let target = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e[0].as_u64() == Some(own as u64))
        .map(|e| &nodes[e[1].as_u64().unwrap() as usize])
        .max_by_key(|n| {
            n["metadata"][metadata::AGE_INDEX]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .expect("an update is offered");
    assert_eq!(target["version"], "43.20260202.3.0");
    pe.stop().await.unwrap();
    gb.stop().await.unwrap();
    upstream.stop().await;
}

#[actix_web::test]
async fn basic_auth_through_an_htpasswd_registry() {
    let Some(registry) = LocalRegistry::start(true).await else {
        return;
    };
    registry
        .push(
            "43.20260105.3.0",
            &TestImage::new("43.20260105.3.0", "mine"),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let auth_file = |user: &str, password: &str| {
        use base64::Engine;
        let path: PathBuf = dir.path().join(format!("{user}-{password}.json"));
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        std::fs::write(
            &path,
            json!({"auths": {registry.addr.to_string(): {"auth": auth}}}).to_string(),
        )
        .unwrap();
        format!("auth_file = \"{}\"", path.display())
    };

    let (mut good, store, _) = scraper(registry_settings(
        &registry.repository(),
        &auth_file(USER, PASSWORD),
    ));
    assert_eq!(good.refresh_once().await.unwrap(), Refreshed::Published);
    assert_eq!(
        versions(&stored_graph(&store, "mine", "x86_64")),
        ["43.20260105.3.0"]
    );

    for extra in [auth_file(USER, "wrong"), String::new()] {
        let (mut refused, store, metrics) =
            scraper(registry_settings(&registry.repository(), &extra));
        let error = refused.refresh_once().await.unwrap_err();
        assert_eq!(error.kind(), "auth", "{error}");
        assert_eq!(error_count(&metrics, "auth"), 1.0);
        assert!(store.configured().is_empty());
    }
}

#[actix_web::test]
async fn a_build_stopped_by_the_request_cap_ends_at_the_next_refresh() {
    let Some(registry) = LocalRegistry::start(false).await else {
        return;
    };
    for day in 10..30 {
        let version = format!("43.202601{day}.3.0");
        registry
            .push(&version, &TestImage::new(&version, "mine"))
            .await;
    }
    // 20 tags need 1 + 20 × 5 requests: a cap of 60 stops the first
    // refresh; the second goes on from what the first read.
    let (mut scraper, store, metrics) = scraper(registry_settings(
        &registry.repository(),
        "max_requests = 60",
    ));
    let error = scraper.refresh_once().await.unwrap_err();
    assert_eq!(error.kind(), "request_cap", "{error}");
    assert_eq!(scraper.last_requests(), 60);
    assert!(store.configured().is_empty());
    assert_eq!(scraper.refresh_once().await.unwrap(), Refreshed::Published);
    assert_eq!(error_count(&metrics, "request_cap"), 1.0);
    assert_eq!(versions(&stored_graph(&store, "mine", "x86_64")).len(), 20);
}

#[actix_web::test]
async fn five_hundred_tags_in_one_refresh_then_a_new_tag_costs_a_few_requests() {
    let Some(registry) = LocalRegistry::start(false).await else {
        return;
    };
    const TAGS: usize = 500;
    let started = Instant::now();
    let versions_pushed: Vec<String> = (0..TAGS)
        .map(|i| {
            format!(
                "43.2026{:02}{:02}.3.{}",
                1 + i / 28 % 12,
                1 + i % 28,
                i / 336
            )
        })
        .collect();
    for chunk in versions_pushed.chunks(16) {
        futures_util::future::join_all(chunk.iter().map(|v| {
            let registry = &registry;
            async move { registry.push(v, &TestImage::new(v, "mine")).await }
        }))
        .await;
    }
    registry
        .push(
            "latest",
            &TestImage::new(&versions_pushed[TAGS - 1], "mine"),
        )
        .await;
    eprintln!("pushed {TAGS} tags in {:?}", started.elapsed());

    // With the default cap, one refresh builds everything.
    let (mut scraper, store, _) = scraper(registry_settings(&registry.repository(), ""));
    let before = registry.requests();
    let started = Instant::now();
    assert_eq!(scraper.refresh_once().await.unwrap(), Refreshed::Published);
    let first_build = started.elapsed();
    let first_requests = registry.requests() - before;
    assert_eq!(first_requests, scraper.last_requests());
    assert_eq!(
        versions(&stored_graph(&store, "mine", "aarch64")).len(),
        TAGS
    );

    // One more version tag: the list, a HEAD of `latest`, the new index,
    // its two manifests and two configs.
    let newest = "43.20261231.3.0";
    registry.push(newest, &TestImage::new(newest, "mine")).await;
    let before = registry.requests();
    assert_eq!(scraper.refresh_once().await.unwrap(), Refreshed::Published);
    let one_new = registry.requests() - before;
    assert_eq!(one_new, scraper.last_requests());
    assert!(one_new < 10, "{one_new} requests for one new tag");
    let graph = stored_graph(&store, "mine", "x86_64");
    assert_eq!(versions(&graph).last().unwrap(), newest);

    // Nothing new: the list and the HEAD of `latest`.
    let before = registry.requests();
    assert_eq!(scraper.refresh_once().await.unwrap(), Refreshed::Unchanged);
    let unchanged = registry.requests() - before;
    assert_eq!(unchanged, 2);
    eprintln!(
        "registry figures: first build of {TAGS} tags x 2 arches: {first_build:?}, {first_requests} requests; one new tag: {one_new} requests; nothing new: {unchanged} requests"
    );
}

/// The documents of a good image, served by path as a registry would.
fn serve_image(upstream: &Upstream, tag: &str, image: &TestImage) -> Pushed {
    let documents = image.documents();
    let prefix = format!("/v2/{NAME}");
    for blob in &documents.blobs {
        upstream.set(
            &format!("{prefix}/blobs/{}", sha256(blob)),
            Canned::Body(blob.clone()),
        );
    }
    for manifest in &documents.manifests {
        upstream.set(
            &format!("{prefix}/manifests/{}", sha256(manifest)),
            Canned::Body(manifest.clone()),
        );
    }
    upstream.set(
        &format!("{prefix}/manifests/{tag}"),
        Canned::Body(documents.index.clone()),
    );
    documents.pushed
}

/// A registry serving one image under one tag, and a scraper that has
/// published its graph (`good`).
struct OneImage {
    upstream: Upstream,
    /// The path of the tag list.
    tags: String,
    scraper: RegistryScraper,
    store: GraphStore,
    metrics: prometheus::Registry,
    good: serde_json::Value,
}

async fn one_image() -> OneImage {
    let upstream = Upstream::start();
    let tags = format!("/v2/{NAME}/tags/list");
    serve_image(
        &upstream,
        "43.20260105.3.0",
        &TestImage::new("43.20260105.3.0", "mine"),
    );
    upstream.set(
        &tags,
        Canned::Body(br#"{"name":"me/my-fcos","tags":["43.20260105.3.0"]}"#.to_vec()),
    );
    let repository = format!("{}/{NAME}", upstream.addr);
    let (mut scraper, store, metrics) = scraper(registry_settings(&repository, ""));
    assert_eq!(scraper.refresh_once().await.unwrap(), Refreshed::Published);
    let good = stored_graph(&store, "mine", "x86_64");
    OneImage {
        upstream,
        tags,
        scraper,
        store,
        metrics,
        good,
    }
}

#[actix_web::test]
async fn registry_failures_keep_the_last_good_graph_and_are_counted() {
    let OneImage {
        upstream,
        tags,
        mut scraper,
        store,
        metrics,
        good,
    } = one_image().await;
    assert_eq!(versions(&good), ["43.20260105.3.0"]);

    // A corrupt manifest behind a new tag: the tag is left out, the rest
    // served.
    upstream.set(
        &tags,
        Canned::Body(
            br#"{"name":"me/my-fcos","tags":["43.20260105.3.0","43.20260119.3.0"]}"#.to_vec(),
        ),
    );
    upstream.set(
        &format!("/v2/{NAME}/manifests/43.20260119.3.0"),
        Canned::Body(b"{\"schemaVersion\": 2, \"layers\": 7".to_vec()),
    );
    scraper.refresh_once().await.unwrap();
    assert_eq!(error_count(&metrics, "invalid_manifest"), 1.0);
    assert_eq!(stored_graph(&store, "mine", "x86_64"), good);

    // 401, 429, 500: each refresh fails, counted by kind, the graph stays.
    for (canned, kind) in [
        (Canned::Status(401), "auth"),
        (Canned::Status(429), "rate_limited"),
        (Canned::Status(500), "http_status"),
    ] {
        upstream.set(&tags, canned);
        let error = scraper.refresh_once().await.unwrap_err();
        assert_eq!(error.kind(), kind, "{error}");
        assert_eq!(error_count(&metrics, kind), 1.0);
        assert_eq!(stored_graph(&store, "mine", "x86_64"), good);
        if kind == "rate_limited" {
            // Without Retry-After, no request before the refresh period.
            let hits = upstream.hits(&tags);
            assert_eq!(
                scraper.refresh_once().await.unwrap_err().kind(),
                "rate_limited"
            );
            assert_eq!(upstream.hits(&tags), hits, "a request during the wait");
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    }
    // A Retry-After longer than the refresh period holds requests back
    // for all of it.
    upstream.set(&tags, Canned::RetryAfter(60));
    assert_eq!(
        scraper.refresh_once().await.unwrap_err().kind(),
        "rate_limited"
    );
    let hits = upstream.hits(&tags);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        scraper.refresh_once().await.unwrap_err().kind(),
        "rate_limited"
    );
    assert_eq!(upstream.hits(&tags), hits, "a request within Retry-After");
    assert_eq!(error_count(&metrics, "rate_limited"), 2.0);
    assert_eq!(stored_graph(&store, "mine", "x86_64"), good);
    upstream.stop().await;
}

#[actix_web::test]
async fn a_down_registry_keeps_the_last_good_graph() {
    let OneImage {
        upstream,
        tags,
        mut scraper,
        store,
        metrics,
        good,
    } = one_image().await;
    // The tag list is asked for with its ETag: 304, nothing else asked.
    assert_eq!(scraper.refresh_once().await.unwrap(), Refreshed::Unchanged);
    assert_eq!(upstream.hits(&format!("304 {tags}")), 1);
    assert_eq!(scraper.last_requests(), 1);
    upstream.stop().await;
    let error = scraper.refresh_once().await.unwrap_err();
    assert_eq!(error.kind(), "connect", "{error}");
    assert_eq!(error_count(&metrics, "connect"), 1.0);
    assert_eq!(stored_graph(&store, "mine", "x86_64"), good);
    assert_eq!(
        store.states()["mine"],
        fcos_graph_builder::store::StreamState::Stale
    );
}

#[actix_web::test]
async fn with_updates_metadata_fedora_rules_apply() {
    let Some(registry) = LocalRegistry::start(false).await else {
        return;
    };
    let all = ["43.20260105.3.0", "43.20260119.3.0", "43.20260202.3.0"];
    registry.push_versions(&all).await;
    let updates = Upstream::start();
    let path = "/updates/mine.json";
    let document = json!({"stream": "mine", "releases": [
        {"version": "43.20260119.3.0", "metadata": {"barrier": {"reason": "https://example.com/why"}}},
        {"version": "43.20260202.3.0", "metadata": {"rollout": {"start_percentage": 0.5}}},
    ]});
    updates.set(path, Canned::Body(document.to_string().into_bytes()));
    let (mut scraper, store, metrics) = scraper(registry_settings(
        &registry.repository(),
        &format!(
            "updates_url = \"http://{}/updates/${{stream}}.json\"",
            updates.addr
        ),
    ));
    assert_eq!(scraper.refresh_once().await.unwrap(), Refreshed::Published);
    let graph = stored_graph(&store, "mine", "x86_64");
    assert_eq!(versions(&graph), all);
    // Into the barrier from before it; into the rollout from the barrier
    // on; no update past the barrier.
    assert_eq!(
        edges(&graph),
        pairs(&[
            ("43.20260105.3.0", "43.20260119.3.0"),
            ("43.20260119.3.0", "43.20260202.3.0"),
        ])
    );
    assert_eq!(graph["nodes"][1]["metadata"][metadata::BARRIER], "true");
    assert_eq!(graph["nodes"][2]["metadata"][metadata::START_VALUE], "0.5");

    // An unchanged document is asked for conditionally; a broken one
    // fails the refresh, counted, the last good graphs kept.
    assert_eq!(scraper.refresh_once().await.unwrap(), Refreshed::Unchanged);
    assert_eq!(updates.hits(&format!("304 {path}")), 1);
    updates.set(path, Canned::Body(b"{\"stream\": \"mine\"".to_vec()));
    let error = scraper.refresh_once().await.unwrap_err();
    assert_eq!(error.kind(), "updates", "{error}");
    assert_eq!(error_count(&metrics, "updates"), 1.0);
    assert_eq!(stored_graph(&store, "mine", "x86_64"), graph);
}

#[actix_web::test]
async fn the_graph_command_previews_a_registry_stream() {
    let Some(registry) = LocalRegistry::start(false).await else {
        return;
    };
    registry
        .push_versions(&["43.20260105.3.0", "43.20260119.3.0"])
        .await;
    let graph = |stream: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fcos-cincinnati"))
            .args(["graph", "--registry", &registry.repository()])
            .args(["--stream", stream, "--basearch", "aarch64"])
            .output()
            .unwrap()
    };
    let output = graph("mine");
    assert!(output.status.success(), "{output:?}");
    let graph_json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        versions(&graph_json),
        ["43.20260105.3.0", "43.20260119.3.0"]
    );
    assert_eq!(
        edges(&graph_json),
        pairs(&[("43.20260105.3.0", "43.20260119.3.0")])
    );
    // A stream the images do not name: the error says which there are.
    let output = graph("other");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("mine (aarch64, x86_64)"), "{stderr}");
}

/// The paths a registry serves `image` at, under the tag `tag`: its
/// blobs and manifests by digest, its index by the tag.
fn served_image(image: &TestImage, tag: &str) -> BTreeMap<String, Vec<u8>> {
    let documents = image.documents();
    let prefix = format!("/v2/{NAME}");
    let mut served = BTreeMap::new();
    for blob in &documents.blobs {
        served.insert(format!("{prefix}/blobs/{}", sha256(blob)), blob.clone());
    }
    for manifest in &documents.manifests {
        served.insert(
            format!("{prefix}/manifests/{}", sha256(manifest)),
            manifest.clone(),
        );
    }
    served.insert(format!("{prefix}/manifests/{tag}"), documents.index.clone());
    served
}

/// A document of `documents` by `path`, with its `Docker-Content-Digest`;
/// 404 for another path.
fn serve_document(documents: &BTreeMap<String, Vec<u8>>, path: &str) -> actix_web::HttpResponse {
    match documents.get(path) {
        Some(body) => actix_web::HttpResponse::Ok()
            .insert_header(("Docker-Content-Digest", sha256(body)))
            .body(body.clone()),
        None => actix_web::HttpResponse::NotFound().finish(),
    }
}

/// Serves every request on `listener` with `handler` (one worker, stopped
/// at once), until the handle returned stops it.
fn serve<F, R>(listener: std::net::TcpListener, handler: F) -> actix_web::dev::ServerHandle
where
    F: Fn(actix_web::HttpRequest) -> R + Clone + Send + 'static,
    R: std::future::Future<Output = actix_web::HttpResponse> + 'static,
{
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().default_service(actix_web::web::to(handler.clone()))
    })
    .workers(1)
    .shutdown_timeout(0)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    handle
}

/// A registry that asks for a bearer token from its token service, as
/// quay.io and ghcr.io do for anonymous pulls; it serves `documents` by
/// path to requests bearing the token it hands out.
struct TokenRegistry {
    addr: SocketAddr,
    tokens_issued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl TokenRegistry {
    fn start(documents: BTreeMap<String, Vec<u8>>) -> TokenRegistry {
        use actix_web::{HttpRequest, HttpResponse};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let tokens_issued = std::sync::Arc::new(AtomicUsize::new(0));
        let issued = tokens_issued.clone();
        let documents = std::sync::Arc::new(documents);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = serve(listener, move |req: HttpRequest| {
            let (issued, documents) = (issued.clone(), documents.clone());
            async move {
                if req.path() == "/token" {
                    let query = req.query_string();
                    assert!(
                        query.contains("service=test") && query.contains("scope=repository"),
                        "{query}"
                    );
                    issued.fetch_add(1, Ordering::SeqCst);
                    return HttpResponse::Ok().body(r#"{"token":"t0k3n"}"#);
                }
                let authorized = req
                    .headers()
                    .get("authorization")
                    .is_some_and(|v| v == "Bearer t0k3n");
                if !authorized {
                    return HttpResponse::Unauthorized()
                            .insert_header((
                                "WWW-Authenticate",
                                format!(
                                    r#"Bearer realm="http://{addr}/token",service="test",scope="repository:{NAME}:pull""#
                                ),
                            ))
                            .finish();
                }
                serve_document(&documents, req.path())
            }
        });
        TokenRegistry {
            addr,
            tokens_issued,
            handle,
        }
    }
}

#[actix_web::test]
async fn anonymous_pulls_go_through_the_token_flow() {
    let prefix = format!("/v2/{NAME}");
    let mut served = served_image(
        &TestImage::new("43.20260105.3.0", "mine"),
        "43.20260105.3.0",
    );
    served.insert(
        format!("{prefix}/tags/list"),
        br#"{"name":"me/my-fcos","tags":["43.20260105.3.0"]}"#.to_vec(),
    );
    let registry = TokenRegistry::start(served);
    let (mut scraper, store, _) =
        scraper(registry_settings(&format!("{}/{NAME}", registry.addr), ""));
    assert_eq!(scraper.refresh_once().await.unwrap(), Refreshed::Published);
    assert_eq!(
        versions(&stored_graph(&store, "mine", "aarch64")),
        ["43.20260105.3.0"]
    );
    // The list refused, the token, the list again, then the index, two
    // manifests and two configs with the token.
    assert_eq!(scraper.last_requests(), 8);
    // The token is kept: the next refresh is the tag list alone.
    assert_eq!(scraper.refresh_once().await.unwrap(), Refreshed::Unchanged);
    assert_eq!(scraper.last_requests(), 1);
    assert_eq!(
        registry
            .tokens_issued
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    registry.handle.stop(false).await;
}

/// Pages of a tag list by path and query: a body, and the next page.
type Pages = std::sync::Arc<std::sync::RwLock<BTreeMap<String, (Vec<u8>, Option<String>)>>>;

/// A registry whose tag list the test writes page by page: each page (a
/// path with its query) answers its body and, when given, a `Link` to the
/// next page; other paths serve `documents` with their
/// `Docker-Content-Digest`.
struct PagedRegistry {
    addr: SocketAddr,
    pages: Pages,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl PagedRegistry {
    fn start(documents: BTreeMap<String, Vec<u8>>) -> PagedRegistry {
        use actix_web::{HttpRequest, HttpResponse};
        use std::sync::atomic::Ordering;
        let pages = Pages::default();
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let documents = std::sync::Arc::new(documents);
        let (served_pages, counted) = (pages.clone(), requests.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = serve(listener, move |req: HttpRequest| {
            let (pages, documents, counted) =
                (served_pages.clone(), documents.clone(), counted.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let page = format!("{}?{}", req.path(), req.query_string());
                if let Some((body, next)) = pages.read().unwrap().get(&page) {
                    let mut answer = HttpResponse::Ok();
                    if let Some(next) = next {
                        answer.insert_header(("Link", format!("<{next}>; rel=\"next\"")));
                    }
                    return answer.body(body.clone());
                }
                serve_document(&documents, req.path())
            }
        });
        PagedRegistry {
            addr,
            pages,
            requests,
            handle,
        }
    }

    /// Answers `path_and_query` with `body`, and a `Link` to `next`.
    fn page(&self, path_and_query: &str, body: Vec<u8>, next: Option<&str>) {
        self.pages
            .write()
            .unwrap()
            .insert(path_and_query.to_string(), (body, next.map(String::from)));
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[actix_web::test]
async fn a_tag_list_that_never_ends_or_is_too_long_fails_the_refresh_at_once() {
    let prefix = format!("/v2/{NAME}");
    let served = served_image(
        &TestImage::new("43.20260105.3.0", "mine"),
        "43.20260105.3.0",
    );
    let registry = PagedRegistry::start(served);
    let first = format!("{prefix}/tags/list?n=1000");
    let second = format!("{prefix}/tags/list?last=43.20260105.3.0&n=1000");
    let list = |tags: &[&str]| serde_json::to_vec(&json!({"name": NAME, "tags": tags})).unwrap();
    // Two pages, as a registry paginates.
    registry.page(&first, list(&["43.20260105.3.0"]), Some(&second));
    registry.page(&second, list(&[]), None);
    let (mut scraper, store, metrics) =
        scraper(registry_settings(&format!("{}/{NAME}", registry.addr), ""));
    assert_eq!(scraper.refresh_once().await.unwrap(), Refreshed::Published);
    let good = stored_graph(&store, "mine", "x86_64");
    assert_eq!(versions(&good), ["43.20260105.3.0"]);

    let huge: Vec<String> = (0..=fcos_graph_builder::registry::client::MAX_TAGS)
        .map(|i| format!("t{i}"))
        .collect();
    let huge: Vec<&str> = huge.iter().map(String::as_str).collect();
    let not_a_tag = "../../x".to_string();
    let pages: [(&str, Vec<u8>, Option<&str>, usize); 6] = [
        // Every page a next link to itself: refused at the first repeat.
        ("itself", list(&["43.20260105.3.0"]), Some(&first), 1),
        // Back to the first page after the second: refused there.
        ("a cycle", list(&["43.20260105.3.0"]), Some(&second), 2),
        // No tags, yet a next page.
        ("no progress", list(&[]), Some(&second), 1),
        // More tags than a repository may list.
        ("too many", list(&huge), None, 1),
        // A tag that is no tag.
        ("not a tag", list(&[&not_a_tag]), None, 1),
        // A page over the limit of a document.
        (
            "too large",
            vec![b' '; fcos_graph_builder::registry::client::MAX_DOCUMENT_BYTES as usize + 1],
            None,
            1,
        ),
    ];
    for (count, (case, body, next, requests)) in pages.into_iter().enumerate() {
        registry.page(&first, body, next);
        registry.page(&second, list(&["43.20260105.3.0"]), Some(&first));
        let before = registry.requests();
        let error = scraper.refresh_once().await.unwrap_err();
        assert_eq!(error.kind(), "invalid_tag_list", "{case}: {error}");
        assert!(error.to_string().contains(&first), "{case}: {error}");
        assert_eq!(scraper.last_requests(), requests, "{case}");
        assert_eq!(registry.requests() - before, requests, "{case}");
        assert_eq!(
            error_count(&metrics, "invalid_tag_list"),
            count as f64 + 1.0
        );
        assert_eq!(stored_graph(&store, "mine", "x86_64"), good, "{case}");
    }
    assert_eq!(error_count(&metrics, "invalid_manifest"), 0.0);
    assert_eq!(error_count(&metrics, "request_cap"), 0.0);
    registry.handle.stop(false).await;
}

#[actix_web::test]
async fn a_release_keeps_its_payload_when_its_only_tag_moves() {
    let Some(registry) = LocalRegistry::start(false).await else {
        return;
    };
    let repository = registry.repository();
    // One release, one tag, and that tag not a version: it is asked for
    // every refresh.
    let first = registry
        .push("latest", &TestImage::new("43.1", "mine"))
        .await;
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let gb = fcos_graph_builder::start(side_by_side_settings(&upstream, &repository)).unwrap();
    wait_ready(&gb).await;
    let payload = |graph: &serde_json::Value| graph["nodes"][0]["payload"].clone();
    let graph = wait_graph(gb.service_addr, "stream=mine&basearch=x86_64", |g| {
        versions(g) == ["43.1"]
    })
    .await;
    let served = json!(format!("{repository}@{}", first.images["x86_64"]));
    assert_eq!(payload(&graph), served);

    // The tag moves to a rebuild of the same version, again and again:
    // the old digest is tagged no more, yet the release keeps it, and
    // each refresh counts the refusal.
    for build in 1..=3 {
        let mut rebuild = TestImage::new("43.1", "mine");
        rebuild.build = build;
        let moved = registry.push("latest", &rebuild).await;
        assert_ne!(moved.images["x86_64"], first.images["x86_64"]);
        let seen = wait_metric(
            gb.status_addr,
            r#"fcos_cincinnati_gb_registry_errors_total{kind="moved_tag"}"#,
            |v| v >= 2.0 * f64::from(build),
        )
        .await;
        assert!(seen >= 2.0, "both architectures refused");
        for basearch in ["x86_64", "aarch64"] {
            let graph = get_graph(&format!(
                "http://{}/v1/graph?stream=mine&basearch={basearch}&oci=true",
                gb.service_addr
            ))
            .await;
            assert_eq!(versions(&graph), ["43.1"]);
            assert_eq!(
                payload(&graph),
                json!(format!("{repository}@{}", first.images[basearch])),
                "build {build}, {basearch}"
            );
        }
    }
    gb.stop().await.unwrap();
    upstream.stop().await;
}

#[actix_web::test]
async fn manifests_and_configs_kept_are_those_the_tags_name_now() {
    let Some(registry) = LocalRegistry::start(false).await else {
        return;
    };
    registry
        .push(
            "43.20260105.3.0",
            &TestImage::new("43.20260105.3.0", "mine"),
        )
        .await;
    let (mut scraper, store, metrics) = scraper(registry_settings(&registry.repository(), ""));
    // Two tags of two arches: two indexes, four image manifests, four
    // configs; `latest` moves to a new rebuild at every refresh.
    for build in 0..6 {
        let mut image = TestImage::new("43.20260119.3.0", "mine");
        image.build = build;
        registry.push("latest", &image).await;
        scraper.refresh_once().await.unwrap();
        assert_eq!(scraper.cached_documents(), (6, 4), "build {build}");
        assert_eq!(
            versions(&stored_graph(&store, "mine", "x86_64")),
            ["43.20260105.3.0", "43.20260119.3.0"]
        );
    }
    assert_eq!(error_count(&metrics, "moved_tag"), 10.0);
    // A tag deleted: its documents go at the next refresh.
    let mut image = TestImage::new("43.20260119.3.0", "mine");
    image.build = 5;
    registry.delete(&image.documents().pushed.index).await;
    scraper.refresh_once().await.unwrap();
    assert_eq!(scraper.cached_documents(), (3, 2));
    assert_eq!(
        versions(&stored_graph(&store, "mine", "x86_64")),
        ["43.20260105.3.0"]
    );
}

#[actix_web::test]
async fn streams_past_the_cap_are_left_out_and_gone_streams_lose_their_series() {
    use fcos_graph_builder::registry::MAX_STREAMS;
    let prefix = format!("/v2/{NAME}");
    // One image per stream, s00 … s69 and a00, each under its own tag;
    // the tag list says which exist.
    let mut streams: Vec<String> = (0..MAX_STREAMS + 6).map(|i| format!("s{i:02}")).collect();
    streams.push("a00".to_string());
    let mut served = BTreeMap::new();
    for stream in &streams {
        let mut image = TestImage::new("43.20260105.3.0", stream);
        image.arches = vec!["amd64"];
        served.extend(served_image(&image, &format!("{stream}-1")));
    }
    let registry = PagedRegistry::start(served);
    let list = |streams: &[String]| {
        let tags: Vec<String> = streams.iter().map(|s| format!("{s}-1")).collect();
        serde_json::to_vec(&json!({"name": NAME, "tags": tags})).unwrap()
    };
    let page = format!("{prefix}/tags/list?n=1000");
    let (mut scraper, store, metrics) =
        scraper(registry_settings(&format!("{}/{NAME}", registry.addr), ""));
    let served_streams = |store: &GraphStore| -> Vec<String> {
        streams
            .iter()
            .filter(|s| store.get(s, "x86_64", commons::graph::Scheme::Oci).is_ok())
            .cloned()
            .collect()
    };
    let series = |stream: &str| {
        let text = String::from_utf8(service_kit::metrics::render(&metrics)).unwrap();
        let series = format!(
            r#"fcos_cincinnati_gb_scraper_graph_final_releases{{basearch="x86_64",stream="{stream}",type="oci"}} "#
        );
        text.lines().any(|l| l.starts_with(&series))
    };

    // 70 streams: the first 64 by name are served, 6 counted left out.
    registry.page(&page, list(&streams[..MAX_STREAMS + 6]), None);
    assert_eq!(scraper.refresh_once().await.unwrap(), Refreshed::Published);
    assert_eq!(served_streams(&store), streams[..MAX_STREAMS]);
    assert_eq!(error_count(&metrics, "too_many_streams"), 6.0);
    assert!(series("s00") && !series("s64"));

    // A new stream first by name does not push out one served.
    registry.page(&page, list(&streams), None);
    scraper.refresh_once().await.unwrap();
    assert_eq!(served_streams(&store), streams[..MAX_STREAMS]);
    assert_eq!(error_count(&metrics, "too_many_streams"), 6.0 + 7.0);

    // s00 goes: its graph and its series go, and of the streams waiting,
    // the first by name comes in.
    registry.page(&page, list(&streams[1..]), None);
    assert_eq!(scraper.refresh_once().await.unwrap(), Refreshed::Published);
    let mut expected = vec!["a00".to_string()];
    expected.extend_from_slice(&streams[1..MAX_STREAMS]);
    let mut now = served_streams(&store);
    now.sort();
    assert_eq!(now, expected);
    assert!(!series("s00") && series("a00") && series("s01"));
    registry.handle.stop(false).await;
}

/// The count of `fcos_cincinnati_gb_registry_state_errors_total` of
/// `operation`.
fn state_errors(registry: &prometheus::Registry, operation: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == "fcos_cincinnati_gb_registry_state_errors_total")
        .flat_map(|f| f.get_metric())
        .find(|m| m.get_label().iter().any(|l| l.value() == operation))
        .map(|m| m.get_counter().get_value())
        .expect("the series exists from start")
}

#[actix_web::test]
async fn a_restart_with_a_state_directory_reads_only_what_is_new() {
    let Some(registry) = LocalRegistry::start(false).await else {
        return;
    };
    registry
        .push_versions(&["43.20260105.3.0", "43.20260119.3.0"])
        .await;
    registry
        .push("latest", &TestImage::new("43.20260119.3.0", "mine"))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let settings = registry_settings(
        &registry.repository(),
        &format!("state_dir = \"{}\"", dir.path().display()),
    );
    let state = dir.path().join(fcos_graph_builder::registry::STATE_FILE);

    // The first run reads everything: the list, three tags, two indexes'
    // two manifests and two configs each.
    let (mut first, store, _) = scraper(settings.clone());
    first.refresh_once().await.unwrap();
    assert_eq!(first.last_requests(), 12);
    let graph = stored_graph(&store, "mine", "x86_64");
    assert_eq!(versions(&graph), ["43.20260105.3.0", "43.20260119.3.0"]);
    // Nothing new: the file is not written again (each write is a new
    // file renamed over the old one).
    let inode = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&state).unwrap());
    let written = inode();
    first.refresh_once().await.unwrap();
    assert_eq!(inode(), written);
    // A rebuild of a version served, pushed to `latest`: refused, the
    // digest served kept. Its digest sorts first: without what is served,
    // a fresh start would take it.
    let served = TestImage::new("43.20260119.3.0", "mine")
        .documents()
        .pushed
        .index;
    let rebuild = (1..)
        .map(|build| {
            let mut image = TestImage::new("43.20260119.3.0", "mine");
            image.build = build;
            image
        })
        .find(|image| image.documents().pushed.index < served)
        .unwrap();
    registry.push("latest", &rebuild).await;
    first.refresh_once().await.unwrap();
    assert_eq!(stored_graph(&store, "mine", "x86_64"), graph);
    drop(first);

    // Restarted: the list and the HEAD of `latest`, and the same graph:
    // the rebuild still refused, whichever digest sorts first.
    let (mut second, store, metrics) = scraper(settings.clone());
    let before = registry.requests();
    assert_eq!(second.refresh_once().await.unwrap(), Refreshed::Published);
    assert_eq!(registry.requests() - before, 2);
    assert_eq!(stored_graph(&store, "mine", "x86_64"), graph);
    assert_eq!(
        error_count(&metrics, "moved_tag"),
        2.0,
        "once per architecture"
    );
    assert_eq!(state_errors(&metrics, "read"), 0.0);
    // A new version: its index, two manifests and two configs more.
    let newest = "43.20260202.3.0";
    registry.push(newest, &TestImage::new(newest, "mine")).await;
    second.refresh_once().await.unwrap();
    assert_eq!(second.last_requests(), 7);
    drop(second);

    // A damaged file is counted and ignored: everything is read again, as
    // without a state directory, and the file is good again after.
    std::fs::write(&state, "{\"format\": 1, \"repository\": ").unwrap();
    let (mut third, store, metrics) = scraper(settings.clone());
    third.refresh_once().await.unwrap();
    assert_eq!(state_errors(&metrics, "read"), 1.0);
    let (mut fresh, _, _) = scraper(registry_settings(&registry.repository(), ""));
    fresh.refresh_once().await.unwrap();
    assert_eq!(third.last_requests(), fresh.last_requests());
    assert_eq!(versions(&stored_graph(&store, "mine", "x86_64")).len(), 3);
    let (mut fourth, _, metrics) = scraper(settings.clone());
    fourth.refresh_once().await.unwrap();
    assert_eq!(fourth.last_requests(), 2);
    assert_eq!(state_errors(&metrics, "read"), 0.0);

    // Another repository's file is not read.
    let other = registry_settings(
        &format!("{}-other", registry.repository()),
        &format!("state_dir = \"{}\"", dir.path().display()),
    );
    let kept = std::fs::read(&state).unwrap();
    let (mut elsewhere, _, metrics) = scraper(other);
    assert!(
        elsewhere.refresh_once().await.is_err(),
        "no such repository"
    );
    assert_eq!(elsewhere.cached_documents(), (0, 0));
    assert_eq!(state_errors(&metrics, "read"), 0.0);
    // Nor overwritten before that repository's tag list is read.
    assert_eq!(std::fs::read(&state).unwrap(), kept);

    // A file that cannot be written is counted; the graphs are served.
    std::fs::remove_file(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    let (mut fifth, store, metrics) = scraper(settings);
    fifth.refresh_once().await.unwrap();
    assert_eq!(state_errors(&metrics, "read"), 1.0, "a directory");
    assert_eq!(state_errors(&metrics, "write"), 1.0);
    assert_eq!(versions(&stored_graph(&store, "mine", "x86_64")).len(), 3);
}

/// The real `fcos-cincinnati serve`, restarted with `[registry] state_dir`:
/// the second process serves the same graph after asking the registry for
/// its tag list only, where the first read every image.
#[actix_web::test]
async fn the_real_service_restarted_reads_the_registry_state() {
    let Some(registry) = LocalRegistry::start(false).await else {
        return;
    };
    registry
        .push_versions(&["43.20260105.3.0", "43.20260119.3.0"])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[graph-builder.service]\naddress = \"127.0.0.1\"\nport = 0\n[graph-builder.status]\naddress = \"127.0.0.1\"\nport = 0\n[graph-builder.upstream]\nrefresh_secs = 60\n[graph-builder.streams]\n[graph-builder.registry]\nrepository = \"{}\"\nstate_dir = \"{}\"\n[policy-engine.service]\naddress = \"127.0.0.1\"\nport = 0\n[policy-engine.status]\naddress = \"127.0.0.1\"\nport = 0\n",
            registry.repository(),
            dir.path().display()
        ),
    )
    .unwrap();
    // Starts the service; returns the graph it serves and the requests
    // the registry had meanwhile.
    let run = || async {
        let before = registry.requests();
        let mut process = test_support::Process::spawn(
            std::process::Command::new(env!("CARGO_BIN_EXE_fcos-cincinnati"))
                .args(["serve", "-c"])
                .arg(&config),
        );
        let line = process.line_with("graph-builder listening").await;
        let gb = test_support::logged_addr(&line, "service_addr");
        let url = format!("http://{gb}/v1/graph?basearch=x86_64&stream=mine&oci=true");
        let deadline = Instant::now() + Duration::from_secs(15);
        let graph = loop {
            let (status, body) = get(&url).await;
            if status == 200 {
                break serde_json::from_str::<serde_json::Value>(&body).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "{status} {body}\n{}",
                process.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        (graph, registry.requests() - before, process)
    };
    let (first_graph, first_requests, first) = run().await;
    assert_eq!(
        first_requests, 11,
        "the list, two indexes, four manifests, four configs"
    );
    // The state is written right after the graphs are published.
    let state = dir.path().join(fcos_graph_builder::registry::STATE_FILE);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !state.exists() {
        assert!(Instant::now() < deadline, "no state file written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(first);
    let (graph, requests, mut second) = run().await;
    assert_eq!(graph, first_graph);
    assert_eq!(requests, 1, "the tag list");
    second
        .line_with("what an earlier run read is taken from the state directory")
        .await;
}
