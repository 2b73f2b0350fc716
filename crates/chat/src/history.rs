//! Reading a conversation's history, a page at a time.

use tern_protocol::http::HistoryPage;
use tern_protocol::{ConversationId, ErrorCode, UserId};
use tern_storage::conversations;
use tern_storage::messages::{self, Direction};

use crate::views::message_view;
use crate::{Chat, ChatError};

impl Chat {
    /// A page of messages before or after `cursor`, oldest first, within what the reader's
    /// membership lets them see.
    pub async fn history(
        &self,
        reader: UserId,
        conversation: ConversationId,
        direction: Direction,
        cursor: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, ChatError> {
        let max = self.config.history_max_limit;
        if limit == 0 || limit > max {
            return Err(ChatError::refused(ErrorCode::InvalidRequest, format!("limit must be 1 to {max}")));
        }
        let cursor = match (cursor, direction) {
            (Some(seq), _) => i64::try_from(seq).unwrap_or(i64::MAX),
            (None, Direction::Before) => i64::MAX,
            (None, Direction::After) => 0,
        };
        let limit = limit as i64;
        self.blocking(move |conn| {
            let member = conversations::membership(conn, conversation, reader)?
                .ok_or_else(|| ChatError::refused(ErrorCode::NotMember, "not a member of this conversation"))?;
            let visible = (member.joined_seq + 1, member.left_seq.unwrap_or(i64::MAX));
            let mut rows = messages::page(conn, conversation, direction, cursor, limit + 1, visible)?;
            let has_more = rows.len() as i64 > limit;
            if has_more {
                match direction {
                    Direction::Before => drop(rows.remove(0)),
                    Direction::After => drop(rows.pop()),
                }
            }
            Ok(HistoryPage {
                conversation_id: conversation,
                messages: rows.iter().map(message_view).collect(),
                has_more,
            })
        })
        .await
    }
}
