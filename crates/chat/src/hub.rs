//! Who is online, and the bounded queue of each of their connections.
//!
//! Every connection gets a queue of fixed capacity. Delivery never waits: if a queue is full,
//! its client has stopped reading, and the connection is kicked rather than allowed to grow
//! memory. A kicked client reconnects and replays what it missed from its position.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tern_protocol::codec::{encode_binary, encode_text};
use tern_protocol::{ErrorCode, ServerFrame, UserId};
use tokio::sync::{Notify, mpsc};

use crate::ChatError;

/// A frame on its way to one or many connections, encoded at most once per encoding.
///
/// The encodings are kept as shared `Bytes`, so a frame fanned out to a thousand connections
/// is serialised once and each connection only takes a reference.
#[derive(Debug)]
pub struct Outgoing {
    frame: ServerFrame,
    json: OnceLock<Bytes>,
    binary: OnceLock<Bytes>,
}

impl Outgoing {
    pub fn new(frame: ServerFrame) -> Arc<Outgoing> {
        Arc::new(Outgoing { frame, json: OnceLock::new(), binary: OnceLock::new() })
    }

    pub fn frame(&self) -> &ServerFrame {
        &self.frame
    }

    /// The frame as JSON text (always valid UTF-8).
    pub fn json(&self) -> Bytes {
        self.json.get_or_init(|| Bytes::from(encode_text(&self.frame))).clone()
    }

    /// The frame as MessagePack.
    pub fn binary(&self) -> Bytes {
        self.binary.get_or_init(|| Bytes::from(encode_binary(&self.frame))).clone()
    }
}

/// Tells a connection's task that the server ended its session, and why.
#[derive(Debug, Default)]
pub struct Kick {
    reason: Mutex<Option<String>>,
    notify: Notify,
}

impl Kick {
    pub fn kick(&self, reason: &str) {
        if let Ok(mut slot) = self.reason.lock() {
            slot.get_or_insert_with(|| reason.to_owned());
        }
        self.notify.notify_one();
    }

    /// Waits until the connection is kicked and returns the reason.
    pub async fn kicked(&self) -> String {
        loop {
            if let Some(reason) = self.reason.lock().ok().and_then(|r| r.clone()) {
                return reason;
            }
            self.notify.notified().await;
        }
    }
}

#[derive(Debug)]
struct Entry {
    session: u64,
    device: String,
    token_hash: String,
    queue: mpsc::Sender<Arc<Outgoing>>,
    kick: Arc<Kick>,
}

/// What one node tells the others so that users connected there hear of it too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RelayEvent {
    /// Queue the frame for every connection of these users.
    Deliver { users: Vec<UserId>, frame: ServerFrame },
    /// Kick the connections opened with this token.
    KickToken { token_hash: String, reason: String },
}

/// Carries hub events to the other nodes of a cluster. Forwarding must not block: it runs on
/// the writer thread and on request tasks.
pub trait Relay: Send + Sync + 'static {
    fn forward(&self, event: RelayEvent);
}

/// The registry of live connections, by user.
#[derive(Default)]
pub struct Hub {
    users: Mutex<HashMap<UserId, Vec<Entry>>>,
    next_session: AtomicU64,
    connections: AtomicU64,
    relay: OnceLock<Arc<dyn Relay>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("connections", &self.connections).finish_non_exhaustive()
    }
}

/// A connection's place in the hub; dropping it unregisters the connection.
#[derive(Debug)]
pub struct Registration {
    hub: Arc<Hub>,
    pub user: UserId,
    pub session: u64,
    pub queue: mpsc::Receiver<Arc<Outgoing>>,
    pub kick: Arc<Kick>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.user, self.session);
    }
}

impl Hub {
    /// Registers a connection. A second connection with the same device id replaces the
    /// first, which is kicked; beyond `max_per_user` connections the new one is refused.
    pub fn register(
        self: &Arc<Self>,
        user: UserId,
        device: &str,
        token_hash: &str,
        queue_capacity: usize,
        max_per_user: usize,
    ) -> Result<Registration, ChatError> {
        let (tx, rx) = mpsc::channel(queue_capacity);
        let kick = Arc::new(Kick::default());
        let session = self.next_session.fetch_add(1, Ordering::Relaxed) + 1;
        let mut users = self.users.lock().map_err(|_| ChatError::Internal("hub poisoned".into()))?;
        let entries = users.entry(user).or_default();
        entries.retain(|e| {
            if e.device == device {
                e.kick.kick("replaced: the same device connected again");
                false
            } else {
                true
            }
        });
        if entries.len() >= max_per_user {
            return Err(ChatError::refused(
                ErrorCode::TooManyConnections,
                format!("at most {max_per_user} connections per user"),
            ));
        }
        entries.push(Entry {
            session,
            device: device.to_owned(),
            token_hash: token_hash.to_owned(),
            queue: tx,
            kick: kick.clone(),
        });
        self.connections.fetch_add(1, Ordering::Relaxed);
        Ok(Registration { hub: self.clone(), user, session, queue: rx, kick })
    }

