//! Tern's HTTP API, as warp filters.
//!
//! Every route lives under `/api/v1` except the operational ones (`/healthz`, `/readyz`,
//! `/metrics`). Every failure, whether the chat service's or warp's own (unknown route, bad
//! JSON, body too large), leaves as the same JSON body: `{"error": {"code", "message"}}` with
//! a stable snake_case code, mapped in [`errors`].
//!
//! Uploads are a warp route that streams the multipart body to disk. Downloads and history
//! export stream their answers, which warp cannot do, so they live in [`raw`], a handler on
//! hyper's types that the server's listener asks first.

mod accounts;
mod auth;
mod downloads;
pub mod errors;
mod export;
mod files;
mod friends;
mod groups;
mod health;
mod media;
mod messages;
pub mod raw;
mod uploads;
mod web;

use std::sync::Arc;

use tern_chat::Chat;
use tern_gateway::Gateway;
use warp::Filter;

pub use raw::{RawBody, RawRoutes};

/// The largest JSON body any route accepts.
pub const MAX_JSON_BODY: u64 = 64 * 1024;

/// Where uploads go and how large they may be.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub data_dir: std::path::PathBuf,
    pub max_upload_bytes: u64,
    pub max_image_bytes: u64,
    pub max_image_pixels: u64,
}

/// Creates the upload folders and removes uploads a previous run left half-received. Call
/// once at start, before serving.
pub fn prepare_storage(config: &ApiConfig) -> std::io::Result<()> {
    files::Files::new(config).prepare()
}

/// Every HTTP route, with errors mapped to the wire format.
pub fn routes(
    chat: Arc<Chat>,
    gateway: Arc<Gateway>,
    config: ApiConfig,
) -> impl Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static {
    let api = warp::path("api").and(warp::path("v1"));
    let uploads = uploads::Uploads::new(files::Files::new(&config));
    let v1 = accounts::routes(chat.clone())
        .or(messages::routes(chat.clone()))
        .or(groups::routes(chat.clone()))
        .or(friends::routes(chat.clone()))
        .or(uploads::routes(chat.clone(), uploads));
    health::routes(chat, gateway)
        .or(web::routes())
        .or(api.and(v1))
        .recover(errors::recover)
        .with(warp::log::custom(|info| {
            tracing::debug!(
                method = %info.method(),
                path = info.path(),
                status = info.status().as_u16(),
                duration_ms = info.elapsed().as_millis() as u64,
                "http request"
            );
        }))
}
