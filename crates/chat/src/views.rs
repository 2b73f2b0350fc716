//! Stored rows as clients see them, and content as it is stored.
//!
//! A message row keeps its content in three columns: `kind`, `body` and an optional `meta`.
//! Text keeps the text in `body`; a picture or file keeps its name in `body` and its
//! attachment record as JSON in `meta`; a custom message keeps its payload in `body` and its
//! type tag in `meta`; a system notice keeps its event as JSON in `meta`.

use tern_protocol::frames::{Attachment, Content, MessageView, SystemEvent};
use tern_protocol::{ConversationId, MessageId, UserId};
use tern_storage::messages::MessageRow;

pub const KIND_TEXT: &str = "text";
pub const KIND_IMAGE: &str = "image";
pub const KIND_FILE: &str = "file";
pub const KIND_CUSTOM: &str = "custom";
pub const KIND_SYSTEM: &str = "system";

/// The stored form of a message's content: its kind, its body and optional metadata.
pub fn content_to_columns(content: &Content) -> (String, String, Option<String>) {
    match content {
        Content::Text { text } => (KIND_TEXT.into(), text.clone(), None),
        Content::Image { attachment } => (KIND_IMAGE.into(), attachment.name.clone(), json(attachment)),
        Content::File { attachment } => (KIND_FILE.into(), attachment.name.clone(), json(attachment)),
        Content::Custom { custom_type, payload } => {
            (KIND_CUSTOM.into(), payload.clone(), Some(custom_type.clone()))
        }
        Content::System { event } => (KIND_SYSTEM.into(), String::new(), json(event)),
        // Never stored: a recalled message keeps its kind and gets `recalled_at`.
        Content::Recalled {} => (KIND_TEXT.into(), String::new(), None),
    }
}

fn json<T: serde::Serialize>(value: &T) -> Option<String> {
    serde_json::to_string(value).ok()
}

fn columns_to_content(row: &MessageRow) -> Content {
    if row.recalled_at.is_some() {
        return Content::Recalled {};
    }
    let meta = row.meta.as_deref().unwrap_or_default();
    let attachment = || serde_json::from_str::<Attachment>(meta).ok();
    match row.kind.as_str() {
        KIND_IMAGE => match attachment() {
            Some(attachment) => Content::Image { attachment },
            None => Content::Text { text: row.body.clone() },
        },
        KIND_FILE => match attachment() {
            Some(attachment) => Content::File { attachment },
            None => Content::Text { text: row.body.clone() },
        },
        KIND_CUSTOM => Content::Custom { custom_type: meta.to_owned(), payload: row.body.clone() },
        KIND_SYSTEM => match serde_json::from_str::<SystemEvent>(meta) {
            Ok(event) => Content::System { event },
            Err(_) => Content::Text { text: row.body.clone() },
        },
        // Text, and any kind a newer server sharing the database wrote: shown as its body.
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
        recalled_at: row.recalled_at,
    }
}
