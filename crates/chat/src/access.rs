//! Who may read what: the membership checks other layers ask for before serving content.

use tern_protocol::{ConversationId, ErrorCode, UserId};
use tern_storage::{conversations, users};

use crate::send::Target;
use crate::{Chat, ChatError, clock};

impl Chat {
    /// The conversation a send to `target` goes into, checked before anything is stored:
    /// the sender must be an active member (a one-to-one conversation is created on first
    /// use). The HTTP upload path calls this before it keeps the file.
    pub async fn resolve_target(&self, sender: UserId, target: Target) -> Result<ConversationId, ChatError> {
        self.blocking(move |conn| {
            let conversation = match target {
                Target::Conversation(id) => id,
                Target::User(peer) if peer == sender => {
                    return Err(ChatError::refused(ErrorCode::Forbidden, "cannot send to yourself"));
                }
                Target::User(peer) => {
                    if users::find_user(conn, peer)?.is_none() {
                        return Err(ChatError::refused(ErrorCode::NotFound, "no such user"));
                    }
                    conversations::direct_conversation(conn, sender, peer, clock::now_ms())?
                }
            };
            match conversations::membership(conn, conversation, sender)? {
                Some(member) if member.is_active() => Ok(conversation),
                _ => Err(ChatError::refused(ErrorCode::NotMember, "not a member of this conversation")),
            }
        })
        .await
    }

    /// Whether `reader` may see the message at `seq`: a member, present or past, whose
    /// membership window covers it.
    pub async fn can_read(&self, reader: UserId, conversation: ConversationId, seq: u64) -> Result<bool, ChatError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        self.blocking(move |conn| {
            Ok(conversations::membership(conn, conversation, reader)?.is_some_and(|m| {
                seq > m.joined_seq && m.left_seq.is_none_or(|left| seq <= left)
            }))
        })
        .await
    }
}
