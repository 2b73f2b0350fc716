//! Tern's chat service: the logic the WebSocket gateway and the HTTP API share.
//!
//! It owns what happens when someone registers, logs in, sends, signs for messages, reconnects
//! or reads history, on top of `tern-storage` and the `tern-idgen` allocator. It knows nothing
//! of sockets or HTTP: the gateway and the API translate their inputs into calls here, and
//! this crate answers with protocol types and [`ChatError`]s that map onto wire error codes.
//!
//! Blocking database work runs on tokio's blocking pool behind a semaphore, so a burst queues
//! in a bounded line and fails with `unavailable` after a short wait instead of stalling the
//! runtime; sends go through the single writer thread in [`send`].

mod access;
mod accounts;
pub mod clock;
mod error;
mod friends;
mod groups;
mod history;
mod list;
pub mod hub;
mod receipts;
mod state;
pub mod send;
mod sync;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

pub use accounts::{Authenticated, hash_token};
pub use error::ChatError;
pub use friends::FriendAction;
pub use send::{Ack, Effect, Origin, Reply, SendLimits, SendRequest, Target, WriterSettings};
pub use sync::Replay;
pub use tern_storage::messages::Direction;

use tern_db::{DbConnection, DbPool};
use tern_idgen::IdAllocator;
use tokio::sync::{Semaphore, oneshot};

use crate::hub::Hub;

/// Limits and sizes of the chat service.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    pub token_ttl: Duration,
    pub limits: SendLimits,
    pub writer: WriterSettings,
    /// How many missed messages per conversation one replay sends.
    pub sync_limit: usize,
    pub history_max_limit: usize,
    /// Database jobs allowed in flight at once, beyond which callers queue.
    pub max_db_jobs: usize,
    /// How long a caller queues for a database slot before `unavailable`.
    pub db_queue_wait: Duration,
    /// How long after sending a message its sender may recall it.
    pub recall_window: Duration,
    /// The most members a group may have.
    pub max_group_members: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            token_ttl: Duration::from_secs(30 * 24 * 3600),
            limits: SendLimits { max_text_bytes: 16 * 1024, max_client_msg_id_len: 64 },
            writer: WriterSettings {
                queue_capacity: 8192,
                max_batch: 512,
                enqueue_timeout: Duration::from_secs(2),
            },
            sync_limit: 500,
            history_max_limit: 200,
            max_db_jobs: 32,
            db_queue_wait: Duration::from_secs(3),
            recall_window: state::DEFAULT_RECALL_WINDOW,
            max_group_members: 5_000,
        }
    }
}

/// The running chat service; one per server process.
pub struct Chat {
    pool: DbPool,
    hub: Arc<Hub>,
    sender: std::sync::Mutex<Option<send::Sender>>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    ids: IdAllocator,
    db_jobs: Arc<Semaphore>,
    login_guard: accounts::LoginGuard,
    pub config: ChatConfig,
}

impl Chat {
    /// Starts the service and its writer thread.
    pub fn start(pool: DbPool, ids: IdAllocator, config: ChatConfig) -> std::io::Result<Arc<Chat>> {
        let hub = Arc::new(Hub::default());
        let (sender, writer) = send::start_writer(pool.clone(), ids.clone(), hub.clone(), &config.writer)?;
        Ok(Arc::new(Chat {
            pool,
            hub,
            sender: std::sync::Mutex::new(Some(sender)),
            writer: std::sync::Mutex::new(Some(writer)),
            ids,
            db_jobs: Arc::new(Semaphore::new(config.max_db_jobs)),
            login_guard: accounts::LoginGuard::default(),
            config,
        }))
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    pub fn ids(&self) -> &IdAllocator {
        &self.ids
    }

    /// Runs blocking database work off the async runtime, in a bounded queue.
    pub async fn blocking<T, F>(&self, work: F) -> Result<T, ChatError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, ChatError> + Send + 'static,
    {
        let permit = tokio::time::timeout(self.config.db_queue_wait, self.db_jobs.clone().acquire_owned())
            .await
            .map_err(|_| ChatError::Unavailable("too many database requests in flight".into()))?
            .map_err(|_| ChatError::Unavailable("shutting down".into()))?;
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut conn = pool.get()?;
            work(&mut conn)
        })
        .await
        .map_err(|err| ChatError::Internal(err.to_string()))?
    }

    fn sender(&self) -> Result<send::Sender, ChatError> {
        self.sender
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .ok_or_else(|| ChatError::Unavailable("server is shutting down".into()))
    }

    /// Sends and waits for the outcome (the HTTP path).
    pub async fn send(
        &self,
        sender: tern_protocol::UserId,
        target: Target,
        client_msg_id: String,
        content: tern_protocol::frames::Content,
    ) -> Result<Ack, ChatError> {
        self.send_as(sender, Origin::Client, None, target, client_msg_id, content).await
    }

    /// Sends with an explicit origin and effect: uploads and system notices come here.
    pub async fn send_as(
        &self,
        sender: tern_protocol::UserId,
        origin: Origin,
        effect: Option<Effect>,
        target: Target,
        client_msg_id: String,
        content: tern_protocol::frames::Content,
    ) -> Result<Ack, ChatError> {
        let (tx, rx) = oneshot::channel();
        let request = SendRequest {
            sender,
            origin,
            effect,
            sender_session: None,
            target,
            client_msg_id,
            content,
            reply: Reply::Caller(tx),
        };
        request.validate(&self.config.limits)?;
        self.sender()?.submit(request).await.map_err(|(err, _)| err)?;
        rx.await.map_err(|_| ChatError::Unavailable("writer stopped".into()))?
    }

    /// Queues a send whose ack or error goes to the sending connection's queue (the
    /// WebSocket path). Errors found before queueing are returned to the caller.
    pub async fn send_from_session(&self, request: SendRequest) -> Result<(), ChatError> {
        request.validate(&self.config.limits)?;
        self.sender()?.submit(request).await.map_err(|(err, _)| err)
    }

    /// Stops taking sends, lets the writer commit what is queued, and gives the allocator's
    /// unused ranges back.
    pub fn shutdown(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        if let Some(writer) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = writer.join();
        }
        self.ids.shutdown();
    }
}
