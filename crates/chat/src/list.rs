//! The conversation list: last message, unread count and time, most recently active first.

use tern_protocol::http::{Account, ConversationPage, ConversationSummary};
use tern_protocol::{ConversationId, ErrorCode, UserId};
use tern_storage::{conversations, messages, users};

use crate::views::message_view;
use crate::{Chat, ChatError};

impl Chat {
    /// One page of the user's conversations. `before` is the `next_before` of the previous
    /// page.
    pub async fn conversations(
        &self,
        user: UserId,
        before: Option<String>,
        limit: usize,
    ) -> Result<ConversationPage, ChatError> {
        if limit == 0 || limit > 100 {
            return Err(ChatError::refused(ErrorCode::InvalidRequest, "limit must be 1 to 100"));
        }
        let cursor = before.as_deref().map(parse_cursor).transpose()?;
        let limit = limit as i64;
        self.blocking(move |conn| {
            let rows = conversations::page_of_user(conn, user, cursor, limit + 1)?;
            let more = rows.len() as i64 > limit;
            let mut summaries = Vec::with_capacity(rows.len());
            for (member, conversation) in rows.into_iter().take(limit as usize) {
                let id = ConversationId(conversation.id);
                let upto = conversation.last_seq.min(member.left_seq.unwrap_or(i64::MAX));
                let last = messages::last_at_or_below(conn, id, upto)?
                    .filter(|m| m.seq > member.joined_seq);
                let unread = messages::count_unread(conn, id, user, member.read_seq.max(member.joined_seq), upto)?;
                let peer = if conversation.kind == conversations::KIND_DIRECT {
                    let others = conversations::active_member_ids(conn, id)?;
                    match others.into_iter().find(|o| *o != user) {
                        Some(peer) => users::find_user(conn, peer)?
                            .map(|u| Account { user_id: UserId(u.id), username: u.username }),
                        None => None,
                    }
                } else {
                    None
                };
                // A former member sees the conversation as it was when they left, activity too.
                let last_activity_at = match (&last, member.is_active()) {
                    (Some(message), false) => message.created_at,
                    _ => conversation.last_activity_at,
                };
                summaries.push(ConversationSummary {
                    conversation_id: id,
                    kind: conversation.kind.clone(),
                    title: conversation.title.clone(),
                    peer,
                    last_message: last.as_ref().map(message_view),
                    unread: u64::try_from(unread).unwrap_or_default(),
                    read_seq: u64::try_from(member.read_seq).unwrap_or_default(),
                    last_seq: u64::try_from(upto).unwrap_or_default(),
                    last_activity_at,
                    active: member.is_active(),
                });
            }
            let next_before = if more {
                summaries.last().map(|s| format!("{}:{}", s.last_activity_at, s.conversation_id))
            } else {
                None
            };
            Ok(ConversationPage { conversations: summaries, next_before })
        })
        .await
    }
}

fn parse_cursor(text: &str) -> Result<(i64, i64), ChatError> {
    let bad = || ChatError::refused(ErrorCode::InvalidRequest, "before must be a next_before value");
    let (activity, id) = text.split_once(':').ok_or_else(bad)?;
    Ok((activity.parse().map_err(|_| bad())?, id.parse().map_err(|_| bad())?))
}
