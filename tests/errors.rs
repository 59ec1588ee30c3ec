//! End to end: every class of client error, on both services, is a 4xx or
//! 503 with a `{"kind","value"}` body that names no internal address.

mod support;

use support::*;

const STREAMS: &str = "stable = [\"x86_64\", \"aarch64\"]";

/// Asserts `url` answers `status` with a Cincinnati error of `kind`.
async fn expect_error(
    method: reqwest::Method,
    url: &str,
    accept: Option<&str>,
    status: u16,
    kind: &str,
) {
    let mut request = client().request(method.clone(), url);
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), status, "{method} {url}");
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "{url}"
    );
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["kind"], kind, "{url}: {body}");
    let value = body["value"].as_str().unwrap();
    assert!(!value.is_empty());
    assert!(
        !value.contains("127.0.0.1") && !value.contains("http"),
        "leaks: {value}"
    );
}

#[actix_web::test]
async fn client_mistakes_are_4xx_with_json_bodies() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    stack.wait_ready().await;
    let get = reqwest::Method::GET;
    for base in [
        format!("http://{}", stack.graph_builder.service_addr),
        format!("http://{}", stack.policy_engine.service_addr),
    ] {
        let graph = |q: &str| format!("{base}/v1/graph?{q}");
        expect_error(
            get.clone(),
            &graph("stream=stable"),
            None,
            400,
            "missing_parameter",
        )
        .await;
        expect_error(
            get.clone(),
            &graph("basearch=x86_64"),
            None,
            400,
            "missing_parameter",
        )
        .await;
        expect_error(
            get.clone(),
            &graph("basearch=&stream=stable"),
            None,
            400,
            "missing_parameter",
        )
        .await;
        expect_error(get.clone(), &graph(""), None, 400, "missing_parameter").await;
        expect_error(
            get.clone(),
            &graph("basearch=x86_64&stream=stable&oci=yes"),
            None,
            400,
            "invalid_parameter",
        )
        .await;
        for bad in ["NaN", "inf", "-infinity", "0.5x", ""] {
            expect_error(
                get.clone(),
                &graph(&format!(
                    "basearch=x86_64&stream=stable&rollout_wariness={bad}"
                )),
                None,
                400,
                "invalid_parameter",
            )
            .await;
        }
        expect_error(
            get.clone(),
            &graph("basearch=x86_64&stream=st%2Fable"),
            None,
            400,
            "invalid_parameter",
        )
        .await;
        expect_error(
            get.clone(),
            &graph("basearch=x86_64&stream=%FF%FE"),
            None,
            400,
            "invalid_parameter",
        )
        .await;
        expect_error(
            get.clone(),
            &graph("basearch=x86_64&stream=stable&stream=next"),
            None,
            400,
            "repeated_parameter",
        )
        .await;
        // Well-formed but not served.
        expect_error(
            get.clone(),
            &graph("basearch=x86_64&stream=rawhide"),
            None,
            404,
            "unknown_scope",
        )
        .await;
        expect_error(
            get.clone(),
            &graph("basearch=riscv64&stream=stable"),
            None,
            404,
            "unknown_scope",
        )
        .await;
        expect_error(
            get.clone(),
            &format!("{base}/v2/graph"),
            None,
            404,
            "not_found",
        )
        .await;
        expect_error(
            reqwest::Method::POST,
            &graph("basearch=x86_64&stream=stable"),
            None,
            405,
            "method_not_allowed",
        )
        .await;
        expect_error(
            reqwest::Method::DELETE,
            &graph("basearch=x86_64&stream=stable"),
            None,
            405,
            "method_not_allowed",
        )
        .await;
        expect_error(
            get.clone(),
            &graph("basearch=x86_64&stream=stable"),
            Some("text/html"),
            406,
            "not_acceptable",
        )
        .await;
        // Unknown parameters are ignored.
        let (status, _) = support::get(&graph(
            "basearch=x86_64&stream=stable&group=x&platform=qemu&future=1",
        ))
        .await;
        assert_eq!(status, 200);
    }
    // Client mistakes are counted by code.
    assert!(metric(
        stack.policy_engine.status_addr,
        r#"fcos_cincinnati_pe_http_responses_total{code="400",handler="graph"}"#
    )
    .await
    .is_some_and(|n| n >= 10.0));
    stack.stop().await;
}

/// Zincati's query (graph semantics, section 4), on a node booted from a
/// container image.
const ZINCATI_QUERY: &str = "os_version=31.1.0&group=default&rollout_wariness=0.500000&basearch=x86_64&node_uuid=e0f3745b108f471cbd4883c6fbed8cdd&platform=metal&os_checksum=quay.io%2Ffedora%2Ffedora-coreos%40sha256%3Aab12&stream=stable&oci=true";

