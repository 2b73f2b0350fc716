//! Accounts and sessions: register, log in, log out, look people up.

use std::sync::Arc;

use serde::Deserialize;
use tern_chat::{Authenticated, Chat};
use tern_protocol::http::Credentials;
use tern_protocol::{ErrorCode, UserId, WireError};
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::MAX_JSON_BODY;
use crate::auth::{authenticated, with_chat};
use crate::errors::{ApiError, reject};

pub fn routes(chat: Arc<Chat>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let register = warp::path!("accounts")
        .and(warp::post())
        .and(with_chat(chat.clone()))
        .and(json_body())
        .and_then(register);
    let login = warp::path!("sessions")
        .and(warp::post())
        .and(with_chat(chat.clone()))
        .and(json_body())
        .and_then(login);
    let logout = warp::path!("sessions" / "current")
        .and(warp::delete())
        .and(with_chat(chat.clone()))
        .and(authenticated(chat.clone()))
        .and_then(logout);
    let me = warp::path!("me")
        .and(warp::get())
        .and(with_chat(chat.clone()))
        .and(authenticated(chat.clone()))
        .and_then(me);
    let lookup = warp::path!("users")
        .and(warp::get())
        .and(with_chat(chat.clone()))
        .and(authenticated(chat))
        .and(warp::query::<UserQuery>())
        .and_then(lookup);
    register.or(login).or(logout).or(me).or(lookup)
}

fn json_body() -> impl Filter<Extract = (Credentials,), Error = Rejection> + Clone {
    warp::body::content_length_limit(MAX_JSON_BODY).and(warp::body::json())
}

async fn register(chat: Arc<Chat>, credentials: Credentials) -> Result<impl Reply, Rejection> {
    let account = chat.register(credentials).await.map_err(reject)?;
    Ok(warp::reply::with_status(warp::reply::json(&account), StatusCode::CREATED))
}

async fn login(chat: Arc<Chat>, credentials: Credentials) -> Result<impl Reply, Rejection> {
    let session = chat.login(credentials).await.map_err(reject)?;
    Ok(warp::reply::json(&session))
}

async fn logout(chat: Arc<Chat>, auth: Authenticated) -> Result<impl Reply, Rejection> {
    chat.logout(&auth).await.map_err(reject)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(chat: Arc<Chat>, auth: Authenticated) -> Result<impl Reply, Rejection> {
    account_reply(&chat, Lookup::Id(auth.user)).await
}

#[derive(Debug, Deserialize)]
struct UserQuery {
    username: String,
}

async fn lookup(chat: Arc<Chat>, _auth: Authenticated, query: UserQuery) -> Result<impl Reply, Rejection> {
    account_reply(&chat, Lookup::Name(query.username)).await
}

enum Lookup {
    Id(UserId),
    Name(String),
}

async fn account_reply(chat: &Chat, lookup: Lookup) -> Result<warp::reply::Json, Rejection> {
    let found = match lookup {
        Lookup::Id(id) => chat.account_by_id(id).await,
        Lookup::Name(name) => chat.account_by_name(name).await,
    };
    match found.map_err(reject)? {
        Some(account) => Ok(warp::reply::json(&account)),
        None => Err(reject(ApiError(WireError::new(ErrorCode::NotFound, "no such user")))),
    }
}
