//! Read positions, typing indicators and recall.

use std::time::Duration;

use tern_protocol::frames::{Content, SystemEvent};
use tern_protocol::{ConversationId, ErrorCode, ServerFrame, UserId};
use tern_storage::{conversations, messages};

use crate::hub::Outgoing;
use crate::send::{Effect, Origin, Target};
use crate::{Ack, Chat, ChatError, clock};

impl Chat {
    /// Raises the user's read position (cumulative). When it moves, every device of every
    /// member hears of it: the others for read receipts, the reader's own devices so their
    /// unread counts agree.
    pub async fn read(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: u64,
        session: Option<u64>,
    ) -> Result<(), ChatError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let moved = self
            .blocking(move |conn| {
                let member = active_member(conn, conversation, user)?;
                let Some(conv) = conversations::find_conversation(conn, conversation)? else {
                    return Err(ChatError::refused(ErrorCode::NotFound, "no such conversation"));
                };
                let seq = seq.min(conv.last_seq);
                if seq <= member.read_seq || !conversations::raise_read(conn, conversation, user, seq)? {
                    return Ok(None);
                }
                Ok(Some((seq, conversations::active_member_ids(conn, conversation)?)))
            })
            .await?;
        if let Some((seq, members)) = moved {
            let frame = Outgoing::new(ServerFrame::Read {
                conversation_id: conversation,
                user_id: user,
                seq: u64::try_from(seq).unwrap_or_default(),
            });
            for member in members {
                let skip = if member == user { session } else { None };
                self.hub.deliver(member, &frame, skip);
            }
        }
        Ok(())
    }

    /// Tells the other members' connections that `user` is typing. Nothing is stored.
    pub async fn typing(&self, user: UserId, conversation: ConversationId) -> Result<(), ChatError> {
        let members = self
            .blocking(move |conn| {
                active_member(conn, conversation, user)?;
                Ok(conversations::active_member_ids(conn, conversation)?)
            })
            .await?;
        let frame = Outgoing::new(ServerFrame::Typing { conversation_id: conversation, user_id: user });
        members.into_iter().filter(|m| *m != user).for_each(|m| self.hub.deliver(m, &frame, None));
        Ok(())
    }

    /// Recalls the sender's own message within the recall window. The message keeps its
    /// place but loses its content, and a `message_recalled` notice reaches every device of
    /// every member. Recalling an already recalled message succeeds without a new notice.
    pub async fn recall(&self, user: UserId, conversation: ConversationId, seq: u64) -> Result<Option<Ack>, ChatError> {
        let window = self.config.recall_window;
        let stored = i64::try_from(seq).unwrap_or(i64::MAX);
        let outcome = self
            .blocking(move |conn| {
                active_member(conn, conversation, user)?;
                let message = messages::find(conn, conversation, stored)?
                    .ok_or_else(|| ChatError::refused(ErrorCode::NotFound, "no such message"))?;
                if message.sender_id != user.0 {
                    return Err(ChatError::refused(ErrorCode::Forbidden, "only the sender can recall a message"));
                }
                if message.kind == crate::views::KIND_SYSTEM {
                    return Err(ChatError::refused(ErrorCode::Forbidden, "system notices cannot be recalled"));
                }
                if message.recalled_at.is_some() {
                    return Ok(false);
                }
                let age = clock::now_ms().saturating_sub(message.created_at);
                if age > i64::try_from(window.as_millis()).unwrap_or(i64::MAX) {
                    return Err(ChatError::refused(ErrorCode::Forbidden, "the recall window has passed"));
                }
                Ok(true)
            })
            .await?;
        if !outcome {
            return Ok(None);
        }
        let event = SystemEvent::MessageRecalled { seq, by: user };
        let notice = self.notice(user, conversation, event, Some(Effect::Recall(seq)), format!("recall:{seq}")).await?;
        Ok(Some(notice))
    }

    /// Writes a system notice into a conversation through the writer, with its effect.
    /// `key` makes the notice idempotent: the same key for the same user is stored once.
    pub(crate) async fn notice(
        &self,
        actor: UserId,
        conversation: ConversationId,
        event: SystemEvent,
        effect: Option<Effect>,
        key: String,
    ) -> Result<Ack, ChatError> {
        let client_msg_id = format!("sys:{conversation}:{key}");
        let content = Content::System { event };
        self.send_as(actor, Origin::System, effect, Target::Conversation(conversation), client_msg_id, content)
            .await
    }
}

/// The user's active membership, or a `not_member` refusal.
pub(crate) fn active_member(
    conn: &mut tern_db::DbConnection,
    conversation: ConversationId,
    user: UserId,
) -> Result<conversations::MemberRow, ChatError> {
    match conversations::membership(conn, conversation, user)? {
        Some(member) if member.is_active() => Ok(member),
        _ => Err(ChatError::refused(ErrorCode::NotMember, "not a member of this conversation")),
    }
}

/// How long after sending a message its sender may recall it, by default.
pub const DEFAULT_RECALL_WINDOW: Duration = Duration::from_secs(120);
