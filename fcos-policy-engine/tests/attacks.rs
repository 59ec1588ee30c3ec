//! What one anonymous client can do to the real policy-engine binary over
//! its public port: memory, slow heads, descriptors, malformed requests.
//! Each attack is bounded in time and connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_support::{logged_addr, Process};

const BIN: &str = env!("CARGO_BIN_EXE_fcos-policy-engine");

/// A policy-engine on free loopback ports whose graph-builder is
/// unreachable (the connection layer is what is tried here), started with
/// `ulimit -n` at `descriptors` when given, and `service` added to its
/// `[service]` section.
struct Engine {
    process: Process,
    service: SocketAddr,
    status: SocketAddr,
    _config: tempfile::NamedTempFile,
}

impl Engine {
    async fn start(descriptors: Option<u32>) -> Engine {
        Engine::with(descriptors, "").await
    }

    async fn with(descriptors: Option<u32>, service: &str) -> Engine {
        let config = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            config.path(),
            format!("[service]\naddress = \"127.0.0.1\"\nport = 0\n{service}[status]\naddress = \"127.0.0.1\"\nport = 0\n[upstream]\ngraph_url = \"http://127.0.0.1:9/v1/graph\"\n"),
        )
        .unwrap();
        let mut command = Command::new("sh");
        command.arg("-c").arg(format!(
            "{}exec \"$0\" -vv -c \"$1\"",
            descriptors.map_or(String::new(), |n| format!("ulimit -n {n}; "))
        ));
        command.arg(BIN).arg(config.path());
        let mut process = Process::spawn(&mut command);
        let line = process.line_with("policy-engine listening").await;
        Engine {
            service: logged_addr(&line, "service_addr"),
            status: logged_addr(&line, "status_addr"),
            process,
            _config: config,
        }
    }

    fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// Resident memory, in bytes.
    fn rss(&self) -> u64 {
        self.process.memory("VmRSS")
    }

    /// Descriptors open.
    fn descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// One `GET path` on the status port, answered within 1 s: the status
    /// code.
    fn probe(&self, path: &str) -> Option<u16> {
        let mut stream = TcpStream::connect_timeout(&self.status, Duration::from_secs(1)).ok()?;
        let head = exchange(
            &mut stream,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(1),
        );
        head.get(9..12)?.parse().ok()
    }

    /// The status port's metrics, as text.
    fn metrics(&self) -> String {
        let mut stream = TcpStream::connect(self.status).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }

    /// The sum of the series of the status port's metrics whose line
    /// starts with `prefix` and contains `label`.
    fn metric_sum(&self, prefix: &str, label: &str) -> f64 {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with(prefix) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The value of a series of the status port's metrics.
    fn metric(&self, series: &str) -> f64 {
        let text = self.metrics();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }
}

/// Sends `request` and reads what comes back within `patience`, up to the
/// end of the answer's head.
fn exchange(stream: &mut TcpStream, request: &[u8], patience: Duration) -> String {
    let _ = stream.write_all(request);
    stream.set_read_timeout(Some(patience)).unwrap();
    let mut head = Vec::new();
    let mut buf = [0; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads until the server closes the connection, for at most `patience`:
/// whether it closed, and everything read.
fn until_closed(stream: &mut TcpStream, patience: Duration) -> (bool, String) {
    let deadline = Instant::now() + patience;
    let mut all = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (false, String::from_utf8_lossy(&all).into_owned());
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (true, String::from_utf8_lossy(&all).into_owned()),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (true, String::from_utf8_lossy(&all).into_owned())
            }
            Err(_) => return (false, String::from_utf8_lossy(&all).into_owned()),
        }
    }
}

#[actix_web::test]
async fn endless_heads_do_not_grow_memory() {
    let engine = Engine::start(None).await;
    let addr = engine.service;
    let before = engine.rss();
    let stop = Instant::now() + Duration::from_secs(5);
    // 8 clients, each sending a head that never ends as fast as it can:
    // empty lines, or one endless header line; reconnecting when cut.
    let clients: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let chunk = if i % 2 == 0 {
                    b"\r\n".repeat(32 * 1024)
                } else {
                    b"a".repeat(64 * 1024)
                };
                let mut sent = 0usize;
                while Instant::now() < stop {
                    let Ok(mut stream) = TcpStream::connect(addr) else {
                        continue;
                    };
                    stream
                        .set_write_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    if i % 2 == 1 {
                        let _ = stream.write_all(b"GET / HTTP/1.1\r\nx: ");
                    }
                    while Instant::now() < stop {
                        match stream.write(&chunk) {
                            Ok(n) => sent += n,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(_) => break,
                        }
                    }
                }
                sent
            })
        })
        .collect();
    let mut peak = before;
    while Instant::now() < stop {
        peak = peak.max(engine.rss());
        std::thread::sleep(Duration::from_millis(100));
    }
    let sent: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    peak = peak.max(engine.rss());
    assert!(sent > 64 << 20, "the clients sent only {sent} bytes");
    assert!(
        peak - before < 32 << 20,
        "RSS grew from {before} to {peak} bytes while {sent} bytes of heads were sent"
    );
}

