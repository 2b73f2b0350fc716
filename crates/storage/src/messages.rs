//! Messages: stored once per conversation, keyed by `(conversation_id, seq)`.

use std::collections::HashMap;

use diesel::prelude::*;
use tern_db::DbConnection;
use tern_protocol::{ConversationId, UserId};

use crate::StorageError;
use crate::schema::{conversations, messages};

#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = messages)]
pub struct MessageRow {
    pub conversation_id: i64,
    pub seq: i64,
    pub prev_seq: i64,
    pub sender_id: i64,
    pub client_msg_id: String,
    pub kind: String,
    pub body: String,
    pub meta: Option<String>,
    pub created_at: i64,
    pub recalled_at: Option<i64>,
}

/// A message about to be stored: its seq is allocated, its `prev_seq` is not known yet.
#[derive(Clone, Debug)]
pub struct Draft {
    pub conversation_id: ConversationId,
    pub seq: i64,
    pub sender_id: UserId,
    pub client_msg_id: String,
    pub kind: String,
    pub body: String,
    pub meta: Option<String>,
    pub created_at: i64,
}

/// Stored messages that answer any of these `(sender, client_msg_id)` pairs, in one query.
///
/// The filter is one `sender_id = S AND client_msg_id IN (...)` term per sender, OR-ed, so
/// each term is a range probe of the `(sender_id, client_msg_id)` index and the cost grows
/// with the number of pairs. (Two independent IN lists would make the database probe every
/// sender with every id: quadratic in the batch size.)
pub fn find_by_client_ids(
    conn: &mut DbConnection,
    keys: &[(UserId, &str)],
) -> Result<Vec<MessageRow>, StorageError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_sender: std::collections::BTreeMap<i64, Vec<&str>> = std::collections::BTreeMap::new();
    for (sender, id) in keys {
        by_sender.entry(sender.0).or_default().push(id);
    }
    let mut query = messages::table.select(MessageRow::as_select()).into_boxed();
    for (sender, ids) in by_sender {
        query = query.or_filter(messages::sender_id.eq(sender).and(messages::client_msg_id.eq_any(ids)));
    }
    Ok(query.load(conn)?)
}

/// Appends drafts in the caller's transaction: moves each conversation's `last_seq`, links
/// each message to the one before it, and inserts them all in one statement.
///
/// Drafts of one conversation must come in increasing seq order. The move of `last_seq` is
/// conditional (`WHERE last_seq < first seq of the batch`) and happens first, taking the
/// conversation row's lock: whichever writer commits, on whichever node, a conversation's
/// seqs increase in commit order, and a writer whose seqs fell behind another's commit gets
/// [`StorageError::SeqBehind`] instead of storing them out of order. Conversations are
/// locked in id order, so two writers cannot deadlock on them.
pub fn append(conn: &mut DbConnection, drafts: Vec<Draft>) -> Result<Vec<MessageRow>, StorageError> {
    if drafts.is_empty() {
        return Ok(Vec::new());
    }
    let mut spans: std::collections::BTreeMap<i64, (i64, i64, i64)> = std::collections::BTreeMap::new();
    for d in &drafts {
        let span = spans.entry(d.conversation_id.0).or_insert((d.seq, d.seq, d.created_at));
        span.0 = span.0.min(d.seq);
        span.1 = span.1.max(d.seq);
        span.2 = span.2.max(d.created_at);
    }
    let mut last: HashMap<i64, i64> = HashMap::with_capacity(spans.len());
    for (conversation, (first, highest, activity)) in spans {
        let moved = diesel::update(conversations::table.find(conversation))
            .filter(conversations::last_seq.lt(first))
            .set((conversations::last_seq.eq(highest), conversations::last_activity_at.eq(activity)))
            .execute(conn)?;
        if moved == 0 {
            let current: i64 = conversations::table.find(conversation).select(conversations::last_seq).first(conn)?;
            return Err(StorageError::SeqBehind { conversation: ConversationId(conversation), last_seq: current });
        }
        last.insert(conversation, previous_seq(conn, conversation, first)?);
    }
    let rows: Vec<MessageRow> = drafts
        .into_iter()
        .map(|d| {
            let prev = last.insert(d.conversation_id.0, d.seq).unwrap_or(0);
            MessageRow {
                conversation_id: d.conversation_id.0,
                seq: d.seq,
                prev_seq: prev,
                sender_id: d.sender_id.0,
                client_msg_id: d.client_msg_id,
                kind: d.kind,
                body: d.body,
                meta: d.meta,
                created_at: d.created_at,
                recalled_at: None,
            }
        })
        .collect();
    let insert = diesel::insert_into(messages::table).values(&rows);
    tern_db::on_backend!(conn, c => insert.execute(c)).map_err(StorageError::from_insert)?;
    Ok(rows)
}

