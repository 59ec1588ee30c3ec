//! Running a service: its HTTP servers and background tasks as one unit
//! that lives or dies whole. Each server runs on worker threads (one per
//! core by default), each accepting connections on a listening socket of
//! its own (one `SO_REUSEPORT` group): no thread hands connections over,
//! and a connection stays on the thread that accepted it. The servers check every request head
//! against [`crate::limits`] before parsing it; on SIGTERM or SIGINT the
//! service stops accepting, closes idle connections, finishes the requests
//! in flight and returns; if any server or task ends by itself, everything
//! is stopped and the reason returned, so that the process exits non-zero
//! instead of living on half.

use crate::limits::LimitedStream;
use actix_http::{HttpService, Request, Response};
use actix_service::{map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt};
use actix_web::body::MessageBody;
use actix_web::dev::AppConfig;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// Seconds the requests in flight get to finish when the service stops.
const SHUTDOWN_TIMEOUT_SECS: u64 = 10;
/// Pause in accepting after the process ran out of file descriptors or
/// memory, so that connections in flight can end and free some.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connections a worker keeps open at most by default (as many as
/// actix-server's default): more wait in the listening socket's backlog
/// until one closes, so that a flood of connections cannot take all the
/// memory.
pub const MAX_CONNECTIONS_PER_WORKER: usize = 25_000;

/// What a worker thread runs: its accept loop, until told to stop, with
/// at most so many connections open.
type Worker = Box<
    dyn FnOnce(
            std::net::TcpListener,
            watch::Receiver<bool>,
            usize,
        ) -> Pin<Box<dyn Future<Output = io::Result<()>>>>
        + Send,
>;

/// An HTTP server bound to its port, not yet running.
pub struct Listening {
    /// What it serves, for messages ("service", "status").
    pub name: &'static str,
    /// The address bound (the real port when 0 was asked).
    pub addr: SocketAddr,
    /// The listening socket and the accept loop of each worker thread.
    workers: Vec<(std::net::TcpListener, Worker)>,
    /// Connections each worker keeps open at most.
    max_connections: usize,
}

impl Listening {
    /// Sets how many connections each worker keeps open at most (default
    /// [`MAX_CONNECTIONS_PER_WORKER`], at least 1).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }
}

/// Binds `addr` and prepares a server answering with the app that
/// `factory` makes on each of `workers` threads (0: one per core). The
/// error names the address.
pub fn bind<F, I, S, B>(
    name: &'static str,
    addr: SocketAddr,
    workers: usize,
    factory: F,
) -> io::Result<Listening>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    B: MessageBody + 'static,
{
    let count = match workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let listeners = listen(addr, count)?;
    let addr = listeners[0].local_addr()?;
    let mut workers = Vec::with_capacity(count);
    for listener in listeners {
        let factory = factory.clone();
        let worker: Worker = Box::new(move |listener, stop, max_connections| {
            let app = factory()
                .into_factory()
                .map_err(|err| err.into().error_response());
            let signal = stop.clone();
            let http = HttpService::build()
                .keep_alive(Duration::from_secs(5))
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                // A client that closes its side has left: its request (a long
                // poll, say) ends with the connection.
                .h1_allow_half_closed(false)
                .local_addr(addr)
                // Idle keep-alive connections are closed at once on stop.
                .graceful_shutdown_signal(move || {
                    let mut stop = signal.clone();
                    async move {
                        let _ = stop.wait_for(|stop| *stop).await;
                    }
                })
                .h1(map_config(app, |_| AppConfig::default()));
            Box::pin(serve(listener, stop, max_connections, http))
        });
        workers.push((listener, worker));
    }
    Ok(Listening {
        name,
        addr,
        workers,
        max_connections: MAX_CONNECTIONS_PER_WORKER,
    })
}

