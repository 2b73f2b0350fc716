//! Every type Tern puts on the wire, in one place.
//!
//! Frames travel over WebSocket either as JSON text frames or as MessagePack binary frames
//! (see [`codec`]); HTTP bodies are JSON. All 64-bit ids are carried as decimal strings,
//! because JavaScript numbers lose integer precision above 2^53. This crate depends on serde
//! and its formats only: no runtime, no database.

pub mod codec;
pub mod error;
pub mod frames;
pub mod http;
pub mod ids;

pub use error::{ErrorCode, WireError};
pub use frames::{ClientFrame, ServerFrame};
pub use ids::{ConversationId, MessageId, UserId};

/// The protocol version a server speaks; a client sends the one it was built for in `connect`.
pub const PROTOCOL_VERSION: u32 = 1;
