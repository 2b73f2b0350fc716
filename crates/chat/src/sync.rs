//! Replay on connect: what a device missed, per conversation.
//!
//! A device's position in a conversation is the higher of what it says it holds and what it
//! last signed for with a receipt. The connection registers for live delivery *before* the
//! replay is read, and drops live messages it has already replayed (by seq), so a message
//! committed during the reconnect arrives exactly once.

use std::collections::HashMap;

use tern_protocol::frames::{MessageView, Position, SyncState};
use tern_protocol::{ConversationId, UserId};
use tern_storage::messages::{self, Direction};
use tern_storage::{conversations, cursors};

use crate::views::message_view;
use crate::{Chat, ChatError};

/// The messages to replay, oldest first per conversation, and where each conversation stands.
#[derive(Debug, Default)]
pub struct Replay {
    pub messages: Vec<MessageView>,
    pub conversations: Vec<SyncState>,
}

impl Chat {
    pub async fn replay(
        &self,
        user: UserId,
        device: String,
        positions: Vec<Position>,
    ) -> Result<Replay, ChatError> {
        let limit = i64::try_from(self.config.sync_limit).unwrap_or(i64::MAX);
        self.blocking(move |conn| {
            let mut held: HashMap<ConversationId, i64> = cursors::device_cursors(conn, user, &device)?
                .into_iter()
                .collect();
            for p in positions {
                let seq = i64::try_from(p.seq).unwrap_or(i64::MAX);
                let slot = held.entry(p.conversation_id).or_insert(seq);
                *slot = (*slot).max(seq);
            }
            let mut replay = Replay::default();
            for (member, conversation) in conversations::memberships_of(conn, user)? {
                let id = ConversationId(conversation.id);
                let from = held.get(&id).copied().unwrap_or(0);
                let visible = (member.joined_seq + 1, member.left_seq.unwrap_or(i64::MAX));
                let last_visible = conversation.last_seq.min(visible.1);
                let mut truncated = false;
                if last_visible > from {
                    let mut rows = messages::page(conn, id, Direction::After, from, limit + 1, visible)?;
                    truncated = rows.len() as i64 > limit;
                    rows.truncate(self_limit(limit));
                    replay.messages.extend(rows.iter().map(message_view));
                }
                replay.conversations.push(SyncState {
                    conversation_id: id,
                    last_seq: u64::try_from(last_visible).unwrap_or_default(),
                    truncated,
                });
            }
            Ok(replay)
        })
        .await
    }
}

fn self_limit(limit: i64) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}
