//! Running a service: its HTTP servers and background tasks as one unit
//! that lives or dies whole.
//!
//! Each server is actix-server's (an accept thread handing connections to
//! worker threads, a cap on the connections each worker keeps open, a
//! graceful stop) running actix-http's HTTP/1 service over the
//! application. Between the socket and the parser sits
//! [`crate::limits::HeadGuard`], the one thing the framework does not do:
//! every request head of a connection, not only the first, must arrive
//! whole within [`HEAD_TIMEOUT`] and within the size limits.
//!
//! The connections a process keeps open are capped below its descriptor
//! limit and its memory limit ([`connection_budget`]), so that a flood of
//! connections on the service port, even of clients that never read their
//! answers, leaves descriptors for the status port, upstream fetches and
//! files, and memory for the service. On SIGTERM or SIGINT the service stops accepting, closes
//! idle connections, finishes the requests in flight and returns; if any
//! server or task ends by itself, everything is stopped and the reason
//! returned, so that the process exits non-zero instead of living on half.

use crate::limits::HeadGuard;
use crate::metrics::HttpMetrics;
use actix_http::body::MessageBody;
use actix_http::error::{DispatchError, ParseError};
use actix_http::{HttpService, KeepAlive, Request, Response};
use actix_server::ServerHandle;
use actix_service::{
    fn_service, map_config, IntoServiceFactory, ServiceFactory, ServiceFactoryExt,
};
use actix_web::dev::AppConfig;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Seconds the requests in flight get to finish when the service stops.
const SHUTDOWN_TIMEOUT_SECS: u64 = 10;
/// How long a request head may take to arrive whole, on every request of
/// a connection; also how long a new connection may take to start one.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle keep-alive connection stays open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Connections a service-port worker keeps open at most, whatever the
/// descriptor limit (memory bounds them too).
pub const MAX_CONNECTIONS_PER_WORKER: usize = 25_000;
/// Connections the status port keeps open at most (probes and scrapes
/// need a handful).
pub const STATUS_CONNECTIONS: usize = 64;
/// Descriptors kept out of the service ports' budget: the status ports'
/// connections, upstream fetches, state and policy files, the runtime's
/// own (epoll, wakers, the log).
pub const RESERVED_DESCRIPTORS: usize = 256;
/// How long a stopping service waits for a server whose workers are
/// still starting.
const STARTING_PATIENCE: Duration = Duration::from_secs(2);
/// Length of each listening socket's backlog.
const BACKLOG: u32 = 1024;

/// Service ports sharing the process's descriptors (1 per process, 2 when
/// one process runs both services).
static SERVICE_PORTS: AtomicUsize = AtomicUsize::new(1);

/// Declares that `ports` service ports share this process's descriptor
/// limit, before they are bound (the all-in-one binary runs two).
pub fn share_descriptors(ports: usize) {
    SERVICE_PORTS.store(ports.max(1), Ordering::Relaxed);
}

/// The descriptor limit of the process, after raising its soft limit to
/// its hard limit (as much as the operator allows).
pub fn descriptor_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!("cannot read the descriptor limit: {error}; assuming 1024");
            1024
        }
    }
}

/// Memory a connection of a service port is counted for: one holding an
/// answer its client does not read was measured at 53 KiB in the process
/// (actix-http's buffers, the answer's copy in its write buffer, the head
/// guard's buffer) and 58 KiB of socket buffers in the kernel, charged to
/// the same memory limit, for a 44 KB graph.
pub const CONNECTION_MEMORY: u64 = 128 * 1024;
/// The service ports' connections may take this fraction of the memory
/// limit (1/4): the rest is for the service's own state (graphs, the
/// census, up to a million tracked nodes) and the allocator's slack.
const CONNECTION_MEMORY_SHARE: u64 = 4;