/// A worker's accept loop: serves each connection it accepts on `listener`
/// with a service from `http`, with at most `max_connections` open, until
/// `stop` turns true, then lets the connections finish (up to
/// [`SHUTDOWN_TIMEOUT_SECS`]).
async fn serve<H>(
    listener: std::net::TcpListener,
    mut stop: watch::Receiver<bool>,
    max_connections: usize,
    http: H,
) -> io::Result<()>
where
    H: ServiceFactory<
        (LimitedStream, Option<SocketAddr>),
        Config = (),
        Response = (),
        InitError = (),
    >,
    H::Service: 'static,
{
    let service = tokio::select! {
        biased;
        _ = stop.wait_for(|stop| *stop) => return Ok(()),
        service = http.new_service(()) => service
            .map_err(|()| io::Error::other("the application could not start on a worker"))?,
    };
    let service = Rc::new(service);
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut starved = false;
    let mut full = false;
    let result = loop {
        // A slot for the next connection, else wait for one to close.
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if !std::mem::replace(&mut full, true) {
                    tracing::warn!("{max_connections} connections open on a worker: new ones wait in the backlog until one closes");
                }
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|stop| *stop) => break Ok(()),
                    slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
                }
            }
        };
        tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => break Ok(()),
            accepted = listener.accept() => match accepted {
                // No system call per connection here: TCP_NODELAY comes
                // from the listening socket, and the peer address is not
                // asked for (nothing reads it; a request over a limit logs
                // it itself).
                Ok((io, _)) => {
                    if std::mem::take(&mut starved) | std::mem::take(&mut full) {
                        tracing::info!("accepting connections again");
                    }
                    let service = Rc::clone(&service);
                    connections.spawn_local(async move {
                        let _ = service.call((LimitedStream::new(io), None)).await;
                        drop(slot);
                    });
                }
                Err(error) => match error.raw_os_error() {
                    // The listening socket itself is unusable.
                    Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EFAULT) => {
                        break Err(error)
                    }
                    // Out of file descriptors or memory: new connections
                    // wait in the backlog until some are freed.
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        if !std::mem::replace(&mut starved, true) {
                            tracing::warn!("cannot accept connections: {error}; retrying every {} ms", ACCEPT_BACKOFF.as_millis());
                        }
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    // The client gave up or its network failed before the
                    // connection was accepted, a firewall refused it, or a
                    // signal interrupted the call: the next one may succeed
                    // (accept(2) passes pending network errors on).
                    _ => tracing::debug!("accepting a connection failed: {error}"),
                },
            },
        }
    };
    drop(listener);
    connections.close();
    let timeout = Duration::from_secs(SHUTDOWN_TIMEOUT_SECS);
    if tokio::time::timeout(timeout, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "{} connections still busy after {SHUTDOWN_TIMEOUT_SECS} s; closing them",
            connections.len()
        );
    }
    result
}

/// `count` listening sockets on `addr`, one per worker, in one
/// `SO_REUSEPORT` group: the kernel spreads new connections over them, so
/// that each worker accepts its own without waking the others. Reusable at
/// once after a restart. Their connections send without delay
/// (`TCP_NODELAY`, which accepted sockets inherit on Linux): a response is
/// written whole, and Nagle's algorithm would only hold its last segment
/// back until the client acknowledges.
fn listen(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = |addr: SocketAddr, group: bool| -> io::Result<Socket> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(group)?;
        socket.set_tcp_nodelay(true)?;
        socket.bind(&addr.into())?;
        if group {
            // At once: a probe binding meanwhile finds the port taken.
            socket.listen(1024)?;
        }
        Ok(socket)
    };
    // A port another process listens on is refused, as without the group:
    // another instance of the service would otherwise join it silently.
    // (A program of the same user that sets SO_REUSEPORT itself can still
    // join; the kernel allows it.)
    if addr.port() != 0 {
        drop(socket(addr, false)?);
    }
    let first = socket(addr, true)?;
    let addr = first.local_addr()?.as_socket().expect("an IP socket");
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(socket(addr, true)?);
    }
    Ok(sockets.into_iter().map(Into::into).collect())
}

/// A server running on its worker threads.
struct Serving {
    /// Turned true to stop the workers.
    stop: watch::Sender<bool>,
    /// Ends when every worker has ended, with the first error.
    done: JoinHandle<io::Result<()>>,
}

impl Serving {
    /// Starts the workers of `listening`, each on a thread of its own with
    /// its own runtime; sends to `ended` when the first of them ends.
    fn start(listening: Listening, ended: mpsc::UnboundedSender<String>) -> Self {
        let (stop, stopping) = watch::channel(false);
        let (finished_tx, mut finished) = mpsc::unbounded_channel();
        let count = listening.workers.len();
        let max_connections = listening.max_connections;
        for (index, (listener, worker)) in listening.workers.into_iter().enumerate() {
            let stopping = stopping.clone();
            let finished = finished_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{index}", listening.name))
                .spawn(move || {
                    let run = move || {
                        actix_web::rt::System::new().block_on(async move {
                            worker(listener, stopping, max_connections).await
                        })
                    };
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                        .unwrap_or_else(|_| Err(io::Error::other("a worker thread panicked")));
                    let _ = finished.send(result);
                });
            if let Err(error) = spawned {
                let _ = finished_tx.send(Err(error));
            }
        }
        let what = format!("the {} server on {}", listening.name, listening.addr);
        let done = actix_web::rt::spawn(async move {
            let mut result = finished.recv().await.unwrap_or(Ok(()));
            let _ = ended.send(match &result {
                Ok(()) => format!("{what} stopped"),
                Err(error) => format!("{what} failed: {error}"),
            });
            for _ in 1..count {
                if let Some(Err(error)) = finished.recv().await {
                    result = result.and(Err(error));
                }
            }
            result
        });
        Serving { stop, done }
    }
}

