//! Long polls of `/v1/scopes` on the real `fcos-graph-builder` binary: a
//! held poll ends, and its descriptor is released, within a second of its
//! client closing the connection; beyond `service.max_waiting_polls` a poll
//! is answered at once, counted and logged.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};
use test_support::{logged_addr, Process};

const BIN: &str = env!("CARGO_BIN_EXE_fcos-graph-builder");

/// A graph-builder serving one small stream from files, holding at most
/// `max_waiting_polls` polls.
struct GraphBuilder {
    process: Process,
    service: SocketAddr,
    status: SocketAddr,
    _dir: tempfile::TempDir,
}

impl GraphBuilder {
    async fn start(max_waiting_polls: usize) -> GraphBuilder {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("stable-releases.json"),
            r#"{"stream": "stable", "releases": [
                {"version": "1.0", "commits": [{"architecture": "x86_64", "checksum": "a"}]},
                {"version": "2.0", "commits": [{"architecture": "x86_64", "checksum": "b"}]}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("stable-updates.json"),
            r#"{"stream": "stable", "releases": []}"#,
        )
        .unwrap();
        let config = dir.path().join("fcos-graph-builder.toml");
        std::fs::write(
            &config,
            format!(
                "[service]\naddress = \"127.0.0.1\"\nport = 0\nmax_waiting_polls = {max_waiting_polls}\n[status]\naddress = \"127.0.0.1\"\nport = 0\n[upstream]\nrelease_index_url = \"file://{0}/${{stream}}-releases.json\"\nupdates_url = \"file://{0}/${{stream}}-updates.json\"\nrefresh_secs = 60\n[streams]\nstable = [\"x86_64\"]\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let mut process = Process::spawn(Command::new(BIN).arg("-v").arg("-c").arg(&config));
        let listening = process.line_with("graph-builder listening").await;
        let gb = GraphBuilder {
            service: logged_addr(&listening, "service_addr"),
            status: logged_addr(&listening, "status_addr"),
            process,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while get(gb.status, "/readyz", &[]).0 != 200 {
            assert!(
                Instant::now() < deadline,
                "never ready:\n{}",
                gb.process.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gb
    }

    /// The `ETag` of the current listing.
    fn listing_etag(&self) -> String {
        let (status, head) = get(self.service, "/v1/scopes", &[]);
        assert_eq!(status, 200);
        head.lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("etag")
                    .then(|| value.trim().to_string())
            })
            .expect("an ETag")
    }

    /// The value of a metric without labels.
    fn metric(&self, name: &str) -> f64 {
        let (status, text) = get(self.status, "/metrics", &[]);
        assert_eq!(status, 200);
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    }

    /// Waits up to 10 s for `name` to be `value`.
    async fn wait_metric(&self, name: &str, value: f64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.metric(name) != value {
            assert!(
                Instant::now() < deadline,
                "{name} is {}, not {value}",
                self.metric(name)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a poll that waits up to 60 s for the listing to change from
    /// `etag`, and leaves its connection open.
    fn send_poll(&self, etag: &str) -> TcpStream {
        let mut stream = TcpStream::connect(self.service).unwrap();
        write!(
            stream,
            "GET /v1/scopes?wait=60 HTTP/1.1\r\nHost: gb\r\nAccept: application/json\r\nIf-None-Match: {etag}\r\n\r\n"
        )
        .unwrap();
        stream
    }

    /// The graph-builder's descriptors of connections to its service
    /// port, each with its TCP state (`01` established, `08` CLOSE_WAIT: the
    /// client has closed its side), read from `/proc/PID/fd` and
    /// `/proc/net/tcp`.
    fn service_connections(&self) -> Vec<String> {
        let inodes: Vec<String> =
            std::fs::read_dir(format!("/proc/{}/fd", self.process.child.id()))
                .unwrap()
                .filter_map(|fd| {
                    let target = std::fs::read_link(fd.ok()?.path()).ok()?;
                    let target = target.to_str()?;
                    Some(
                        target
                            .strip_prefix("socket:[")?
                            .strip_suffix(']')?
                            .to_string(),
                    )
                })
                .collect();
        let port = format!(":{:04X}", self.service.port());
        std::fs::read_to_string("/proc/net/tcp")
            .unwrap()
            .lines()
            .skip(1)
            .filter_map(|line| {
                // local_address rem_address st … inode
                let fields: Vec<&str> = line.split_whitespace().collect();
                let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
                (local.ends_with(&port) && *state != "0A" && inodes.iter().any(|i| i == inode))
                    .then(|| state.to_string())
            })
            .collect()
    }
}

/// One request on its own connection (`Connection: close`): the status and
/// the whole answer, head and body.
fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use std::io::Read;
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: gb\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .unwrap_or_else(|e| panic!("no answer to {path} within 10 s: {e}"));
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    (status, answer)
}

#[tokio::test]
async fn a_held_poll_ends_within_a_second_of_its_client_leaving() {
    let gb = GraphBuilder::start(256).await;
    let etag = gb.listing_etag();

    let polls: Vec<TcpStream> = (0..3).map(|_| gb.send_poll(&etag)).collect();
    gb.wait_metric("fcos_cincinnati_gb_scopes_waiting", 3.0)
        .await;
    assert_eq!(gb.service_connections(), ["01", "01", "01"]);

    // The clients close their connections normally (FIN), as a client
    // giving up on a poll does.
    drop(polls);
    let closed = Instant::now();
    loop {
        let held = gb.service_connections();
        if held.is_empty() {
            break;
        }
        assert!(
            closed.elapsed() < Duration::from_secs(1),
            "1 s after their clients left, the graph-builder still holds their connections (states {held:?}; 08 is CLOSE_WAIT)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The waits ended with their connections: nothing is left held.
    gb.wait_metric("fcos_cincinnati_gb_scopes_waiting", 0.0)
        .await;
    assert_eq!(
        gb.metric("fcos_cincinnati_gb_scopes_waits_refused_total"),
        0.0
    );
}

#[tokio::test]
async fn polls_beyond_the_cap_are_answered_at_once_counted_and_logged() {
    let mut gb = GraphBuilder::start(2).await;
    let etag = gb.listing_etag();
    assert_eq!(
        gb.metric("fcos_cincinnati_gb_scopes_waits_refused_total"),
        0.0
    );
    assert_eq!(gb.metric("fcos_cincinnati_gb_scopes_waiting_max"), 2.0);

    let held: Vec<TcpStream> = (0..2).map(|_| gb.send_poll(&etag)).collect();
    gb.wait_metric("fcos_cincinnati_gb_scopes_waiting", 2.0)
        .await;

    // A third poll is answered as without `wait`: 304, nothing changed
    // (`get` gives up after 10 s; a held poll would take 60).
    let (status, _) = get(
        gb.service,
        "/v1/scopes?wait=60",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(status, 304);
    assert_eq!(
        gb.metric("fcos_cincinnati_gb_scopes_waits_refused_total"),
        1.0
    );
    assert_eq!(gb.metric("fcos_cincinnati_gb_scopes_waiting"), 2.0);
    gb.process
        .line_with("long polls of /v1/scopes held (service.max_waiting_polls)")
        .await;

    // Once the held polls end, polls wait again.
    drop(held);
    gb.wait_metric("fcos_cincinnati_gb_scopes_waiting", 0.0)
        .await;
    gb.process
        .line_with("below service.max_waiting_polls again")
        .await;
    let _waiting = gb.send_poll(&etag);
    gb.wait_metric("fcos_cincinnati_gb_scopes_waiting", 1.0)
        .await;
    assert_eq!(
        gb.metric("fcos_cincinnati_gb_scopes_waits_refused_total"),
        1.0
    );
}
