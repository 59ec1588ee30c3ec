//! The services' HTTP clients (the graph-builder's upstream fetches and
//! registry requests, the policy-engine's replica): what each of them
//! needs whatever it reads, so that a new client cannot miss it.

use std::time::Duration;

/// How long a client keeps an idle connection for another request: less
/// than the servers it reads keep it (these servers'
/// [`crate::server::KEEP_ALIVE`]; many others close after 5 s too). A
/// request sent on a connection the server is closing fails half-sent,
/// and is not retried (a read error, "connection closed before message
/// completed"). A connection idle longer is not reused; a new one is
/// opened.
pub const IDLE: Duration = Duration::from_secs(4);

/// A client builder for `program` (its `User-Agent`, with the version),
/// keeping idle connections for [`IDLE`] at most. The caller adds its
/// timeouts, redirect policy and pool size.
pub fn builder(program: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .pool_idle_timeout(IDLE)
        .user_agent(format!("{program}/{}", env!("CARGO_PKG_VERSION")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Reads one request head; false when the peer closed first.
    fn read_head(reader: &mut impl BufRead) -> bool {
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return false,
                Ok(_) if line == "\r\n" => return true,
                Ok(_) => {}
            }
        }
    }

    /// A server that answers the first request of each connection and
    /// closes the connection when the next one arrives, without an answer:
    /// what a server does when its keep-alive ends just as a client sends
    /// on the idle connection. Counts the connections.
    fn closing_server() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/doc.json", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    if read_head(&mut reader) {
                        let mut stream = stream;
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
                        // The next request on this connection ends it.
                        read_head(&mut reader);
                    }
                });
            }
        });
        (url, connections)
    }

    /// A request after a pause longer than [`IDLE`] goes out on a new
    /// connection, not on the idle one, which the server may be closing.
    #[tokio::test]
    async fn a_connection_idle_for_longer_than_idle_is_not_reused() {
        let (url, connections) = closing_server();
        let client = builder("test").build().unwrap();
        let get = || async { client.get(&url).send().await?.bytes().await };
        assert_eq!(get().await.unwrap().as_ref(), b"{}");
        tokio::time::sleep(IDLE + Duration::from_millis(500)).await;
        let second = get().await;
        assert!(second.is_ok(), "{second:?}");
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }
}
