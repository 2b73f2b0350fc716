//! Receipts: a device signs for everything it received in a conversation, up to a seq.

use tern_protocol::{ConversationId, ErrorCode, ServerFrame, UserId};
use tern_storage::{conversations, cursors};

use crate::hub::Outgoing;
use crate::{Chat, ChatError};

impl Chat {
    /// Records a cumulative receipt. When it raises the user's delivered position, the other
    /// members' connections are told with a `delivered` frame.
    pub async fn receipt(
        &self,
        user: UserId,
        device: String,
        conversation: ConversationId,
        seq: u64,
    ) -> Result<(), ChatError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let outcome = self
            .blocking(move |conn| {
                let member = conversations::membership(conn, conversation, user)?
                    .ok_or_else(|| ChatError::refused(ErrorCode::NotMember, "not a member"))?;
                let Some(conv) = conversations::find_conversation(conn, conversation)? else {
                    return Err(ChatError::refused(ErrorCode::NotFound, "no such conversation"));
                };
                // A receipt cannot sign for more than exists or than the member may see.
                let seq = seq.min(conv.last_seq).min(member.left_seq.unwrap_or(i64::MAX));
                if seq <= 0 {
                    return Ok(None);
                }
                cursors::raise_device_cursor(conn, user, &device, conversation, seq)?;
                if !conversations::raise_delivered(conn, conversation, user, seq)? {
                    return Ok(None);
                }
                let others = conversations::active_member_ids(conn, conversation)?;
                Ok(Some((seq, others)))
            })
            .await?;
        if let Some((seq, members)) = outcome {
            let frame = Outgoing::new(ServerFrame::Delivered {
                conversation_id: conversation,
                user_id: user,
                seq: u64::try_from(seq).unwrap_or_default(),
            });
            members.into_iter().filter(|m| *m != user).for_each(|m| self.hub.deliver(m, &frame, None));
        }
        Ok(())
    }
}
