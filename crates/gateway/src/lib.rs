//! Tern's WebSocket gateway.
//!
//! It owns the socket side of a session: the HTTP upgrade with its `Origin` check and
//! subprotocol choice ([`upgrade`]), then one task per connection ([`session`]) that
//! authenticates the `connect` frame, replays what the device missed, and from then on moves
//! frames between the socket and the chat service. What a frame *means* is decided in
//! `tern-chat`; this crate only parses, limits, schedules and writes.
//!
//! WebSockets are accepted with tokio-tungstenite directly rather than warp's `ws` filter,
//! because only that way can the per-connection buffers be sized (tungstenite's 128 KiB
//! default read buffer would cost over a gigabyte per 10,000 idle sockets) and the message
//! limits set.

mod config;
mod rate;
pub mod session;
pub mod upgrade;

use std::sync::Arc;

pub use config::GatewayConfig;
use tern_chat::Chat;
use tokio::sync::{Semaphore, watch};

/// What every connection task shares.
pub struct Gateway {
    pub chat: Arc<Chat>,
    pub config: GatewayConfig,
    /// Caps open WebSocket connections on this node.
    connections: Arc<Semaphore>,
    /// Flips to true when the server starts shutting down.
    shutdown: watch::Receiver<bool>,
}

impl Gateway {
    pub fn new(chat: Arc<Chat>, config: GatewayConfig, shutdown: watch::Receiver<bool>) -> Arc<Gateway> {
        let connections = Arc::new(Semaphore::new(config.max_connections));
        Arc::new(Gateway { chat, config, connections, shutdown })
    }

    /// Open WebSocket connections on this node.
    pub fn open_connections(&self) -> usize {
        self.config.max_connections - self.connections.available_permits()
    }
}