#[actix_web::test]
async fn queries_are_decoded_alike_by_both_services() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    stack.wait_ready().await;
    let huge = "9".repeat(7_000);
    let not_a_name = |got: &str| {
        format!(
            "the query parameter 'stream' is invalid: expected at most {} letters, digits, '.', '_' or '-', got '{got}'",
            commons::graph::MAX_NAME_LEN
        )
    };
    // (query, status, body): the body whole, as a client reads it.
    let cases = [
        (
            "basearch=x86_64&stream=st%zzable".to_string(),
            400,
            serde_json::json!({"kind": "invalid_parameter", "value": not_a_name("st%zzable")}),
        ),
        (
            "basearch=x86_64&stream=stable%".to_string(),
            400,
            serde_json::json!({"kind": "invalid_parameter", "value": not_a_name("stable%")}),
        ),
        (
            "basearch=x86_64&stream=stable&os_version=31%C3".to_string(),
            400,
            serde_json::json!({
                "kind": "invalid_parameter",
                "value": "the query parameter 'os_version' is invalid: the value is not valid UTF-8"
            }),
        ),
        (
            "basearch=x86_64&stream=stable&str%65am=stable".to_string(),
            400,
            serde_json::json!({
                "kind": "repeated_parameter",
                "value": "the query parameter 'stream' is given more than once"
            }),
        ),
        (
            format!("basearch=x86_64&stream=stable&rollout_wariness={huge}"),
            400,
            serde_json::json!({
                "kind": "invalid_parameter",
                "value": format!(
                    "the query parameter 'rollout_wariness' is invalid: expected a finite number between 0 and 1, got '{}…'",
                    &huge[..40]
                )
            }),
        ),
    ];
    for base in [
        format!("http://{}", stack.graph_builder.service_addr),
        format!("http://{}", stack.policy_engine.service_addr),
    ] {
        // Zincati's query, and the same in another order.
        let zincati = get_graph(&format!("{base}/v1/graph?{ZINCATI_QUERY}")).await;
        let mut pairs: Vec<&str> = ZINCATI_QUERY.split('&').collect();
        pairs.reverse();
        let reordered = get_graph(&format!("{base}/v1/graph?{}", pairs.join("&"))).await;
        assert_eq!(zincati, reordered, "{base}");
        assert!(!versions(&zincati).is_empty(), "{base}");
        for node in zincati["nodes"].as_array().unwrap() {
            let payload = node["payload"].as_str().unwrap();
            assert!(
                payload.starts_with("quay.io/"),
                "{base}: not OCI: {payload}"
            );
        }
        for (query, status, expected) in &cases {
            let response = client()
                .get(format!("{base}/v1/graph?{query}"))
                .header("Accept", "application/json")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), *status, "{base} {query:.80}");
            assert_eq!(response.headers()["content-type"], "application/json");
            let body: serde_json::Value =
                serde_json::from_str(&response.text().await.unwrap()).unwrap();
            assert_eq!(&body, expected, "{base} {query:.80}");
        }
    }
    stack.stop().await;
}

#[actix_web::test]
async fn no_graph_yet_is_503_on_both_services() {
    let upstream = Upstream::start();
    upstream.set("/stable/releases.json", Canned::Status(500));
    upstream.set("/stable/updates.json", Canned::Status(500));
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    // Give the scraper its first (failing) refresh, and the policy-engine
    // the graph-builder's listing (its scopes, without graphs): until then
    // it answers 503 upstream_unavailable.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while upstream.hits("/stable/releases.json") == 0 {
        assert!(std::time::Instant::now() < deadline);
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    wait_following(&stack.policy_engine, &stack.graph_builder).await;
    let get = reqwest::Method::GET;
    expect_error(
        get.clone(),
        &stack.gb("basearch=x86_64&stream=stable"),
        None,
        503,
        "graph_not_ready",
    )
    .await;
    expect_error(
        get.clone(),
        &stack.pe("basearch=x86_64&stream=stable"),
        None,
        503,
        "graph_not_ready",
    )
    .await;
    let (status, _) = support::get(&format!(
        "http://{}/readyz",
        stack.graph_builder.status_addr
    ))
    .await;
    assert_eq!(status, 503);
    let (status, _) =
        support::get(&format!("http://{}/livez", stack.graph_builder.status_addr)).await;
    assert_eq!(status, 200);

    // Once upstream is fixed, both recover by themselves.
    upstream.serve_fixture("stable");
    stack.wait_ready().await;
    wait_for_status(&stack.pe("basearch=x86_64&stream=stable"), 200).await;
    stack.stop().await;
}