/// Connections one service port keeps open at most, over all its workers:
/// the process's descriptor limit less [`RESERVED_DESCRIPTORS`], and a
/// quarter of its memory limit (`memory`, when there is one) at
/// [`CONNECTION_MEMORY`] a connection, each shared by the service ports of
/// the process; at most [`MAX_CONNECTIONS_PER_WORKER`] a worker, at least
/// one.
pub fn connection_budget(limit: u64, memory: Option<u64>, ports: usize, workers: usize) -> usize {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let ports = ports.max(1);
    let by_descriptors = limit.saturating_sub(RESERVED_DESCRIPTORS) / ports;
    let by_memory = memory.map_or(usize::MAX, |bytes| {
        let connections = bytes / CONNECTION_MEMORY_SHARE / CONNECTION_MEMORY;
        usize::try_from(connections).unwrap_or(usize::MAX) / ports
    });
    by_descriptors
        .min(by_memory)
        .min(MAX_CONNECTIONS_PER_WORKER.saturating_mul(workers))
        .max(workers)
}

/// The memory limit of the process's cgroup, as a container runtime or
/// systemd's `MemoryMax=` sets it: the lowest limit from its cgroup up to
/// the root (cgroup v2 `memory.max`, or v1 `memory.limit_in_bytes`);
/// `None` without one.
pub fn memory_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    memory_limit_in(&cgroups, std::path::Path::new("/sys/fs/cgroup"))
}

/// [`memory_limit`], from the contents of `/proc/self/cgroup` and the
/// cgroup file systems mounted under `root`.
fn memory_limit_in(cgroups: &str, root: &std::path::Path) -> Option<u64> {
    let v2 = cgroups
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .and_then(|path| lowest_limit(root, path, "memory.max"));
    let v1 = cgroups
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(':')?;
            rest.split_once(':')
        })
        .find(|(controllers, _)| controllers.split(',').any(|c| c == "memory"))
        .and_then(|(_, path)| lowest_limit(&root.join("memory"), path, "memory.limit_in_bytes"));
    v2.into_iter().chain(v1).min()
}

/// The lowest limit in `file` from cgroup `path` of the hierarchy at
/// `root` up to its root. "max" (v2), a value of 2^60 or more (v1's "no
/// limit"), or no such file is no limit.
fn lowest_limit(root: &std::path::Path, path: &str, file: &str) -> Option<u64> {
    // A cgroup outside this namespace's root ("/../…") has no limit to
    // read here.
    if path.split('/').any(|part| part == "..") {
        return None;
    }
    let mut dir = root.join(path.trim_start_matches('/'));
    let mut lowest: Option<u64> = None;
    loop {
        let limit = std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .filter(|&bytes| bytes < 1 << 60);
        lowest = lowest.into_iter().chain(limit).min();
        if dir == root || !dir.pop() || !dir.starts_with(root) {
            return lowest;
        }
    }
}

/// An HTTP server bound to its port, not yet running.
pub struct Listening {
    /// What it serves, for messages ("service", "status").
    pub name: &'static str,
    /// The address bound (the real port when 0 was asked).
    pub addr: SocketAddr,
    workers: usize,
    /// Connections kept open at most over all workers; `None`: from the
    /// descriptor budget.
    max_connections: Option<usize>,
    builder: actix_server::ServerBuilder,
    /// Workers whose services have started.
    started: Arc<AtomicUsize>,
    /// Where requests the parser refuses are counted.
    metrics: Arc<OnceLock<HttpMetrics>>,
    occupancy: Arc<Occupancy>,
}

impl Listening {
    /// Sets how many connections the server keeps open at most, over all
    /// its workers (at least one a worker).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max.max(self.workers));
        self
    }

    /// Counts the requests the HTTP parser refuses (a malformed head: 400,
    /// or 431) in `metrics`, under the handler `other`, as the application
    /// counts its own answers.
    pub fn counting(self, metrics: HttpMetrics) -> Self {
        let _ = self.metrics.set(metrics);
        self
    }
}

