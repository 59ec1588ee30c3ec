//! The real `fcos-graph-builder` binary against an upstream that
//! redirects: to another `http` URL it follows, logging where from and
//! where to; to a `file://` URL, or in a loop, it refuses, counting a
//! `redirect` error whose message names both URLs.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use test_support::{logged_addr, Process};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_fcos-graph-builder");

fn releases(stream: &str) -> String {
    format!(
        r#"{{"stream": "{stream}", "releases": [
            {{"version": "1.0", "commits": [{{"architecture": "x86_64", "checksum": "a"}}]}},
            {{"version": "2.0", "commits": [{{"architecture": "x86_64", "checksum": "b"}}]}}]}}"#
    )
}

fn updates(stream: &str) -> String {
    format!(r#"{{"stream": "{stream}", "releases": []}}"#)
}

/// What the upstream answers for `path`: `Ok(body)` or `Err(location)` of
/// a 302.
fn route(path: &str, addr: SocketAddr, dir: &str) -> Result<String, String> {
    match path {
        // Redirected once, to another http URL: followed.
        "/stable/releases.json" => Err(format!("http://{addr}/moved/stable/releases.json")),
        "/moved/stable/releases.json" => Ok(releases("stable")),
        "/stable/updates.json" => Ok(updates("stable")),
        // Redirected to a local file (which exists and is valid): refused.
        "/testing/releases.json" => Ok(releases("testing")),
        "/testing/updates.json" => Err(format!("file://{dir}/testing-updates.json")),
        // Redirected to itself, without end: refused after a few hops.
        "/next/releases.json" => Err("/next/releases.json".to_string()),
        "/next/updates.json" => Ok(updates("next")),
        _ => Ok(String::new()),
    }
}

/// A real HTTP upstream answering [`route`], one request per connection.
async fn start_upstream(dir: String) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let dir = dir.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let answer = match route(&path, addr, &dir) {
                    Ok(body) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    Err(location) => format!(
                        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    ),
                };
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}

/// The value of one series on a metrics page.
fn series(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn redirects_to_http_are_followed_and_logged_others_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().display().to_string();
    std::fs::write(dir.path().join("testing-updates.json"), updates("testing")).unwrap();
    let upstream = start_upstream(dir_text.clone()).await;
    let config = dir.path().join("fcos-graph-builder.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\naddress = \"127.0.0.1\"\nport = 0\n[status]\naddress = \"127.0.0.1\"\nport = 0\n[upstream]\nrelease_index_url = \"http://{upstream}/${{stream}}/releases.json\"\nupdates_url = \"http://{upstream}/${{stream}}/updates.json\"\nrefresh_secs = 60\ntimeout_secs = 5\n[streams]\nstable = [\"x86_64\"]\ntesting = [\"x86_64\"]\nnext = [\"x86_64\"]\n"
        ),
    )
    .unwrap();
    let mut gb = Process::spawn(Command::new(BIN).arg("-v").arg("-c").arg(&config));
    let listening = gb.line_with("graph-builder listening").await;
    let service = logged_addr(&listening, "service_addr");
    let status = logged_addr(&listening, "status_addr");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // Every stream has had its first refresh.
    let deadline = Instant::now() + Duration::from_secs(15);
    let readyz = loop {
        let response = client
            .get(format!("http://{status}/readyz"))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_str(&response.text().await.unwrap()).unwrap();
        if body["details"]["streams"]
            .as_object()
            .is_some_and(|streams| streams.values().all(|s| s != "pending"))
        {
            break body;
        }
        assert!(Instant::now() < deadline, "never refreshed:\n{}", gb.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let streams = &readyz["details"]["streams"];
    assert_eq!(streams["stable"], "ready", "{readyz}\n{}", gb.log());
    assert_eq!(streams["testing"], "failed", "{readyz}");
    assert_eq!(streams["next"], "failed", "{readyz}");

    // Followed, and logged with where from and where to.
    let graph = client
        .get(format!(
            "http://{service}/v1/graph?basearch=x86_64&stream=stable"
        ))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let graph: serde_json::Value = serde_json::from_str(&graph).unwrap();
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 2);
    let followed = gb
        .line_with(&format!(
            "upstream redirects from=http://{upstream}/stable/releases.json "
        ))
        .await;
    assert!(
        followed.contains(&format!("to=http://{upstream}/moved/stable/releases.json")),
        "{followed}"
    );

    // Refused: counted as `redirect` errors, the message naming both URLs.
    let page = client
        .get(format!("http://{status}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let errors = |stream: &str, kind: &str| {
        series(
            &page,
            &format!(
                r#"fcos_cincinnati_gb_scraper_upstream_errors_total{{kind="{kind}",stream="{stream}"}}"#
            ),
        )
    };
    assert_eq!(errors("testing", "redirect"), Some(1.0), "{page}");
    assert_eq!(errors("next", "redirect"), Some(1.0), "{page}");
    assert_eq!(errors("stable", "redirect"), Some(0.0), "{page}");
    let refused = gb.line_with("stream=\"testing\" kind=\"redirect\"").await;
    assert!(
        refused.contains(&format!(
            "'http://{upstream}/testing/updates.json' redirects to 'file://{dir_text}/testing-updates.json': only http and https URLs are followed"
        )),
        "{refused}"
    );
    let looping = gb.line_with("stream=\"next\" kind=\"redirect\"").await;
    assert!(looping.contains("more than 5 redirects"), "{looping}");
}
