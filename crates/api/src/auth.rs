use std::sync::Arc;

use tern_chat::{Authenticated, Chat};
use tern_protocol::{ErrorCode, WireError};
use warp::Filter;

use crate::errors::{ApiError, reject};

/// Extracts the caller from `Authorization: Bearer <token>`.
pub fn authenticated(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Authenticated,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("authorization").and_then(move |header: Option<String>| {
        let chat = chat.clone();
        async move { authenticate(&chat, header.as_deref()).await.map_err(reject) }
    })
}

/// Checks the token of an `Authorization` header value.
pub async fn authenticate(chat: &Chat, header: Option<&str>) -> Result<Authenticated, ApiError> {
    let token = header
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError(WireError::new(ErrorCode::Unauthorized, "bearer token required")))?;
    Ok(chat.authenticate(token).await?)
}

pub fn with_chat(chat: Arc<Chat>) -> impl Filter<Extract = (Arc<Chat>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || chat.clone())
}