#[actix_web::test]
async fn every_head_of_a_connection_must_arrive_in_time() {
    let engine = Engine::start(None).await;
    let addr = engine.service;
    let started = Instant::now();
    // 20 connections: one whole request each, then the next head a byte
    // every second.
    let clients: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                let first = exchange(
                    &mut stream,
                    b"GET /v1/openapi HTTP/1.1\r\nHost: x\r\n\r\n",
                    Duration::from_secs(5),
                );
                assert!(first.starts_with("HTTP/1.1 200"), "{first}");
                // Skip the body of the first answer.
                let mut body = [0; 64 * 1024];
                stream
                    .set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                while stream.read(&mut body).is_ok_and(|n| n > 0) {}
                stream.set_nonblocking(false).unwrap();
                let trickle = stream.try_clone().unwrap();
                let writer = std::thread::spawn(move || {
                    let mut trickle = trickle;
                    for byte in b"GET /v1/graph?basearch=x86_64&stream=stable HTTP/1.1\r\n" {
                        if trickle.write_all(&[*byte]).is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_secs(1));
                    }
                });
                let (closed, answer) = until_closed(&mut stream, Duration::from_secs(9));
                drop(writer);
                (closed, answer)
            })
        })
        .collect();
    for client in clients {
        let (closed, answer) = client.join().unwrap();
        assert!(closed, "still open after 9 s: {answer:?}");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(12));
    // Each 408 was counted.
    let counted = engine.metric_sum("fcos_cincinnati_pe_http_responses_total{", r#"code="408""#);
    assert_eq!(counted, 20.0);

    // An idle keep-alive connection is closed after its timeout.
    let mut idle = TcpStream::connect(addr).unwrap();
    let head = exchange(
        &mut idle,
        b"GET /v1/openapi HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (closed, _) = until_closed(&mut idle, Duration::from_secs(8));
    assert!(closed, "an idle connection is still open after 8 s");
}

#[actix_web::test]
async fn a_connection_flood_leaves_descriptors_for_the_status_port() {
    // 300 descriptors: the service port keeps at most 300 - 256 = 44
    // connections open; more wait in the backlog.
    let engine = Engine::start(Some(300)).await;
    let addr = engine.service;
    let flood: Vec<TcpStream> = (0..400)
        .map(|_| {
            let stream = TcpStream::connect(addr).unwrap();
            // Slow: a head that starts but does not end (yet).
            let _ = (&stream).write_all(b"GET /v1/gr");
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let open = engine.descriptors();
    assert!(open < 300 - 100, "{open} descriptors open of 300");
    for path in ["/readyz", "/livez", "/metrics"] {
        let started = Instant::now();
        let status = engine.probe(path);
        assert!(status.is_some(), "{path} unanswered during the flood");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    assert_eq!(
        engine.metric("fcos_cincinnati_pe_http_connections_max"),
        44.0
    );
    assert_eq!(engine.metric("fcos_cincinnati_pe_http_connections"), 44.0);
    let mut engine = engine;
    engine
        .process
        .line_with("44 connections open on the service port: new ones wait in the backlog")
        .await;
    let log = engine.process.log();
    assert!(!log.contains("Too many open files"), "{log}");
    drop(flood);
}

#[actix_web::test]
async fn clients_that_do_not_read_their_answers_hold_at_most_max_connections() {
    // Each connection sends a request and never reads the answer, so the
    // service keeps the connection and what it has not sent.
    let engine = Engine::with(None, "max_connections = 40\n").await;
    let before = engine.rss();
    let request = b"GET /v1/graph?basearch=x86_64&stream=stable HTTP/1.1\r\nHost: x\r\naccept: application/json\r\n\r\n";
    let clients: Vec<TcpStream> = (0..400)
        .map(|_| {
            let stream = TcpStream::connect(engine.service).unwrap();
            let _ = (&stream).write_all(request);
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        engine.metric("fcos_cincinnati_pe_http_connections_max"),
        40.0
    );
    assert_eq!(engine.metric("fcos_cincinnati_pe_http_connections"), 40.0);
    let grown = engine.rss().saturating_sub(before);
    assert!(grown < 8 << 20, "RSS grew by {grown} bytes");
    assert_eq!(engine.probe("/readyz"), Some(503));
    drop(clients);
}

#[actix_web::test]
async fn no_prefix_lifts_the_pipelining_limit() {
    // Each connection pipelines thousands of requests and never reads the
    // answers, after a prefix that once made the head guard pass the rest
    // of the connection through unchecked: a request announcing a body, or
    // empty lines. Answers would then pile up in the process's memory.
    let engine = Engine::start(None).await;
    let before = engine.rss();
    let request = "GET /v1/graph?basearch=x86_64&stream=stable HTTP/1.1\r\nHost: x\r\n\r\n";
    let prefixes = [
        "GET /v1/graph?basearch=x86_64&stream=stable HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nX".to_owned(),
        "GET /v1/graph HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_owned(),
        "\r\n".repeat(40),
    ];
    let clients: Vec<TcpStream> = (0..96)
        .map(|i| {
            let stream = TcpStream::connect(engine.service).unwrap();
            stream
                .set_write_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let payload = [prefixes[i % 3].as_str(), &request.repeat(6_000)].concat();
            let _ = (&stream).write_all(payload.as_bytes());
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let grown = engine.rss().saturating_sub(before);
    assert!(grown < 16 << 20, "RSS grew by {grown} bytes");
    drop(clients);
    // A request with a body is refused with a JSON error, and closed.
    let mut stream = TcpStream::connect(engine.service).unwrap();
    let head = exchange(&mut stream, prefixes[0].as_bytes(), Duration::from_secs(5));
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let (closed, rest) = until_closed(&mut stream, Duration::from_secs(2));
    assert!(closed, "{rest}");
    let answer = head + &rest;
    assert!(
        answer.contains("\"kind\":\"body_not_accepted\""),
        "{answer}"
    );
}

/// A client of the status port that asks `path` again and again, on one
/// kept-alive connection while the server keeps it, then on a new one,
/// until `stop`.
fn busy_status_client(addr: SocketAddr, path: &'static str, stop: &AtomicBool) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            continue;
        };
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0; 16384];
        while !stop.load(Ordering::Relaxed) {
            if stream.write_all(request.as_bytes()).is_err() {
                break;
            }
            // Small answers: one read holds the whole of one.
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

#[actix_web::test]
async fn busy_clients_of_the_status_port_leave_room_for_the_probes() {
    // 100 clients kept busy (more than the 64 connections the status
    // port keeps open): an operator's script gone wrong, or a hostile peer inside
    // the cluster. The probes must still be answered within their timeout.
    let engine = Engine::start(None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let (addr, stop) = (engine.status, Arc::clone(&stop));
            std::thread::spawn(move || busy_status_client(addr, "/livez", &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    let mut unanswered = Vec::new();
    for round in 0..5 {
        for path in ["/readyz", "/livez"] {
            if engine.probe(path).is_none() {
                unanswered.push((round, path));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    assert!(
        unanswered.is_empty(),
        "probes not answered within 1 s while 100 clients kept the status port busy: {unanswered:?}"
    );
}

#[actix_web::test]
async fn malformed_requests_are_counted_client_mistakes() {
    let mut engine = Engine::start(None).await;
    let addr = engine.service;
    let series = r#"fcos_cincinnati_pe_http_responses_total{code="400",handler="other"}"#;
    let before = engine.metric(series);
    let mut tls_hello = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    tls_hello.extend_from_slice(&[0x5a; 64]);
    let mut not_utf8 = b"GET /v1/graph?stream=".to_vec();
    not_utf8.extend_from_slice(&[0xff, 0xfe]);
    not_utf8.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    let malformed: [&[u8]; 3] = [
        &tls_hello,
        b"GET /v1/graph HTTP/1.1\r\nHost x\r\n\r\n",
        &not_utf8,
    ];
    for request in malformed {
        let mut stream = TcpStream::connect(addr).unwrap();
        let answer = exchange(&mut stream, request, Duration::from_secs(2));
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    // Each counted once, and none of them is an error in the log.
    let deadline = Instant::now() + Duration::from_secs(2);
    while engine.metric(series) < before + 3.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(engine.metric(series), before + 3.0);
    engine.process.line_with("malformed request").await;
    let log = engine.process.log();
    assert!(
        !log.lines().any(|l| l.contains("ERROR")),
        "errors logged:\n{log}"
    );
}
