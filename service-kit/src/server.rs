//! Running a service: its HTTP servers and background tasks as one unit
//! that lives or dies whole. The servers check every request head against
//! [`crate::limits`] before parsing it; on SIGTERM or SIGINT the service
//! stops accepting, closes idle connections, finishes the requests in
//! flight and returns; if any server or task ends by itself, everything is
//! stopped and the reason returned, so that the process exits non-zero
//! instead of living on half.

use crate::limits::LimitedStream;
use actix_http::{HttpService, Request, Response};
use actix_server::{Server, ServerHandle};
use actix_service::{
    fn_service, map_config, IntoServiceFactory, ServiceFactory, ServiceFactoryExt,
};
use actix_web::body::MessageBody;
use actix_web::dev::AppConfig;
use actix_web::rt::net::TcpStream;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Seconds the requests in flight get to finish when the service stops.
const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// An HTTP server bound to its port, not yet running.
pub struct Listening {
    /// What it serves, for messages ("service", "status").
    pub name: &'static str,
    /// The address bound (the real port when 0 was asked).
    pub addr: SocketAddr,
    server: Server,
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
    let listener = listen(addr)?;
    let addr = listener.local_addr()?;
    let mut builder = Server::build()
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS);
    if workers > 0 {
        builder = builder.workers(workers);
    }
    let shutdown = builder.graceful_shutdown_signal();
    let server = builder
        .listen(name, listener, move || {
            let shutdown = shutdown.clone();
            let app = factory()
                .into_factory()
                .map_err(|err| err.into().error_response());
            let http = HttpService::build()
                .keep_alive(Duration::from_secs(5))
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(addr)
                // Idle keep-alive connections are closed at once on stop.
                .graceful_shutdown_signal(move || {
                    let shutdown = shutdown.clone();
                    async move { shutdown.notified().await }
                })
                .h1(map_config(app, |_| AppConfig::default()));
            // No system call per connection here: TCP_NODELAY comes from
            // the listening socket, and the peer address is not asked for
            // (nothing reads it; a request over a limit logs it itself).
            fn_service(|io: TcpStream| async move { Ok((LimitedStream::new(io), None)) })
                .and_then(http)
        })?
        .run();
    Ok(Listening { name, addr, server })
}

/// A listening socket on `addr`, reusable at once after a restart. Its
/// connections send without delay (`TCP_NODELAY`, which accepted sockets
/// inherit on Linux): a response is written whole, and Nagle's algorithm
/// would only hold its last segment back until the client acknowledges.
fn listen(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// A started service: where it listens, and what to stop.
pub struct Running {
    /// Address of the service port, as bound.
    pub service_addr: SocketAddr,
    /// Address of the status port, as bound.
    pub status_addr: SocketAddr,
    handles: Vec<ServerHandle>,
    servers: Vec<JoinHandle<io::Result<()>>>,
    tasks: Vec<JoinHandle<()>>,
    /// What ended by itself, as a sentence.
    ended_tx: mpsc::UnboundedSender<String>,
    ended: mpsc::UnboundedReceiver<String>,
    on_stop: Vec<Box<dyn FnOnce()>>,
}

impl Running {
    /// Runs the service and status servers on the current actix runtime.
    pub fn spawn(service: Listening, status: Listening) -> Self {
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let mut running = Running {
            service_addr: service.addr,
            status_addr: status.addr,
            handles: Vec::new(),
            servers: Vec::new(),
            tasks: Vec::new(),
            ended_tx,
            ended,
            on_stop: Vec::new(),
        };
        for listening in [service, status] {
            running.handles.push(listening.server.handle());
            let what = format!("the {} server on {}", listening.name, listening.addr);
            let ended = running.ended_tx.clone();
            running.servers.push(actix_web::rt::spawn(async move {
                let result = listening.server.await;
                let _ = ended.send(match &result {
                    Ok(()) => format!("{what} stopped"),
                    Err(error) => format!("{what} failed: {error}"),
                });
                result
            }));
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
        self.handles.append(&mut other.handles);
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
        let stops: Vec<_> = self.handles.iter().map(|h| h.stop(true)).collect();
        for stop in stops {
            stop.await;
        }
        let mut result = Ok(());
        for server in self.servers.drain(..) {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => result = Err(error),
                Err(error) => result = Err(io::Error::other(error)),
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
    fn accepted_connections_send_without_delay() {
        let listener = listen(loopback()).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
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
