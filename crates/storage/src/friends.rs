//! Friendships, one row per side: `(user_id, other_id)` holds how `user_id` sees `other_id`.
//!
//! Every change bumps the affected users' `friend_version` and stamps their rows with it, so
//! a client that holds version V gets exactly the rows with a version above V.

use diesel::prelude::*;
use tern_db::DbConnection;
use tern_protocol::UserId;

use crate::StorageError;
use crate::schema::{friendships, users};

pub const FRIEND: &str = "friend";
pub const INCOMING: &str = "incoming";
pub const OUTGOING: &str = "outgoing";
pub const BLOCKED: &str = "blocked";
pub const NONE: &str = "none";

/// How `user` sees `other`: one of the constants above (`none` when there is no row).
pub fn state(conn: &mut DbConnection, user: UserId, other: UserId) -> Result<String, StorageError> {
    let found = friendships::table
        .find((user.0, other.0))
        .select(friendships::state)
        .first::<String>(conn)
        .optional()?;
    Ok(found.unwrap_or_else(|| NONE.to_owned()))
}

/// Sets how `user` sees `other`, under a new friend version of `user`. Call inside a write
/// transaction.
pub fn set_state(
    conn: &mut DbConnection,
    user: UserId,
    other: UserId,
    new_state: &str,
    now: i64,
) -> Result<i64, StorageError> {
    diesel::update(users::table.find(user.0))
        .set(users::friend_version.eq(users::friend_version + 1))
        .execute(conn)?;
    let version: i64 = users::table.find(user.0).select(users::friend_version).first(conn)?;
    let updated = diesel::update(friendships::table.find((user.0, other.0)))
        .set((
            friendships::state.eq(new_state),
            friendships::version.eq(version),
            friendships::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(friendships::table)
            .values((
                friendships::user_id.eq(user.0),
                friendships::other_id.eq(other.0),
                friendships::state.eq(new_state),
                friendships::version.eq(version),
                friendships::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(version)
}

/// Rows of `user` changed after `since`, with the other user's name, and the current version.
pub fn changed_since(
    conn: &mut DbConnection,
    user: UserId,
    since: i64,
) -> Result<(i64, Vec<(i64, String, String, i64)>), StorageError> {
    let version: i64 = users::table.find(user.0).select(users::friend_version).first(conn)?;
    let rows = friendships::table
        .inner_join(users::table)
        .filter(friendships::user_id.eq(user.0))
        .filter(friendships::version.gt(since))
        .order(friendships::version.asc())
        .select((friendships::other_id, users::username, friendships::state, friendships::version))
        .load(conn)?;
    Ok((version, rows))
}

/// Which of these `(blocker, blocked)` pairs are blocks, in one query.
pub fn blocked_pairs(
    conn: &mut DbConnection,
    pairs: &[(UserId, UserId)],
) -> Result<Vec<(UserId, UserId)>, StorageError> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let blockers: Vec<i64> = pairs.iter().map(|p| p.0.0).collect();
    let blocked: Vec<i64> = pairs.iter().map(|p| p.1.0).collect();
    let rows = friendships::table
        .filter(friendships::user_id.eq_any(&blockers))
        .filter(friendships::other_id.eq_any(&blocked))
        .filter(friendships::state.eq(BLOCKED))
        .select((friendships::user_id, friendships::other_id))
        .load::<(i64, i64)>(conn)?;
    Ok(rows
        .into_iter()
        .map(|(a, b)| (UserId(a), UserId(b)))
        .filter(|found| pairs.contains(found))
        .collect())
}
