//! The `tern-server` process: configuration, wiring, one listener, graceful shutdown.
//!
//! HTTP and WebSocket share one port. Each TCP connection is served by hyper with a timer, so
//! the header-read timeout is really enforced (a client that sends half a request line is
//! dropped instead of holding the socket forever). A request to `/ws` that asks for an
//! upgrade goes to the gateway; downloads and history export go to the streamed routes of
//! `tern-api`; everything else goes to its warp routes.

mod body;
pub mod config;
mod listener;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tern_chat::Chat;
use tern_gateway::Gateway;
use tern_idgen::{AllocatorConfig, DieselSegmentStore, IdAllocator};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::Config;

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    chat: Arc<Chat>,
    gateway: Arc<Gateway>,
    grace: Duration,
    /// This node's link to the others, when a NATS URL is configured.
    pub cluster: Option<tern_cluster::Cluster>,
}

/// Opens the database, applies migrations, and starts serving.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let url = config.database_url();
    std::fs::create_dir_all(&config.storage.data_dir)
        .with_context(|| format!("creating data folder {}", config.storage.data_dir.display()))?;
    let settings = tern_db::PoolSettings {
        max_size: config.database.pool_size,
        connection_timeout: Duration::from_millis(config.database.connection_timeout_ms),
    };
    let pool = tokio::task::spawn_blocking(move || -> anyhow::Result<tern_db::DbPool> {
        let pool = tern_db::connect(&url, &settings).context("connecting to the database")?;
        let applied = tern_storage::run_migrations(&pool).context("applying migrations")?;
        tracing::info!(applied, "migrations up to date");
        Ok(pool)
    })
    .await??;
    let ids = IdAllocator::new(Arc::new(DieselSegmentStore::new(pool.clone())), AllocatorConfig::default());
    let chat = Chat::start(pool, ids, config.chat()).context("starting the chat service")?;
    let cluster = if config.cluster.nats_url.is_empty() {
        None
    } else {
        Some(tern_cluster::join(&config.cluster.nats_url, &config.cluster.subject, chat.hub().clone()).await?)
    };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let gateway = Gateway::new(chat.clone(), config.gateway(), shutdown_rx.clone());
    let api = config.api();
    tern_api::prepare_storage(&api)
        .with_context(|| format!("preparing the uploads folder in {}", api.data_dir.display()))?;
    let raw = tern_api::RawRoutes::new(chat.clone(), &api);
    let routes = warp::service(tern_api::routes(chat.clone(), gateway.clone(), api));
    let tcp = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let addr = tcp.local_addr()?;
    let timeouts = listener::Timeouts {
        header_read: Duration::from_millis(config.server.header_read_timeout_ms),
        body_idle: Duration::from_millis(config.server.body_idle_timeout_ms),
    };
    let grace = Duration::from_millis(config.server.shutdown_grace_ms);
    let task = tokio::spawn(listener::serve(tcp, routes, raw, gateway.clone(), timeouts, grace, shutdown_rx));
    tracing::info!(%addr, "tern listening");
    Ok(Running { addr, shutdown, task, chat, gateway, grace, cluster })
}

impl Running {
    /// Stops accepting, tells WebSocket clients to reconnect elsewhere, lets queued sends
    /// commit, returns unused id ranges, and returns when all of that is done.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!("shutting down");
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        let deadline = tokio::time::Instant::now() + self.grace;
        while self.gateway.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let chat = self.chat.clone();
        tokio::task::spawn_blocking(move || chat.shutdown()).await?;
        tracing::info!("shutdown complete");
        Ok(())
    }
}
