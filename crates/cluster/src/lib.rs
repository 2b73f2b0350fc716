//! Live delivery between Tern nodes, over NATS.
//!
//! Every node stores messages in the shared database and delivers to the connections it
//! holds. What it delivered locally it also publishes once on the subject [`SUBJECT`]: the
//! recipients and the frame, or a token whose connections must be kicked. The subject is
//! configurable so that several Tern clusters (or test runs) can share one NATS server. Every other node
//! delivers the same frame to the connections *it* holds for those users. NATS is the
//! clustered messaging engine; this crate only encodes, publishes and applies.
//!
//! Publishing never blocks the writer: events go through a bounded queue to one publisher
//! task, and when NATS falls behind, events are dropped and counted. Nothing acknowledged is
//! lost by that: the message is stored, and a client on another node sees the gap through
//! `prev_seq` on its next message, or gets it on its next replay.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tern_chat::hub::{Hub, Relay, RelayEvent};
use tokio::sync::mpsc;

/// The subject every node publishes to and subscribes on, unless configured otherwise.
pub const SUBJECT: &str = "tern.relay";

/// Events waiting to be published before new ones are dropped.
const QUEUE: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
}

/// An event as it travels, with the node that sent it so that node can skip its own.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    origin: u64,
    event: RelayEvent,
}

/// Counters of the relay, for `/metrics`.
#[derive(Debug, Default)]
pub struct RelayStats {
    pub published: AtomicU64,
    pub dropped: AtomicU64,
    pub applied: AtomicU64,
}

struct NatsRelay {
    queue: mpsc::Sender<RelayEvent>,
    stats: Arc<RelayStats>,
}

impl Relay for NatsRelay {
    fn forward(&self, event: RelayEvent) {
        if self.queue.try_send(event).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A node's membership in the cluster; dropping it does not stop the tasks, which end with
/// the runtime.
pub struct Cluster {
    pub node_id: u64,
    pub stats: Arc<RelayStats>,
}

/// Connects to NATS, subscribes, and makes the hub relay through it.
pub async fn join(url: &str, subject: &str, hub: Arc<Hub>) -> Result<Cluster, ClusterError> {
    let subject = subject.to_owned();
    let connect_error = |err: &dyn std::fmt::Display| ClusterError::Connect { url: url.to_owned(), reason: err.to_string() };
    let client = async_nats::connect(url).await.map_err(|e| connect_error(&e))?;
    let mut subscription = client.subscribe(subject.clone()).await.map_err(|e| connect_error(&e))?;
    let node_id: u64 = rand::random();
    let stats = Arc::new(RelayStats::default());

    let (queue, mut events) = mpsc::channel::<RelayEvent>(QUEUE);
    let publisher = client.clone();
    let published = stats.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Ok(payload) = serde_json::to_vec(&Envelope { origin: node_id, event }) else { continue };
            match publisher.publish(subject.clone(), payload.into()).await {
                Ok(()) => published.published.fetch_add(1, Ordering::Relaxed),
                Err(err) => {
                    tracing::warn!(error = %err, "relay publish failed");
                    published.dropped.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
    });

    let receiver = hub.clone();
    let applied = stats.clone();
    tokio::spawn(async move {
        while let Some(message) = subscription.next().await {
            match serde_json::from_slice::<Envelope>(&message.payload) {
                Ok(envelope) if envelope.origin == node_id => {}
                Ok(envelope) => {
                    receiver.apply_remote(envelope.event);
                    applied.applied.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => tracing::warn!(error = %err, "unreadable relay message"),
            }
        }
        tracing::warn!("relay subscription ended");
    });

    hub.set_relay(Arc::new(NatsRelay { queue, stats: stats.clone() }));
    tracing::info!(node.id = node_id, nats = url, "joined the cluster");
    Ok(Cluster { node_id, stats })
}