/// The seq of the newest stored message below `seq` (0 when there is none). Read after the
/// conversation row is locked, so no other writer can add one meanwhile.
fn previous_seq(conn: &mut DbConnection, conversation: i64, seq: i64) -> Result<i64, StorageError> {
    let found: Option<i64> = messages::table
        .filter(messages::conversation_id.eq(conversation))
        .filter(messages::seq.lt(seq))
        .select(diesel::dsl::max(messages::seq))
        .first(conn)?;
    Ok(found.unwrap_or(0))
}

/// Which way a history page runs from its starting seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Messages with seq below the cursor, newest of them first in the scan.
    Before,
    /// Messages with seq above the cursor.
    After,
}

/// A page of one conversation, oldest first, limited to the seqs the reader may see
/// (`visible` is the reader's membership window, both ends inclusive).
pub fn page(
    conn: &mut DbConnection,
    conversation: ConversationId,
    direction: Direction,
    cursor: i64,
    limit: i64,
    visible: (i64, i64),
) -> Result<Vec<MessageRow>, StorageError> {
    let base = messages::table
        .filter(messages::conversation_id.eq(conversation.0))
        .filter(messages::seq.ge(visible.0))
        .filter(messages::seq.le(visible.1))
        .select(MessageRow::as_select())
        .limit(limit);
    let mut rows = match direction {
        Direction::Before => base
            .filter(messages::seq.lt(cursor))
            .order(messages::seq.desc())
            .load(conn)?,
        Direction::After => base
            .filter(messages::seq.gt(cursor))
            .order(messages::seq.asc())
            .load(conn)?,
    };
    if direction == Direction::Before {
        rows.reverse();
    }
    Ok(rows)
}

/// One message, if it exists.
pub fn find(conn: &mut DbConnection, conversation: ConversationId, seq: i64) -> Result<Option<MessageRow>, StorageError> {
    Ok(messages::table
        .find((conversation.0, seq))
        .select(MessageRow::as_select())
        .first(conn)
        .optional()?)
}

/// Marks a message recalled and drops its content, keeping its place in the conversation.
pub fn recall(conn: &mut DbConnection, conversation: ConversationId, seq: i64, now: i64) -> Result<bool, StorageError> {
    let changed = diesel::update(messages::table.find((conversation.0, seq)))
        .filter(messages::recalled_at.is_null())
        .set((messages::recalled_at.eq(now), messages::body.eq(""), messages::meta.eq(None::<String>)))
        .execute(conn)?;
    Ok(changed > 0)
}

/// Messages in `(after, upto]` that count as unread for `reader`: not theirs, not system
/// notices, not recalled.
pub fn count_unread(
    conn: &mut DbConnection,
    conversation: ConversationId,
    reader: UserId,
    after: i64,
    upto: i64,
) -> Result<i64, StorageError> {
    if upto <= after {
        return Ok(0);
    }
    Ok(messages::table
        .filter(messages::conversation_id.eq(conversation.0))
        .filter(messages::seq.gt(after))
        .filter(messages::seq.le(upto))
        .filter(messages::sender_id.ne(reader.0))
        .filter(messages::kind.ne("system"))
        .filter(messages::recalled_at.is_null())
        .count()
        .get_result(conn)?)
}

/// The newest message at or below `upto`.
pub fn last_at_or_below(conn: &mut DbConnection, conversation: ConversationId, upto: i64) -> Result<Option<MessageRow>, StorageError> {
    Ok(messages::table
        .filter(messages::conversation_id.eq(conversation.0))
        .filter(messages::seq.le(upto))
        .order(messages::seq.desc())
        .select(MessageRow::as_select())
        .first(conn)
        .optional()?)
}
