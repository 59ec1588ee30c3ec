//! Running a service: its HTTP servers and background tasks as one handle
//! that can be waited on or stopped.

use actix_web::dev::{Server, ServerHandle};
use std::net::SocketAddr;
use tokio::task::JoinHandle;

/// A started service: where it listens, and what to stop.
pub struct Running {
    /// Address of the service port, as bound (the real port when 0 was asked).
    pub service_addr: SocketAddr,
    /// Address of the status port, as bound.
    pub status_addr: SocketAddr,
    handles: Vec<ServerHandle>,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Spawns `service` and `status` on the current actix runtime.
    pub fn spawn(
        service_addr: SocketAddr,
        service: Server,
        status_addr: SocketAddr,
        status: Server,
        tasks: Vec<JoinHandle<()>>,
    ) -> Self {
        let handles = vec![service.handle(), status.handle()];
        let servers = vec![actix_web::rt::spawn(service), actix_web::rt::spawn(status)];
        Running {
            service_addr,
            status_addr,
            handles,
            servers,
            tasks,
        }
    }

    /// Waits until both servers have stopped (on SIGTERM or SIGINT they
    /// stop accepting, finish in-flight requests and return), then stops
    /// the background tasks.
    pub async fn wait(self) -> std::io::Result<()> {
        let mut result = Ok(());
        for server in self.servers {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(e) => result = Err(std::io::Error::other(e)),
            }
        }
        for task in self.tasks {
            task.abort();
        }
        result
    }

    /// Stops both servers (gracefully: in-flight requests finish) and the
    /// background tasks.
    pub async fn stop(self) -> std::io::Result<()> {
        for handle in &self.handles {
            handle.stop(true).await;
        }
        self.wait().await
    }
}
