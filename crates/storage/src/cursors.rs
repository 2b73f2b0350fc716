//! What each device has signed for, per conversation.

use diesel::prelude::*;
use tern_db::DbConnection;
use tern_protocol::{ConversationId, UserId};

use crate::StorageError;
use crate::schema::device_cursors;

/// Every cursor of one device, as `(conversation, seq)`.
pub fn device_cursors(
    conn: &mut DbConnection,
    user: UserId,
    device: &str,
) -> Result<Vec<(ConversationId, i64)>, StorageError> {
    let rows = device_cursors::table
        .filter(device_cursors::user_id.eq(user.0))
        .filter(device_cursors::device_id.eq(device))
        .select((device_cursors::conversation_id, device_cursors::seq))
        .load::<(i64, i64)>(conn)?;
    Ok(rows.into_iter().map(|(c, s)| (ConversationId(c), s)).collect())
}

/// Raises a device's cursor; never lowers it. Written as update-then-insert because the
/// backends spell "upsert" three different ways.
pub fn raise_device_cursor(
    conn: &mut DbConnection,
    user: UserId,
    device: &str,
    conversation: ConversationId,
    seq: i64,
) -> Result<(), StorageError> {
    let key = device_cursors::table.find((user.0, device, conversation.0));
    let updated = diesel::update(key)
        .filter(device_cursors::seq.lt(seq))
        .set(device_cursors::seq.eq(seq))
        .execute(conn)?;
    if updated > 0 {
        return Ok(());
    }
    let inserted = diesel::insert_into(device_cursors::table)
        .values((
            device_cursors::user_id.eq(user.0),
            device_cursors::device_id.eq(device),
            device_cursors::conversation_id.eq(conversation.0),
            device_cursors::seq.eq(seq),
        ))
        .execute(conn)
        .map_err(StorageError::from_insert);
    match inserted {
        // The row exists with a seq at least as high: nothing to raise.
        Ok(_) | Err(StorageError::Conflict) => Ok(()),
        Err(other) => Err(other),
    }
}
