//! History and sending over HTTP.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tern_chat::{Ack, Authenticated, Chat, Direction, Target};
use tern_protocol::frames::Content;
use tern_protocol::{ConversationId, ErrorCode, MessageId, UserId, WireError};
use warp::{Filter, Rejection, Reply};

use crate::MAX_JSON_BODY;
use crate::auth::{authenticated, with_chat};
use crate::errors::{ApiError, reject};

pub fn routes(chat: Arc<Chat>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let history = warp::path!("conversations" / i64 / "messages")
        .and(warp::get())
        .and(with_chat(chat.clone()))
        .and(authenticated(chat.clone()))
        .and(warp::query::<HistoryQuery>())
        .and_then(history);
    let send = warp::path!("messages")
        .and(warp::post())
        .and(with_chat(chat.clone()))
        .and(authenticated(chat))
        .and(warp::body::content_length_limit(MAX_JSON_BODY))
        .and(warp::body::json())
        .and_then(send);
    history.or(send)
}

/// `?before=SEQ` pages backwards, `?after=SEQ` forwards; neither means the newest page.
#[derive(Debug, Deserialize)]
struct HistoryQuery {
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<usize>,
}

async fn history(
    conversation: i64,
    chat: Arc<Chat>,
    auth: Authenticated,
    query: HistoryQuery,
) -> Result<impl Reply, Rejection> {
    let (direction, cursor) = match (query.before, query.after) {
        (Some(_), Some(_)) => {
            let err = WireError::new(ErrorCode::InvalidRequest, "give before or after, not both");
            return Err(reject(ApiError(err)));
        }
        (None, Some(after)) => (Direction::After, Some(after)),
        (before, None) => (Direction::Before, before),
    };
    let limit = query.limit.unwrap_or(50);
    let page = chat
        .history(auth.user, ConversationId(conversation), direction, cursor, limit)
        .await
        .map_err(reject)?;
    Ok(warp::reply::json(&page))
}

/// A text message sent over HTTP, for scripts and integrations.
#[derive(Debug, Deserialize)]
struct SendBody {
    client_msg_id: String,
    to_user: Option<UserId>,
    conversation_id: Option<ConversationId>,
    #[serde(flatten)]
    content: Content,
}

#[derive(Debug, Serialize)]
pub(crate) struct AckBody {
    client_msg_id: String,
    message_id: MessageId,
    conversation_id: ConversationId,
    seq: u64,
    server_time: i64,
    duplicate: bool,
}

impl From<Ack> for AckBody {
    fn from(ack: Ack) -> Self {
        AckBody {
            client_msg_id: ack.client_msg_id,
            message_id: ack.message_id,
            conversation_id: ack.conversation_id,
            seq: ack.seq,
            server_time: ack.server_time,
            duplicate: ack.duplicate,
        }
    }
}

async fn send(chat: Arc<Chat>, auth: Authenticated, body: SendBody) -> Result<impl Reply, Rejection> {
    let target = match (body.to_user, body.conversation_id) {
        (Some(user), None) => Target::User(user),
        (None, Some(conversation)) => Target::Conversation(conversation),
        _ => {
            let err = WireError::new(ErrorCode::InvalidField, "give exactly one of to_user and conversation_id");
            return Err(reject(ApiError(err)));
        }
    };
    let ack = chat.send(auth.user, target, body.client_msg_id, body.content).await.map_err(reject)?;
    Ok(warp::reply::json(&AckBody::from(ack)))
}