#[actix_web::test]
async fn unreachable_graph_builder_is_503_from_the_policy_engine() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let policy_engine =
        fcos_policy_engine::start(policy_engine_settings(&format!("http://{closed}/v1/graph")))
            .unwrap();
    let url = format!(
        "http://{}/v1/graph?basearch=x86_64&stream=stable",
        policy_engine.service_addr
    );
    expect_error(
        reqwest::Method::GET,
        &url,
        None,
        503,
        "upstream_unavailable",
    )
    .await;
    // The background task counts its failed attempts.
    wait_metric(
        policy_engine.status_addr,
        r#"fcos_cincinnati_pe_upstream_errors_total{kind="connect"}"#,
        |v| v >= 1.0,
    )
    .await;
    assert_eq!(readyz(&policy_engine).await.0, 503);
    policy_engine.stop().await.unwrap();
}

/// Sends raw bytes over HTTP/1.1 and returns what was answered.
async fn raw_exchange(addr: std::net::SocketAddr, request: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer before reading everything.
    let _ = stream.write_all(&request).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).to_string()
}

/// The status codes of the responses in `exchange`, in order.
fn statuses(exchange: &str) -> Vec<u16> {
    exchange
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| exchange[at + 9..at + 12].parse().ok())
        .collect()
}

/// Sends raw bytes over HTTP/1.1 and returns the status code answered.
async fn raw_status(addr: std::net::SocketAddr, request: Vec<u8>) -> u16 {
    statuses(&raw_exchange(addr, request).await)
        .first()
        .copied()
        .unwrap_or(0)
}

#[actix_web::test]
async fn oversized_request_heads_get_json_errors_and_are_counted() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    stack.wait_ready().await;
    let services = [
        (
            stack.graph_builder.service_addr,
            stack.graph_builder.status_addr,
            "gb",
        ),
        (
            stack.policy_engine.service_addr,
            stack.policy_engine.status_addr,
            "pe",
        ),
    ];
    for (addr, status_addr, prefix) in services {
        let path = "/v1/graph?basearch=x86_64&stream=stable";
        let request = |target: &str, headers: &str| {
            format!("GET {target} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n")
                .into_bytes()
        };
        let counted = |code: &str| {
            format!(
                r#"fcos_cincinnati_{prefix}_http_responses_total{{code="{code}",handler="graph"}}"#
            )
        };
        // (what, request, status, kind): over the limits (below and beyond
        // what the HTTP parser itself reads), and just within them.
        let cases = [
            (
                "70 KB URI",
                request(&format!("{path}&node_uuid={}", "a".repeat(70_000)), ""),
                414,
                "uri_too_long",
            ),
            (
                "200 KiB URI",
                request(&format!("{path}&node_uuid={}", "a".repeat(200 * 1024)), ""),
                414,
                "uri_too_long",
            ),
            (
                "9 KiB URI",
                request(&format!("{path}&node_uuid={}", "a".repeat(9 * 1024)), ""),
                414,
                "uri_too_long",
            ),
            (
                "64 KiB header",
                request(path, &format!("X-Padding: {}\r\n", "b".repeat(64 * 1024))),
                431,
                "headers_too_large",
            ),
            (
                "200 KiB header",
                request(path, &format!("X-Padding: {}\r\n", "b".repeat(200 * 1024))),
                431,
                "headers_too_large",
            ),
            (
                "17 KiB of headers",
                request(
                    path,
                    &"X-Padding: 0123456789abcdef\r\n".repeat(17 * 1024 / 28),
                ),
                431,
                "headers_too_large",
            ),
            (
                "8000-byte URI",
                request(
                    &format!("{path}&os_version={}", "1".repeat(8000 - path.len() - 12)),
                    "",
                ),
                200,
                "",
            ),
            (
                "15 KiB header",
                request(path, &format!("X-Padding: {}\r\n", "b".repeat(15 * 1024))),
                200,
                "",
            ),
        ];
        for (what, bytes, status, kind) in cases {
            let before = metric(status_addr, &counted(&status.to_string()))
                .await
                .unwrap_or(0.0);
            let answer = raw_exchange(addr, bytes).await;
            assert_eq!(
                statuses(&answer).first(),
                Some(&status),
                "{prefix} {what}: {answer:.300}"
            );
            if status != 200 {
                let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
                let error: serde_json::Value = serde_json::from_str(body).unwrap();
                assert_eq!(error["kind"], kind, "{prefix} {what}");
                assert!(answer
                    .to_ascii_lowercase()
                    .contains("content-type: application/json"));
            }
            let after = metric(status_addr, &counted(&status.to_string())).await;
            assert_eq!(after, Some(before + 1.0), "{prefix} {what} not counted");
        }
        // On a kept-alive connection, a good request and then an oversized
        // one: each gets its own answer.
        let mut two = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes();
        two.extend(request(&format!("{path}&x={}", "a".repeat(10_000)), ""));
        assert_eq!(statuses(&raw_exchange(addr, two).await), [200, 414]);
        let mut not_utf8 = format!("GET {path}&os_version=").into_bytes();
        not_utf8.extend_from_slice(&[0xff, 0xfe]);
        not_utf8.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let status = raw_status(addr, not_utf8).await;
        // Bytes that are not ASCII in the request target: the HTTP parser
        // refuses the request line.
        assert_eq!(status, 400, "raw non-ASCII request target");
        // And the service keeps serving.
        let (status, body) = get(&format!("http://{addr}{path}")).await;
        assert_eq!(status, 200, "{body}");
    }
    stack.stop().await;
}

