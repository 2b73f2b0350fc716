//! A small Tern client: the HTTP calls and a WebSocket session.
//!
//! Used by `tern-cli`, by the integration tests and by the load generator, so all three speak
//! to the server exactly as any other client would.

mod http;
mod ws;

pub use http::{FilePart, FormPart, HttpClient, HttpError, RawResponse};
pub use ws::{WsClient, WsError};
