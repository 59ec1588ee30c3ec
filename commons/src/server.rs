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
use tokio::task::JoinSet;

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
            fn_service(|io: TcpStream| async move {
                let peer = io.peer_addr().ok();
                let _ = io.set_nodelay(true);
                Ok((LimitedStream::new(io), peer))
            })
            .and_then(http)
        })?
        .run();
    Ok(Listening { name, addr, server })
}

/// A listening socket on `addr`, reusable at once after a restart.
fn listen(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
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
    servers: JoinSet<(String, io::Result<()>)>,
    tasks: JoinSet<&'static str>,
    on_stop: Vec<Box<dyn FnOnce()>>,
}

impl Running {
    /// Runs the service and status servers on the current actix runtime.
    pub fn spawn(service: Listening, status: Listening) -> Self {
        let mut running = Running {
            service_addr: service.addr,
            status_addr: status.addr,
            handles: Vec::new(),
            servers: JoinSet::new(),
            tasks: JoinSet::new(),
            on_stop: Vec::new(),
        };
        for listening in [service, status] {
            running.handles.push(listening.server.handle());
            let what = format!("the {} server on {}", listening.name, listening.addr);
            running
                .servers
                .spawn_local(async move { (what, listening.server.await) });
        }
        running
    }

    /// Runs a background task `name`, which must not end before the
    /// service stops.
    pub fn task(mut self, name: &'static str, task: impl Future<Output = ()> + 'static) -> Self {
        self.tasks.spawn_local(async move {
            task.await;
            name
        });
        self
    }

    /// Calls `hook` first when the service stops (to end long-running
    /// requests, for example).
    pub fn on_stop(mut self, hook: impl FnOnce() + 'static) -> Self {
        self.on_stop.push(Box::new(hook));
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
            Some(ended) = self.servers.join_next() => Some(match ended {
                Ok((what, Ok(()))) => format!("{what} stopped"),
                Ok((what, Err(error))) => format!("{what} failed: {error}"),
                Err(error) => format!("a server failed: {error}"),
            }),
            Some(ended) = self.tasks.join_next() => Some(match ended {
                Ok(name) => format!("the {name} task ended"),
                Err(error) => format!("a background task failed: {error}"),
            }),
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
        self.tasks.abort_all();
        let stops: Vec<_> = self.handles.iter().map(|h| h.stop(true)).collect();
        for stop in stops {
            stop.await;
        }
        let mut result = Ok(());
        while let Some(ended) = self.servers.join_next().await {
            match ended {
                Ok((_, Ok(()))) => {}
                Ok((what, Err(error))) => {
                    result = Err(io::Error::other(format!("{what} failed: {error}")))
                }
                Err(error) => result = Err(io::Error::other(error)),
            }
        }
        while self.tasks.join_next().await.is_some() {}
        tracing::info!("stopped");
        result
    }
}