#[actix_web::test]
async fn cors_never_answers_with_a_non_json_error() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    stack.wait_ready().await;
    for url in [
        stack.gb("basearch=x86_64&stream=stable"),
        stack.pe("basearch=x86_64&stream=stable"),
    ] {
        // A preflight for another method succeeds; the request itself then
        // gets the JSON 405.
        let preflight = client()
            .request(reqwest::Method::OPTIONS, &url)
            .header("Origin", "https://example.org")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "x-custom")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 200);
        expect_error(reqwest::Method::POST, &url, None, 405, "method_not_allowed").await;
    }
    stack.stop().await;

    // With an allowlist, another origin is served without CORS headers.
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let mut settings = graph_builder_settings(&upstream, STREAMS);
    settings.origin_allowlist = Some(vec!["https://builds.coreos.fedoraproject.org".to_string()]);
    let gb = fcos_graph_builder::start(settings).unwrap();
    wait_ready(&gb).await;
    let url = format!(
        "http://{}/v1/graph?basearch=x86_64&stream=stable",
        gb.service_addr
    );
    for (origin, allowed) in [
        ("https://builds.coreos.fedoraproject.org", true),
        ("https://example.org", false),
    ] {
        let response = client()
            .get(&url)
            .header("Origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let header = response.headers().get("access-control-allow-origin");
        assert_eq!(header.is_some(), allowed, "{origin}");
        // Errors carry the same CORS headers as graphs: an unknown scope,
        // and a request over a limit.
        for (url, code) in [
            (
                format!(
                    "http://{}/v1/graph?basearch=x86_64&stream=nope",
                    gb.service_addr
                ),
                404,
            ),
            (format!("{url}&x={}", "a".repeat(10_000)), 414),
        ] {
            let response = client()
                .get(&url)
                .header("Origin", origin)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), code);
            let header = response.headers().get("access-control-allow-origin");
            assert_eq!(
                header.map(|h| h.to_str().unwrap()),
                allowed.then_some(origin),
                "{origin} {code}"
            );
        }
        // A preflight: allowed, or answered as without CORS (JSON, no CORS
        // header), never a CORS error.
        let preflight = client()
            .request(reqwest::Method::OPTIONS, &url)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .send()
            .await
            .unwrap();
        let header = preflight.headers().get("access-control-allow-origin");
        assert_eq!(header.is_some(), allowed, "{origin}");
        if allowed {
            assert_eq!(preflight.status(), 200);
        } else {
            assert_eq!(preflight.status(), 405);
            assert_eq!(preflight.headers()["content-type"], "application/json");
        }
    }
    gb.stop().await.unwrap();
}

#[actix_web::test]
async fn an_unknown_scope_costs_the_graph_builder_no_request() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    stack.wait_ready().await;
    let gb_status = stack.graph_builder.status_addr;
    let graph_requests = || async {
        let (_, text) = get(&format!("http://{gb_status}/metrics")).await;
        text.lines()
            .filter(|l| {
                l.starts_with("fcos_cincinnati_gb_http_responses_total{")
                    && l.contains("handler=\"graph\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let before = graph_requests().await;
    // One client, its connection kept alive, for the 600 requests.
    let client = client();
    let status_of = |url: String| {
        let request = client.get(url).send();
        async move {
            let response = request.await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    for i in 0..300 {
        let (status, body) = status_of(stack.pe(&format!("basearch=x86_64&stream=junk{i}"))).await;
        assert_eq!(status, 404);
        assert!(body.contains("unknown_scope"), "{body}");
        let (status, _) =
            status_of(stack.pe(&format!("basearch=arch{i}&stream=stable&oci=true"))).await;
        assert_eq!(status, 404);
    }
    // Every scope served is answered from the replica, asked for or not.
    for query in [
        "basearch=aarch64&stream=stable&oci=true",
        "basearch=x86_64&stream=stable",
    ] {
        let (status, _) = get(&stack.pe(query)).await;
        assert_eq!(status, 200);
    }
    assert_eq!(graph_requests().await, before);
    stack.stop().await;
}
