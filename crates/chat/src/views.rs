//! Stored rows as clients see them.

use tern_protocol::frames::{Content, MessageView};
use tern_protocol::{ConversationId, MessageId, UserId};
use tern_storage::messages::MessageRow;

pub const KIND_TEXT: &str = "text";

/// The stored form of a message's content: its kind, its body and optional metadata.
pub fn content_to_columns(content: &Content) -> (String, String, Option<String>) {
    match content {
        Content::Text { text } => (KIND_TEXT.to_owned(), text.clone(), None),
    }
}

fn columns_to_content(row: &MessageRow) -> Content {
    match row.kind.as_str() {
        // Every kind this server writes is listed here; an unknown kind can only come from a
        // newer server sharing the database, and is shown as its plain body.
        _ => Content::Text { text: row.body.clone() },
    }
}

pub fn message_view(row: &MessageRow) -> MessageView {
    let seq = u64::try_from(row.seq).unwrap_or_default();
    MessageView {
        message_id: MessageId(tern_idgen::layout::message_id(row.conversation_id, seq)),
        conversation_id: ConversationId(row.conversation_id),
        seq,
        prev_seq: u64::try_from(row.prev_seq).unwrap_or_default(),
        sender_id: UserId(row.sender_id),
        client_msg_id: row.client_msg_id.clone(),
        content: columns_to_content(row),
        created_at: row.created_at,
    }
}
