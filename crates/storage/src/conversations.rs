//! Conversations and their members.
//!
//! A one-to-one conversation is found by its `direct_key` (the two user ids, smaller first),
//! so both people always land in the same conversation whoever writes first.

use diesel::prelude::*;
use tern_db::{DbConnection, last_insert_id, write_transaction};
use tern_protocol::{ConversationId, UserId};

use crate::StorageError;
use crate::schema::{conversations, members};

pub const KIND_DIRECT: &str = "direct";
pub const KIND_GROUP: &str = "group";

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = conversations)]
pub struct ConversationRow {
    pub id: i64,
    pub kind: String,
    pub title: Option<String>,
    pub created_by: i64,
    pub last_seq: i64,
    pub last_activity_at: i64,
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = members)]
pub struct MemberRow {
    pub conversation_id: i64,
    pub user_id: i64,
    pub joined_seq: i64,
    pub left_seq: Option<i64>,
    pub delivered_seq: i64,
    pub read_seq: i64,
}

impl MemberRow {
    /// Whether the member can still send and read new messages.
    pub fn is_active(&self) -> bool {
        self.left_seq.is_none()
    }
}

fn direct_key(a: UserId, b: UserId) -> String {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    format!("{low}:{high}")
}

/// The one-to-one conversation between two users, created on first use.
pub fn direct_conversation(
    conn: &mut DbConnection,
    a: UserId,
    b: UserId,
    now: i64,
) -> Result<ConversationId, StorageError> {
    let key = direct_key(a, b);
    if let Some(id) = find_direct(conn, &key)? {
        return Ok(id);
    }
    let created = write_transaction(conn, |conn| {
        diesel::insert_into(conversations::table)
            .values((
                conversations::kind.eq(KIND_DIRECT),
                conversations::direct_key.eq(&key),
                conversations::created_by.eq(a.0),
                conversations::created_at.eq(now),
                conversations::last_seq.eq(0),
                conversations::last_activity_at.eq(now),
            ))
            .execute(conn)
            .map_err(StorageError::from_insert)?;
        let id = ConversationId(last_insert_id(conn)?);
        for user in if a == b { vec![a] } else { vec![a, b] } {
            add_member_row(conn, id, user, 0, now)?;
        }
        Ok(id)
    });
    match created {
        // Someone created it between the lookup and the insert: theirs is the one.
        Err(StorageError::Conflict) => find_direct(conn, &key)?.ok_or(StorageError::Conflict),
        other => other,
    }
}

fn find_direct(conn: &mut DbConnection, key: &str) -> Result<Option<ConversationId>, StorageError> {
    Ok(conversations::table
        .filter(conversations::direct_key.eq(key))
        .select(conversations::id)
        .first::<i64>(conn)
        .optional()?
        .map(ConversationId))
}

