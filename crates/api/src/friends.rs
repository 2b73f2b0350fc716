//! Friends and blocks over HTTP. The same list is pulled over WebSocket with `friend_pull`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tern_chat::{Authenticated, Chat, FriendAction};
use tern_protocol::UserId;
use tern_protocol::frames::{FriendEntry, FriendState};
use warp::{Filter, Rejection, Reply};

use crate::MAX_JSON_BODY;
use crate::auth::{authenticated, with_chat};
use crate::errors::reject;

pub fn routes(chat: Arc<Chat>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let auth = authenticated(chat.clone());
    let request = warp::path!("friends" / "requests")
        .and(warp::post())
        .and(with_chat(chat.clone()))
        .and(auth.clone())
        .and(warp::body::content_length_limit(MAX_JSON_BODY))
        .and(warp::body::json())
        .and_then(|chat, auth, body: Target| act(chat, auth, body.user_id.0, FriendAction::Request));
    let accept = warp::path!("friends" / "requests" / i64 / "accept")
        .and(warp::post())
        .and(with_chat(chat.clone()))
        .and(auth.clone())
        .and_then(|other, chat, auth| act(chat, auth, other, FriendAction::Accept));
    let reject_request = warp::path!("friends" / "requests" / i64 / "reject")
        .and(warp::post())
        .and(with_chat(chat.clone()))
        .and(auth.clone())
        .and_then(|other, chat, auth| act(chat, auth, other, FriendAction::Reject));
    let remove = warp::path!("friends" / i64)
        .and(warp::delete())
        .and(with_chat(chat.clone()))
        .and(auth.clone())
        .and_then(|other, chat, auth| act(chat, auth, other, FriendAction::Remove));
    let block = warp::path!("blocks" / i64)
        .and(warp::put())
        .and(with_chat(chat.clone()))
        .and(auth.clone())
        .and_then(|other, chat, auth| act(chat, auth, other, FriendAction::Block));
    let unblock = warp::path!("blocks" / i64)
        .and(warp::delete())
        .and(with_chat(chat.clone()))
        .and(auth.clone())
        .and_then(|other, chat, auth| act(chat, auth, other, FriendAction::Unblock));
    let list = warp::path!("friends")
        .and(warp::get())
        .and(with_chat(chat))
        .and(auth)
        .and(warp::query::<Since>())
        .and_then(list);
    request.or(accept).or(reject_request).or(remove).or(block).or(unblock).or(list)
}

#[derive(Debug, Deserialize)]
struct Target {
    user_id: UserId,
}

#[derive(Debug, Serialize)]
struct Relation {
    user_id: UserId,
    state: FriendState,
}

async fn act(chat: Arc<Chat>, auth: Authenticated, other: i64, action: FriendAction) -> Result<warp::reply::Json, Rejection> {
    let state = chat.friend(auth.user, UserId(other), action).await.map_err(reject)?;
    Ok(warp::reply::json(&Relation { user_id: UserId(other), state }))
}

#[derive(Debug, Deserialize)]
struct Since {
    #[serde(default)]
    since_version: u64,
}

#[derive(Debug, Serialize)]
struct FriendList {
    version: u64,
    entries: Vec<FriendEntry>,
}

async fn list(chat: Arc<Chat>, auth: Authenticated, since: Since) -> Result<impl Reply, Rejection> {
    let (version, entries) = chat.friends_since(auth.user, since.since_version).await.map_err(reject)?;
    Ok(warp::reply::json(&FriendList { version, entries }))
}