/// Binds `addr` and prepares a server answering with the app that
/// `factory` makes on each of `workers` threads (0: one per core), keeping
/// an idle connection open for `keep_alive` (the service port:
/// [`KEEP_ALIVE`]) or closing each after its answer
/// (`KeepAlive::Disabled`: the status port). The error names the address.
pub fn bind<F, I, S, B>(
    name: &'static str,
    addr: SocketAddr,
    workers: usize,
    keep_alive: KeepAlive,
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
    let workers = match workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let listener = listen(addr)?;
    let addr = listener.local_addr()?;
    let started = Arc::new(AtomicUsize::new(0));
    let builder = actix_server::Server::build()
        .workers(workers)
        .backlog(BACKLOG)
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .disable_signals();
    // Idle keep-alive connections are closed at once on a graceful stop.
    let stopping = builder.graceful_shutdown_signal();
    let counted = Arc::clone(&started);
    let metrics = Arc::new(OnceLock::<HttpMetrics>::new());
    let refused = Arc::clone(&metrics);
    let occupancy = Arc::new(Occupancy {
        open: AtomicUsize::new(0),
        max: AtomicUsize::new(usize::MAX),
        full: crate::logging::LimitNotice::default(),
        name,
        metrics: Arc::clone(&metrics),
    });
    let counting = Arc::clone(&occupancy);
    let builder = builder.listen(name, listener, move || {
        let app = factory()
            .into_factory()
            .map_err(|err| err.into().error_response());
        let stopping = stopping.clone();
        let http = HttpService::build()
            .keep_alive(keep_alive)
            // HeadGuard times every head, the first included.
            .client_request_timeout(Duration::ZERO)
            .client_disconnect_timeout(Duration::from_secs(1))
            // A client that closes its side has left: its request (a long
            // poll, say) ends with the connection.
            .h1_allow_half_closed(false)
            .local_addr(addr)
            .graceful_shutdown_signal(move || {
                let stopping = stopping.clone();
                async move { stopping.notified().await }
            })
            .h1(map_config(app, |_| AppConfig::default()));
        // The guard wraps each connection; what the parser refuses is
        // logged here (and counted by the application's metrics).
        let counting = Arc::clone(&counting);
        let connection = fn_service(move |io: actix_web::rt::net::TcpStream| {
            let slot = counting.enter();
            async move {
                // The peer address costs a system call a connection; it is
                // only read when requests are logged.
                let peer = if tracing::enabled!(tracing::Level::DEBUG) {
                    io.peer_addr().ok()
                } else {
                    None
                };
                Ok::<_, DispatchError>((HeadGuard::new(io, HEAD_TIMEOUT).holding(slot), peer))
            }
        });
        let refused = Arc::clone(&refused);
        Started {
            inner: connection.and_then(http).map_err(move |error| {
                if let (Some(code), Some(metrics)) = (refused_code(&error), refused.get()) {
                    metrics.observe("other", code, 0.0);
                }
                log_dispatch_error(&error);
            }),
            started: Arc::clone(&counted),
        }
    })?;
    Ok(Listening {
        name,
        addr,
        workers,
        max_connections: None,
        builder,
        started,
        metrics,
        occupancy,
    })
}

/// The connections open on one server, against its cap: logged once when
/// the cap is reached and again when there is room, and exported when the
/// server counts in [`HttpMetrics`].
pub(crate) struct Occupancy {
    open: AtomicUsize,
    max: AtomicUsize,
    full: crate::logging::LimitNotice,
    name: &'static str,
    metrics: Arc<OnceLock<HttpMetrics>>,
}

impl Occupancy {
    /// Counts a new connection until the slot is dropped.
    fn enter(self: &Arc<Self>) -> ConnectionSlot {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(metrics) = self.metrics.get() {
            metrics.connections.inc();
        }
        let max = self.max.load(Ordering::Relaxed);
        if let Some(unsaid) = (open >= max).then(|| self.full.reached()).flatten() {
            tracing::warn!(
                "{max} connections open on the {} port: new ones wait in the backlog until some close{}",
                self.name,
                crate::logging::unsaid(unsaid)
            );
        }
        ConnectionSlot(Arc::clone(self))
    }
}