/// A started service: where it listens, and what to stop.
pub struct Running {
    /// Address of the service port, as bound.
    pub service_addr: SocketAddr,
    /// Address of the status port, as bound.
    pub status_addr: SocketAddr,
    servers: Vec<Serving>,
    tasks: Vec<JoinHandle<()>>,
    /// What ended by itself, as a sentence.
    ended_tx: mpsc::UnboundedSender<String>,
    ended: mpsc::UnboundedReceiver<String>,
    on_stop: Vec<Box<dyn FnOnce()>>,
}

impl Running {
    /// Runs the service and status servers, each on its worker threads;
    /// the background tasks run on the current actix runtime.
    pub fn spawn(service: Listening, status: Listening) -> Self {
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let mut running = Running {
            service_addr: service.addr,
            status_addr: status.addr,
            servers: Vec::new(),
            tasks: Vec::new(),
            ended_tx,
            ended,
            on_stop: Vec::new(),
        };
        for listening in [service, status] {
            let serving = Serving::start(listening, running.ended_tx.clone());
            running.servers.push(serving);
        }
        running
    }

    /// Runs a background task `name`, which must not end before the
    /// service stops.
    pub fn task(mut self, name: &'static str, task: impl Future<Output = ()> + 'static) -> Self {
        let ended = self.ended_tx.clone();
        self.tasks.push(actix_web::rt::spawn(async move {
            task.await;
            let _ = ended.send(format!("the {name} task ended"));
        }));
        self
    }

    /// Calls `hook` first when the service stops (to end long-running
    /// requests, for example).
    pub fn on_stop(mut self, hook: impl FnOnce() + 'static) -> Self {
        self.on_stop.push(Box::new(hook));
        self
    }

    /// Makes `other` part of this service: they stop together, and
    /// whatever of either ends by itself stops both. The addresses stay
    /// this one's.
    pub fn absorb(mut self, mut other: Running) -> Self {
        self.servers.append(&mut other.servers);
        self.on_stop.append(&mut other.on_stop);
        let tx = self.ended_tx.clone();
        let mut rx = other.ended;
        drop(other.ended_tx);
        self.tasks.append(&mut other.tasks);
        self.tasks.push(actix_web::rt::spawn(async move {
            while let Some(what) = rx.recv().await {
                let _ = tx.send(what);
            }
        }));
        self
    }