    fn unregister(&self, user: UserId, session: u64) {
        let Ok(mut users) = self.users.lock() else { return };
        if let Some(entries) = users.get_mut(&user) {
            let before = entries.len();
            entries.retain(|e| e.session != session);
            if entries.len() < before {
                self.connections.fetch_sub(1, Ordering::Relaxed);
            }
            if entries.is_empty() {
                users.remove(&user);
            }
        }
    }

    /// Sends hub events to the other nodes from now on (set once, at start).
    pub fn set_relay(&self, relay: Arc<dyn Relay>) {
        let _ = self.relay.set(relay);
    }

    /// Queues a frame for every connection of `user` (except `skip_session`, a connection
    /// of this node), here and on the other nodes.
    pub fn deliver(&self, user: UserId, frame: &Arc<Outgoing>, skip_session: Option<u64>) {
        self.deliver_to_users(&[user], frame, skip_session.map(|s| (user, s)));
    }

    /// Queues a frame for every connection of each user, here and on the other nodes, in one
    /// pass and one relay message however many users there are.
    pub fn deliver_to_users(&self, users: &[UserId], frame: &Arc<Outgoing>, skip: Option<(UserId, u64)>) {
        self.deliver_here(users, frame, skip);
        if let Some(relay) = self.relay.get() {
            relay.forward(RelayEvent::Deliver { users: users.to_vec(), frame: frame.frame().clone() });
        }
    }

    fn deliver_here(&self, users: &[UserId], frame: &Arc<Outgoing>, skip: Option<(UserId, u64)>) {
        let Ok(registry) = self.users.lock() else { return };
        for user in users {
            let Some(entries) = registry.get(user) else { continue };
            for entry in entries {
                if skip != Some((*user, entry.session)) {
                    push(entry, frame);
                }
            }
        }
    }

    /// Applies an event another node relayed; it is not relayed again.
    pub fn apply_remote(&self, event: RelayEvent) {
        match event {
            RelayEvent::Deliver { users, frame } => self.deliver_here(&users, &Outgoing::new(frame), None),
            RelayEvent::KickToken { token_hash, reason } => self.kick_token_here(&token_hash, &reason),
        }
    }

    /// Queues a frame for one connection, if it is still registered.
    pub fn deliver_to_session(&self, user: UserId, session: u64, frame: &Arc<Outgoing>) {
        let Ok(users) = self.users.lock() else { return };
        if let Some(entry) = users.get(&user).and_then(|es| es.iter().find(|e| e.session == session))
        {
            push(entry, frame);
        }
    }

    /// Kicks every connection opened with this token (the token was revoked), on every node.
    pub fn kick_token(&self, token_hash: &str, reason: &str) {
        self.kick_token_here(token_hash, reason);
        if let Some(relay) = self.relay.get() {
            relay.forward(RelayEvent::KickToken { token_hash: token_hash.to_owned(), reason: reason.to_owned() });
        }
    }

    fn kick_token_here(&self, token_hash: &str, reason: &str) {
        let Ok(users) = self.users.lock() else { return };
        for entry in users.values().flatten().filter(|e| e.token_hash == token_hash) {
            entry.kick.kick(reason);
        }
    }

    /// Kicks every connection (the server is going away).
    pub fn kick_all(&self, reason: &str) {
        let Ok(users) = self.users.lock() else { return };
        users.values().flatten().for_each(|e| e.kick.kick(reason));
    }

    /// Queues a frame for every connection (notices such as "going away").
    pub fn broadcast(&self, frame: &Arc<Outgoing>) {
        let Ok(users) = self.users.lock() else { return };
        users.values().flatten().for_each(|e| push(e, frame));
    }

    pub fn connection_count(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn is_online(&self, user: UserId) -> bool {
        self.users.lock().map(|u| u.contains_key(&user)).unwrap_or(false)
    }
}

fn push(entry: &Entry, frame: &Arc<Outgoing>) {
    if let Err(mpsc::error::TrySendError::Full(_)) = entry.queue.try_send(frame.clone()) {
        entry.kick.kick("too slow: the outbound queue is full");
    }
}