/// One open connection of an [`Occupancy`].
pub(crate) struct ConnectionSlot(Arc<Occupancy>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let occupancy = &self.0;
        let open = occupancy.open.fetch_sub(1, Ordering::Relaxed) - 1;
        if let Some(metrics) = occupancy.metrics.get() {
            metrics.connections.dec();
        }
        let max = occupancy.max.load(Ordering::Relaxed);
        if open <= max - max / 10 && occupancy.full.relieved() {
            tracing::info!("accepting connections on the {} port again", occupancy.name);
        }
    }
}

/// The status of the answer the parser gave a request it refused.
fn refused_code(error: &DispatchError) -> Option<u16> {
    match error {
        DispatchError::Parse(ParseError::Io(_)) => None,
        DispatchError::Parse(ParseError::TooLarge) => Some(431),
        DispatchError::Parse(_) => Some(400),
        _ => None,
    }
}

/// Logs why a connection ended in error: at debug level for what a client
/// did (a malformed request, a network error), as a warning otherwise.
fn log_dispatch_error(error: &DispatchError) {
    match error {
        DispatchError::Parse(ParseError::Io(_))
        | DispatchError::Io(_)
        | DispatchError::DisconnectTimeout
        | DispatchError::SlowRequestTimeout => tracing::debug!("connection ended: {error}"),
        DispatchError::Parse(error) => tracing::debug!("malformed request: {error}"),
        _ => tracing::warn!("connection ended: {error}"),
    }
}

/// A service factory that counts the services it has made.
#[derive(Clone)]
struct Started<T> {
    inner: T,
    started: Arc<AtomicUsize>,
}

impl<T, Req> ServiceFactory<Req> for Started<T>
where
    T: ServiceFactory<Req, Config = ()>,
    T::Future: 'static,
{
    type Response = T::Response;
    type Error = T::Error;
    type Config = ();
    type Service = T::Service;
    type InitError = T::InitError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<T::Service, T::InitError>>>>;

    fn new_service(&self, config: ()) -> Self::Future {
        let made = self.inner.new_service(config);
        let started = Arc::clone(&self.started);
        Box::pin(async move {
            let service = made.await?;
            started.fetch_add(1, Ordering::Relaxed);
            Ok(service)
        })
    }
}

/// A listening socket on `addr`, reusable at once after a restart; a port
/// another process listens on is refused. Its connections send without
/// delay (`TCP_NODELAY`, which accepted sockets inherit on Linux): a
/// response is written whole, and Nagle's algorithm would only hold its
/// last segment back until the client acknowledges.
fn listen(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG as i32)?;
    Ok(socket.into())
}

/// A server running on its own thread.
struct Serving {
    handle: ServerHandle,
    /// Workers whose services have started.
    started: Arc<AtomicUsize>,
    workers: usize,
    /// Ends when the server has stopped, with its error.
    done: JoinHandle<io::Result<()>>,
}