    /// Runs until SIGTERM or SIGINT, then stops gracefully and returns
    /// `Ok`; if a server or task ends first, stops the rest and returns
    /// why.
    pub async fn wait(mut self) -> io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let failure = tokio::select! {
            _ = terminate.recv() => None,
            _ = interrupt.recv() => None,
            Some(why) = self.ended.recv() => Some(why),
        };
        match &failure {
            None => tracing::info!("stopping: finishing the requests in flight"),
            Some(why) => tracing::error!("{why}; stopping the service"),
        }
        let stopped = self.stop().await;
        match failure {
            None => stopped,
            Some(why) => Err(io::Error::other(why)),
        }
    }

    /// Stops gracefully now: idle connections are closed, requests in
    /// flight finish (up to 10 s), background tasks are cancelled.
    pub async fn stop(mut self) -> io::Result<()> {
        for hook in self.on_stop.drain(..) {
            hook();
        }
        for task in &self.tasks {
            task.abort();
        }
        for server in &self.servers {
            server.stop.send_replace(true);
        }
        // Workers finish their requests within SHUTDOWN_TIMEOUT_SECS; one
        // that does not (a handler blocking its thread) is left behind.
        let bound = Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 5);
        let mut result = Ok(());
        for server in self.servers.drain(..) {
            match tokio::time::timeout(bound, server.done).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => result = Err(error),
                Ok(Err(error)) => result = Err(io::Error::other(error)),
                Err(_) => result = Err(io::Error::other("a server's workers did not stop in time")),
            }
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        tracing::info!("stopped");
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{web, App, HttpResponse};

    fn ok_app() -> App<
        impl ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        App::new().route("/", web::get().to(|| async { HttpResponse::Ok().finish() }))
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn connections_spread_over_the_workers_sockets_and_send_without_delay() {
        let listeners = listen(loopback(), 2).unwrap();
        let addr = listeners[0].local_addr().unwrap();
        assert_eq!(listeners[1].local_addr().unwrap(), addr);
        let _clients: Vec<_> = (0..32)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let mut accepted = Vec::new();
        for listener in &listeners {
            listener.set_nonblocking(true).unwrap();
            let mut count = 0;
            while let Ok((connection, _)) = listener.accept() {
                assert!(connection.nodelay().unwrap());
                count += 1;
            }
            accepted.push(count);
        }
        assert_eq!(accepted.iter().sum::<usize>(), 32, "{accepted:?}");
        assert!(accepted.iter().all(|&n| n > 0), "{accepted:?}");
    }

    #[test]
    fn a_port_already_listened_on_is_refused() {
        let taken = std::net::TcpListener::bind(loopback()).unwrap();
        assert!(listen(taken.local_addr().unwrap(), 2).is_err());
        // Another instance of the service does not join the group either.
        let ours = listen(loopback(), 2).unwrap();
        let error = listen(ours[0].local_addr().unwrap(), 2).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }

    #[actix_web::test]
    async fn serves_and_finishes_a_request_in_flight_when_stopped() {
        let app = || {
            App::new().route(
                "/slow",
                web::get().to(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    HttpResponse::Ok().body("done")
                }),
            )
        };
        let service = bind("service", loopback(), 2, app).unwrap();
        let status = bind("status", loopback(), 1, ok_app).unwrap();
        let running = Running::spawn(service, status);
        let service_addr = running.service_addr;
        let request = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(service_addr).unwrap();
            stream
                .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            response
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        running.stop().await.unwrap();
        let response = request.join().unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("done"), "{response}");
        // Stopped: nothing listens any more.
        assert!(std::net::TcpStream::connect(service_addr).is_err());
    }

    #[actix_web::test]
    async fn a_server_that_cannot_start_stops_the_whole_service() {
        // The service port's app fails to start on its worker.
        let service = bind("service", loopback(), 1, || {
            ok_app().data_factory(|| async { Err::<u32, _>(()) })
        })
        .unwrap();
        let status = bind("status", loopback(), 1, ok_app).unwrap();
        let running = Running::spawn(service, status);
        let status_addr = running.status_addr;
        let error = tokio::time::timeout(Duration::from_secs(10), running.wait())
            .await
            .expect("the service stops by itself")
            .unwrap_err();
        assert!(error.to_string().contains("the service server"), "{error}");
        // The status port went with it.
        assert!(std::net::TcpStream::connect(status_addr).is_err());
    }

    #[actix_web::test]
    async fn connections_over_the_limit_wait_until_one_closes() {
        use std::io::{Read, Write};
        let service = bind("service", loopback(), 1, ok_app)
            .unwrap()
            .max_connections(1);
        let status = bind("status", loopback(), 1, ok_app).unwrap();
        let running = Running::spawn(service, status);
        let addr = running.service_addr;
        // Sends a request and reads the head of the answer, if one comes
        // within `patience`.
        let exchange = move |stream: &mut std::net::TcpStream, patience: Duration| {
            stream.set_read_timeout(Some(patience)).unwrap();
            let mut head = Vec::new();
            let mut buf = [0; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            String::from_utf8_lossy(&head).into_owned()
        };
        let result = tokio::task::spawn_blocking(move || {
            let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
            let mut first = std::net::TcpStream::connect(addr).unwrap();
            first.write_all(request).unwrap();
            let answered = exchange(&mut first, Duration::from_secs(5));
            // The second connection waits in the backlog while the first
            // stays open (kept alive)...
            let mut second = std::net::TcpStream::connect(addr).unwrap();
            second.write_all(request).unwrap();
            let waiting = exchange(&mut second, Duration::from_millis(300));
            // ...and is served once it closes.
            drop(first);
            let served = exchange(&mut second, Duration::from_secs(5));
            (answered, waiting, served)
        })
        .await
        .unwrap();
        assert!(result.0.starts_with("HTTP/1.1 200"), "{}", result.0);
        assert_eq!(result.1, "", "answered over the limit");
        assert!(result.2.starts_with("HTTP/1.1 200"), "{}", result.2);
        running.stop().await.unwrap();
    }

    #[actix_web::test]
    async fn a_worker_still_starting_its_app_stops_at_once() {
        let service = bind("service", loopback(), 1, || {
            ok_app().data_factory(std::future::pending::<Result<u32, ()>>)
        })
        .unwrap();
        let status = bind("status", loopback(), 1, ok_app).unwrap();
        let running = Running::spawn(service, status);
        tokio::time::sleep(Duration::from_millis(100)).await;
        tokio::time::timeout(Duration::from_secs(5), running.stop())
            .await
            .expect("stopped without waiting for the app")
            .unwrap();
    }

    #[actix_web::test]
    async fn a_task_that_ends_stops_the_whole_service() {
        let service = bind("service", loopback(), 1, ok_app).unwrap();
        let status = bind("status", loopback(), 1, ok_app).unwrap();
        let running = Running::spawn(service, status).task("refresh", async {});
        let error = tokio::time::timeout(Duration::from_secs(10), running.wait())
            .await
            .expect("the service stops by itself")
            .unwrap_err();
        assert!(
            error.to_string().contains("the refresh task ended"),
            "{error}"
        );
    }
}
