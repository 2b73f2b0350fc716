//! Uploaded files: one row per upload, describing content that lives on disk.
//!
//! A row is written before the message that carries it, with `seq` unset, and gets the
//! message's seq once that message is committed. A row without a seq is not downloadable:
//! its message may never commit (a refused or retried upload), and until it does nobody can
//! be checked against the message's visibility.

use diesel::prelude::*;
use tern_db::DbConnection;
use tern_protocol::ConversationId;

use crate::StorageError;
use crate::schema::{attachments, messages};

pub const KIND_IMAGE: &str = "image";
pub const KIND_FILE: &str = "file";

/// How far the clock may have stepped back between writing a row and its message.
const CLOCK_SLACK_MS: i64 = 60_000;

#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = attachments)]
pub struct AttachmentRow {
    /// Random, hex; also the name of its folder on disk.
    pub id: String,
    pub conversation_id: i64,
    pub uploader_id: i64,
    /// [`KIND_IMAGE`] or [`KIND_FILE`].
    pub kind: String,
    pub name: String,
    pub mime: String,
    pub size: i64,
    pub sha256: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub thumbnail: bool,
    pub seq: Option<i64>,
    pub created_at: i64,
}

pub fn insert(conn: &mut DbConnection, row: &AttachmentRow) -> Result<(), StorageError> {
    diesel::insert_into(attachments::table)
        .values(row)
        .execute(conn)
        .map_err(StorageError::from_insert)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<AttachmentRow>, StorageError> {
    Ok(attachments::table
        .find(id)
        .select(AttachmentRow::as_select())
        .first(conn)
        .optional()?)
}

/// Records the seq of the committed message that carries the attachment.
pub fn set_seq(conn: &mut DbConnection, id: &str, seq: i64) -> Result<bool, StorageError> {
    let changed = diesel::update(attachments::table.find(id))
        .set(attachments::seq.eq(seq))
        .execute(conn)?;
    Ok(changed > 0)
}

pub fn delete(conn: &mut DbConnection, id: &str) -> Result<bool, StorageError> {
    Ok(diesel::delete(attachments::table.find(id)).execute(conn)? > 0)
}

/// The seq of the uploader's message that carries this attachment, found from the message
/// side. It answers for a row whose seq was never recorded because the server stopped
/// between the message's commit and the update.
///
/// The scan covers the uploader's picture and file messages in the conversation written
/// since the row was (give or take a clock step), matched on the attachment id inside the
/// stored metadata. `id` must be plain hex (the caller validates it), so it needs no
/// escaping in the pattern.
pub fn carrier_seq(
    conn: &mut DbConnection,
    row: &AttachmentRow,
) -> Result<Option<i64>, StorageError> {
    let pattern = format!("%\"attachment_id\":\"{}\"%", row.id);
    Ok(messages::table
        .filter(messages::conversation_id.eq(row.conversation_id))
        .filter(messages::sender_id.eq(row.uploader_id))
        .filter(messages::kind.eq_any([KIND_IMAGE, KIND_FILE]))
        .filter(messages::created_at.ge(row.created_at - CLOCK_SLACK_MS))
        .filter(messages::meta.like(pattern))
        .select(messages::seq)
        .first(conn)
        .optional()?)
}

/// Whether the message at `seq` exists and has not been recalled: a recalled message takes
/// its attachment with it.
pub fn carrier_is_live(
    conn: &mut DbConnection,
    conversation: ConversationId,
    seq: i64,
) -> Result<bool, StorageError> {
    let recalled = messages::table
        .find((conversation.0, seq))
        .select(messages::recalled_at)
        .first::<Option<i64>>(conn)
        .optional()?;
    Ok(matches!(recalled, Some(None)))
}