impl Serving {
    /// Starts the accept thread and workers of `listening`, with at most
    /// `max_connections` open, driven from a thread of its own; sends to
    /// `ended` when the server ends.
    fn start(
        listening: Listening,
        max_connections: usize,
        ended: mpsc::UnboundedSender<String>,
    ) -> Self {
        let per_worker = max_connections.div_ceil(listening.workers).max(1);
        let max = per_worker * listening.workers;
        listening.occupancy.max.store(max, Ordering::Relaxed);
        if let Some(metrics) = listening.metrics.get() {
            metrics
                .connections_max
                .set(i64::try_from(max).unwrap_or(i64::MAX));
        }
        let builder = listening.builder.max_concurrent_connections(per_worker);
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (finished_tx, finished) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("{}-server", listening.name))
            .spawn(move || {
                let result = actix_web::rt::System::new().block_on(async move {
                    let server = builder.run();
                    let _ = handle_tx.send(server.handle());
                    server.await
                });
                let _ = finished_tx.send(result);
            })
            .expect("cannot start a server thread");
        let handle = handle_rx
            .recv()
            .expect("a server thread sends its handle first");
        let what = format!("the {} server on {}", listening.name, listening.addr);
        let done = actix_web::rt::spawn(async move {
            let result = finished
                .await
                .unwrap_or_else(|_| Err(io::Error::other("its thread panicked")));
            let _ = ended.send(match &result {
                Ok(()) => format!("{what} stopped"),
                Err(error) => format!("{what} failed: {error}"),
            });
            result
        });
        Serving {
            handle,
            started: listening.started,
            workers: listening.workers,
            done,
        }
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
    /// Runs the service and status servers; the background tasks run on
    /// the current actix runtime. The service port keeps at most the
    /// connections set on it, else its share of the descriptor and memory
    /// limits ([`connection_budget`]); the status port at most
    /// [`STATUS_CONNECTIONS`].
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
        let limit = descriptor_limit();
        let memory = memory_limit();
        let budget = connection_budget(
            limit,
            memory,
            SERVICE_PORTS.load(Ordering::Relaxed),
            service.workers,
        );
        let service_max = service.max_connections.unwrap_or(budget);
        let status_max = status.max_connections.unwrap_or(STATUS_CONNECTIONS);
        tracing::info!(
            descriptor_limit = limit,
            memory_limit = memory.map_or_else(|| "none".to_string(), |m| m.to_string()),
            service_connections = service_max,
            status_connections = status_max,
            "connection limits"
        );
        for (listening, max) in [(service, service_max), (status, status_max)] {
            let serving = Serving::start(listening, max, running.ended_tx.clone());
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

    /// Stops gracefully now: the servers stop accepting, idle connections
    /// are closed, requests in flight finish (up to 10 s), background
    /// tasks are cancelled.
    pub async fn stop(mut self) -> io::Result<()> {
        for hook in self.on_stop.drain(..) {
            hook();
        }
        for task in &self.tasks {
            task.abort();
        }
        // Every server is told to stop; one whose workers are still
        // starting their apps stops once they have, or is left behind
        // with the process if they never do.
        let stops: Vec<_> = self
            .servers
            .iter()
            .map(|server| {
                let stop = server.handle.stop(true);
                let started = server.started.load(Ordering::Relaxed) >= server.workers;
                async move {
                    if started {
                        stop.await;
                    }
                }
            })
            .collect();
        let bound = Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 5);
        let mut result = Ok(());
        if tokio::time::timeout(bound, futures_util::future::join_all(stops))
            .await
            .is_err()
        {
            result = Err(io::Error::other("a server did not stop in time"));
        }
        for server in self.servers.drain(..) {
            match tokio::time::timeout(STARTING_PATIENCE, server.done).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => result = Err(error),
                Ok(Err(error)) => result = Err(io::Error::other(error)),
                Err(_) => tracing::warn!("a server still starting was left behind"),
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
    use std::io::{Read, Write};

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

    /// Sends `request` on `stream` and reads the head of the answer, if one
    /// comes within `patience`.
    fn exchange(stream: &mut std::net::TcpStream, request: &[u8], patience: Duration) -> String {
        stream.write_all(request).unwrap();
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
    }

    #[test]
    fn the_budget_leaves_room_under_the_descriptor_limit() {
        assert_eq!(
            connection_budget(1024, None, 1, 2),
            1024 - RESERVED_DESCRIPTORS
        );
        assert_eq!(
            connection_budget(1024, None, 2, 2),
            (1024 - RESERVED_DESCRIPTORS) / 2
        );
        assert_eq!(
            connection_budget(1 << 20, None, 1, 2),
            2 * MAX_CONNECTIONS_PER_WORKER
        );
        // A limit below the reserve still serves, one connection a worker.
        assert_eq!(connection_budget(100, None, 1, 2), 2);
    }

    #[test]
    fn the_budget_leaves_room_under_the_memory_limit() {
        const MIB: u64 = 1 << 20;
        // 128 MiB: a quarter of it, 32 MiB, at 128 KiB a connection.
        assert_eq!(connection_budget(1 << 20, Some(128 * MIB), 1, 1), 256);
        // Two service ports in one process share it.
        assert_eq!(connection_budget(1 << 20, Some(128 * MIB), 2, 1), 128);
        // The lower of the two limits holds.
        assert_eq!(connection_budget(512, Some(128 * MIB), 1, 1), 256);
        assert_eq!(
            connection_budget(1 << 20, Some(1 << 40), 1, 1),
            MAX_CONNECTIONS_PER_WORKER
        );
        // Too little memory for one: still one a worker.
        assert_eq!(connection_budget(1 << 20, Some(MIB), 1, 2), 2);
    }

    #[test]
    fn the_memory_limit_is_the_lowest_on_the_way_to_the_root() {
        let root = tempfile::tempdir().unwrap();
        let dir = |path: &str| {
            let dir = root.path().join(path);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        };
        std::fs::write(dir("system.slice").join("memory.max"), "268435456\n").unwrap();
        std::fs::write(dir("system.slice/pe.service").join("memory.max"), "max\n").unwrap();
        let cgroups = "0::/system.slice/pe.service\n";
        assert_eq!(memory_limit_in(cgroups, root.path()), Some(256 << 20));
        std::fs::write(
            dir("system.slice/pe.service").join("memory.max"),
            "134217728\n",
        )
        .unwrap();
        assert_eq!(memory_limit_in(cgroups, root.path()), Some(128 << 20));
        // A container's own namespace: its cgroup is the root.
        std::fs::write(root.path().join("memory.max"), "67108864\n").unwrap();
        assert_eq!(memory_limit_in("0::/\n", root.path()), Some(64 << 20));
        // No limit anywhere, or no cgroup v2.
        assert_eq!(
            memory_limit_in("0::/other\n", tempfile::tempdir().unwrap().path()),
            None
        );
        assert_eq!(memory_limit_in("1:memory:/x\n", root.path()), None);
        // Outside the namespace's root: nothing to read.
        assert_eq!(memory_limit_in("0::/../../x\n", root.path()), None);
        // cgroup v1: its memory controller's hierarchy, where "no limit"
        // is a huge number.
        let v1 = "4:memory:/kubepods/pod1\n0::/\n";
        let memory = root.path().join("memory");
        std::fs::create_dir_all(memory.join("kubepods/pod1")).unwrap();
        std::fs::write(
            memory.join("memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        std::fs::write(
            memory.join("kubepods/pod1/memory.limit_in_bytes"),
            "134217728\n",
        )
        .unwrap();
        std::fs::remove_file(root.path().join("memory.max")).unwrap();
        assert_eq!(memory_limit_in(v1, root.path()), Some(128 << 20));
        std::fs::write(
            memory.join("kubepods/pod1/memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        assert_eq!(memory_limit_in(v1, root.path()), None);
    }

    #[test]
    fn a_port_already_listened_on_is_refused() {
        let taken = std::net::TcpListener::bind(loopback()).unwrap();
        let error = listen(taken.local_addr().unwrap()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
        let ours = listen(loopback()).unwrap();
        let error = listen(ours.local_addr().unwrap()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }

    #[actix_web::test]
    async fn serves_and_finishes_a_request_in_flight_when_stopped() {
        let in_flight = Arc::new(tokio::sync::Notify::new());
        let handling = Arc::clone(&in_flight);
        let app = move || {
            let handling = Arc::clone(&handling);
            App::new().route(
                "/slow",
                web::get().to(move || {
                    let handling = Arc::clone(&handling);
                    async move {
                        handling.notify_one();
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        HttpResponse::Ok().body("done")
                    }
                }),
            )
        };
        let service = bind("service", loopback(), 2, KEEP_ALIVE.into(), app).unwrap();
        let status = bind("status", loopback(), 1, KEEP_ALIVE.into(), ok_app).unwrap();
        let running = Running::spawn(service, status);
        let service_addr = running.service_addr;
        let request = std::thread::spawn(move || {
            let mut stream = std::net::TcpStream::connect(service_addr).unwrap();
            stream
                .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            response
        });
        tokio::time::timeout(Duration::from_secs(10), in_flight.notified())
            .await
            .expect("the request reaches its handler");
        running.stop().await.unwrap();
        let response = request.join().unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("done"), "{response}");
        // Stopped: nothing listens any more.
        assert!(std::net::TcpStream::connect(service_addr).is_err());
    }

    #[actix_web::test]
    async fn idle_keep_alive_connections_are_closed_at_once_on_stop() {
        let service = bind("service", loopback(), 1, KEEP_ALIVE.into(), ok_app).unwrap();
        let status = bind("status", loopback(), 1, KEEP_ALIVE.into(), ok_app).unwrap();
        let running = Running::spawn(service, status);
        let addr = running.service_addr;
        let mut idle = std::net::TcpStream::connect(addr).unwrap();
        let head = exchange(
            &mut idle,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(5),
        );
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(3), running.stop())
            .await
            .expect("an idle connection does not hold the stop")
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[actix_web::test]
    async fn a_server_that_cannot_start_stops_the_whole_service() {
        // The service port's app fails to start on its worker.
        let service = bind("service", loopback(), 1, KEEP_ALIVE.into(), || {
            ok_app().data_factory(|| async { Err::<u32, _>(()) })
        })
        .unwrap();
        let status = bind("status", loopback(), 1, KEEP_ALIVE.into(), ok_app).unwrap();
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
        let service = bind("service", loopback(), 1, KEEP_ALIVE.into(), ok_app)
            .unwrap()
            .max_connections(1);
        let status = bind("status", loopback(), 1, KEEP_ALIVE.into(), ok_app).unwrap();
        let running = Running::spawn(service, status);
        let addr = running.service_addr;
        let status_addr = running.status_addr;
        let result = tokio::task::spawn_blocking(move || {
            let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
            let mut first = std::net::TcpStream::connect(addr).unwrap();
            let answered = exchange(&mut first, request, Duration::from_secs(5));
            // The second connection waits in the backlog while the first
            // stays open (kept alive)...
            let mut second = std::net::TcpStream::connect(addr).unwrap();
            let waiting = exchange(&mut second, request, Duration::from_millis(300));
            // ...while the status port answers...
            let mut status = std::net::TcpStream::connect(status_addr).unwrap();
            let probe = exchange(&mut status, request, Duration::from_secs(5));
            // ...and is served once the first closes.
            drop(first);
            let served = exchange(&mut second, b"", Duration::from_secs(5));
            (answered, waiting, probe, served)
        })
        .await
        .unwrap();
        assert!(result.0.starts_with("HTTP/1.1 200"), "{}", result.0);
        assert_eq!(result.1, "", "answered over the limit");
        assert!(result.2.starts_with("HTTP/1.1 200"), "{}", result.2);
        assert!(result.3.starts_with("HTTP/1.1 200"), "{}", result.3);
        running.stop().await.unwrap();
    }

    #[actix_web::test]
    async fn a_worker_still_starting_its_app_stops_at_once() {
        let starting = Arc::new(tokio::sync::Notify::new());
        let factory = Arc::clone(&starting);
        let service = bind("service", loopback(), 1, KEEP_ALIVE.into(), move || {
            let factory = Arc::clone(&factory);
            ok_app().data_factory(move || {
                factory.notify_one();
                std::future::pending::<Result<u32, ()>>()
            })
        })
        .unwrap();
        let status = bind("status", loopback(), 1, KEEP_ALIVE.into(), ok_app).unwrap();
        let running = Running::spawn(service, status);
        tokio::time::timeout(Duration::from_secs(10), starting.notified())
            .await
            .expect("the worker starts its app");
        tokio::time::timeout(Duration::from_secs(5), running.stop())
            .await
            .expect("stopped without waiting for the app")
            .unwrap();
    }

    #[actix_web::test]
    async fn a_task_that_ends_stops_the_whole_service() {
        let service = bind("service", loopback(), 1, KEEP_ALIVE.into(), ok_app).unwrap();
        let status = bind("status", loopback(), 1, KEEP_ALIVE.into(), ok_app).unwrap();
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