pub(crate) fn add_member_row(
    conn: &mut DbConnection,
    conversation: ConversationId,
    user: UserId,
    joined_seq: i64,
    now: i64,
) -> Result<(), StorageError> {
    diesel::insert_into(members::table)
        .values((
            members::conversation_id.eq(conversation.0),
            members::user_id.eq(user.0),
            members::joined_at.eq(now),
            members::joined_seq.eq(joined_seq),
            members::delivered_seq.eq(joined_seq),
            members::read_seq.eq(joined_seq),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn find_conversation(
    conn: &mut DbConnection,
    id: ConversationId,
) -> Result<Option<ConversationRow>, StorageError> {
    Ok(conversations::table
        .find(id.0)
        .select(ConversationRow::as_select())
        .first(conn)
        .optional()?)
}

/// The user's membership of a conversation, active or past.
pub fn membership(
    conn: &mut DbConnection,
    conversation: ConversationId,
    user: UserId,
) -> Result<Option<MemberRow>, StorageError> {
    Ok(members::table
        .find((conversation.0, user.0))
        .select(MemberRow::as_select())
        .first(conn)
        .optional()?)
}

/// The users who currently belong to a conversation.
pub fn active_member_ids(
    conn: &mut DbConnection,
    conversation: ConversationId,
) -> Result<Vec<UserId>, StorageError> {
    let ids = members::table
        .filter(members::conversation_id.eq(conversation.0))
        .filter(members::left_seq.is_null())
        .select(members::user_id)
        .load::<i64>(conn)?;
    Ok(ids.into_iter().map(UserId).collect())
}

/// Every conversation the user belongs to or has left, with its membership.
pub fn memberships_of(
    conn: &mut DbConnection,
    user: UserId,
) -> Result<Vec<(MemberRow, ConversationRow)>, StorageError> {
    Ok(members::table
        .inner_join(conversations::table)
        .filter(members::user_id.eq(user.0))
        .select((MemberRow::as_select(), ConversationRow::as_select()))
        .load(conn)?)
}

/// Raises the member's delivered position; never lowers it.
pub fn raise_delivered(
    conn: &mut DbConnection,
    conversation: ConversationId,
    user: UserId,
    seq: i64,
) -> Result<bool, StorageError> {
    let changed = diesel::update(members::table.find((conversation.0, user.0)))
        .filter(members::delivered_seq.lt(seq))
        .set(members::delivered_seq.eq(seq))
        .execute(conn)?;
    Ok(changed > 0)
}

/// The active members of several conversations, in one query.
pub fn active_members_of(
    conn: &mut DbConnection,
    conversations: &[ConversationId],
) -> Result<std::collections::HashMap<ConversationId, Vec<UserId>>, StorageError> {
    let ids: Vec<i64> = conversations.iter().map(|c| c.0).collect();
    let rows = members::table
        .filter(members::conversation_id.eq_any(&ids))
        .filter(members::left_seq.is_null())
        .select((members::conversation_id, members::user_id))
        .load::<(i64, i64)>(conn)?;
    let mut found: std::collections::HashMap<ConversationId, Vec<UserId>> = Default::default();
    for (conversation, user) in rows {
        found.entry(ConversationId(conversation)).or_default().push(UserId(user));
    }
    Ok(found)
}

/// A new group with its first members, the creator among them.
pub fn create_group(
    conn: &mut DbConnection,
    creator: UserId,
    title: &str,
    members: &[UserId],
    now: i64,
) -> Result<ConversationId, StorageError> {
    write_transaction(conn, |conn| {
        diesel::insert_into(conversations::table)
            .values((
                conversations::kind.eq(KIND_GROUP),
                conversations::title.eq(title),
                conversations::created_by.eq(creator.0),
                conversations::created_at.eq(now),
                conversations::last_seq.eq(0),
                conversations::last_activity_at.eq(now),
            ))
            .execute(conn)?;
        let id = ConversationId(last_insert_id(conn)?);
        let mut all: Vec<UserId> = members.to_vec();
        all.push(creator);
        all.sort();
        all.dedup();
        for user in all {
            add_member_row(conn, id, user, 0, now)?;
        }
        Ok(id)
    })
}

/// Makes users members from `joined_seq` on (they see seqs above it); a past member's row
/// is reused, so their old window is replaced by the new one.
pub fn join(
    conn: &mut DbConnection,
    conversation: ConversationId,
    users: &[UserId],
    joined_seq: i64,
    now: i64,
) -> Result<(), StorageError> {
    for user in users {
        let reopened = diesel::update(members::table.find((conversation.0, user.0)))
            .set((
                members::left_seq.eq(None::<i64>),
                members::joined_seq.eq(joined_seq),
                members::joined_at.eq(now),
                members::read_seq.eq(joined_seq),
                members::delivered_seq.eq(joined_seq),
            ))
            .execute(conn)?;
        if reopened == 0 {
            add_member_row(conn, conversation, *user, joined_seq, now)?;
        }
    }
    Ok(())
}

/// Ends a membership; the user keeps read access up to `left_seq`.
pub fn leave(
    conn: &mut DbConnection,
    conversation: ConversationId,
    user: UserId,
    left_seq: i64,
) -> Result<(), StorageError> {
    diesel::update(members::table.find((conversation.0, user.0)))
        .filter(members::left_seq.is_null())
        .set(members::left_seq.eq(left_seq))
        .execute(conn)?;
    Ok(())
}

/// The kind of each of these conversations, in one query.
pub fn kinds_of(
    conn: &mut DbConnection,
    ids: &[ConversationId],
) -> Result<std::collections::HashMap<ConversationId, String>, StorageError> {
    let raw: Vec<i64> = ids.iter().map(|c| c.0).collect();
    let rows = conversations::table
        .filter(conversations::id.eq_any(&raw))
        .select((conversations::id, conversations::kind))
        .load::<(i64, String)>(conn)?;
    Ok(rows.into_iter().map(|(id, kind)| (ConversationId(id), kind)).collect())
}

/// Raises the member's read position; never lowers it.
pub fn raise_read(
    conn: &mut DbConnection,
    conversation: ConversationId,
    user: UserId,
    seq: i64,
) -> Result<bool, StorageError> {
    let changed = diesel::update(members::table.find((conversation.0, user.0)))
        .filter(members::read_seq.lt(seq))
        .set(members::read_seq.eq(seq))
        .execute(conn)?;
    Ok(changed > 0)
}

/// One page of the user's conversations, most recently active first. `before` is the
/// `(last_activity_at, id)` of the last entry of the previous page.
pub fn page_of_user(
    conn: &mut DbConnection,
    user: UserId,
    before: Option<(i64, i64)>,
    limit: i64,
) -> Result<Vec<(MemberRow, ConversationRow)>, StorageError> {
    let mut query = members::table
        .inner_join(conversations::table)
        .filter(members::user_id.eq(user.0))
        .select((MemberRow::as_select(), ConversationRow::as_select()))
        .order((conversations::last_activity_at.desc(), conversations::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some((activity, id)) = before {
        query = query.filter(
            conversations::last_activity_at
                .lt(activity)
                .or(conversations::last_activity_at.eq(activity).and(conversations::id.lt(id))),
        );
    }
    Ok(query.load(conn)?)
}
