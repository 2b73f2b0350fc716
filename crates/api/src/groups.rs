//! Groups, the conversation list and recall over HTTP.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tern_chat::{Authenticated, Chat};
use tern_protocol::{ConversationId, UserId};
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::MAX_JSON_BODY;
use crate::auth::{authenticated, with_chat};
use crate::errors::reject;

pub fn routes(chat: Arc<Chat>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let auth = authenticated(chat.clone());
    let create = warp::path!("groups")
        .and(warp::post())
        .and(with_chat(chat.clone()))
        .and(auth.clone())
        .and(json())
        .and_then(create);
    let add = warp::path!("groups" / i64 / "members")
        .and(warp::post())
        .and(with_chat(chat.clone()))
        .and(auth.clone())
        .and(json())
        .and_then(add);
    let remove = warp::path!("groups" / i64 / "members" / i64)
        .and(warp::delete())
        .and(with_chat(chat.clone()))
        .and(auth.clone())
        .and_then(remove);
    let list = warp::path!("conversations")
        .and(warp::get())
        .and(with_chat(chat.clone()))
        .and(auth.clone())
        .and(warp::query::<ListQuery>())
        .and_then(list);
    let recall = warp::path!("conversations" / i64 / "messages" / u64)
        .and(warp::delete())
        .and(with_chat(chat))
        .and(auth)
        .and_then(recall);
    create.or(add).or(remove).or(list).or(recall)
}

fn json<T: serde::de::DeserializeOwned + Send>() -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::body::content_length_limit(MAX_JSON_BODY).and(warp::body::json())
}

#[derive(Debug, Deserialize)]
struct NewGroup {
    title: String,
    #[serde(default)]
    members: Vec<UserId>,
}

#[derive(Debug, Serialize)]
struct GroupCreated {
    conversation_id: ConversationId,
}

async fn create(chat: Arc<Chat>, auth: Authenticated, body: NewGroup) -> Result<impl Reply, Rejection> {
    let conversation_id = chat.create_group(auth.user, body.title, body.members).await.map_err(reject)?;
    Ok(warp::reply::with_status(warp::reply::json(&GroupCreated { conversation_id }), StatusCode::CREATED))
}

#[derive(Debug, Deserialize)]
struct NewMember {
    user_id: UserId,
}

/// The seq of the notice that recorded a membership change or recall.
#[derive(Debug, Serialize)]
struct Change {
    conversation_id: ConversationId,
    seq: u64,
}

async fn add(group: i64, chat: Arc<Chat>, auth: Authenticated, body: NewMember) -> Result<impl Reply, Rejection> {
    let ack = chat.add_member(auth.user, ConversationId(group), body.user_id).await.map_err(reject)?;
    Ok(warp::reply::json(&Change { conversation_id: ack.conversation_id, seq: ack.seq }))
}

async fn remove(group: i64, user: i64, chat: Arc<Chat>, auth: Authenticated) -> Result<impl Reply, Rejection> {
    let ack = chat.remove_member(auth.user, ConversationId(group), UserId(user)).await.map_err(reject)?;
    Ok(warp::reply::json(&Change { conversation_id: ack.conversation_id, seq: ack.seq }))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    before: Option<String>,
    limit: Option<usize>,
}

async fn list(chat: Arc<Chat>, auth: Authenticated, query: ListQuery) -> Result<impl Reply, Rejection> {
    let page = chat.conversations(auth.user, query.before, query.limit.unwrap_or(20)).await.map_err(reject)?;
    Ok(warp::reply::json(&page))
}

async fn recall(conversation: i64, seq: u64, chat: Arc<Chat>, auth: Authenticated) -> Result<impl Reply, Rejection> {
    chat.recall(auth.user, ConversationId(conversation), seq).await.map_err(reject)?;
    Ok(StatusCode::NO_CONTENT)
}
