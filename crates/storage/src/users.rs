//! Accounts and their bearer tokens.

use diesel::prelude::*;
use tern_db::{DbConnection, last_insert_id};
use tern_protocol::UserId;

use crate::StorageError;
use crate::schema::{tokens, users};

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub created_at: i64,
}

/// Creates an account; a taken username is [`StorageError::Conflict`].
pub fn create_user(
    conn: &mut DbConnection,
    username: &str,
    password_hash: &str,
    now: i64,
) -> Result<UserId, StorageError> {
    tern_db::write_transaction(conn, |conn| {
        diesel::insert_into(users::table)
            .values((
                users::username.eq(username),
                users::password_hash.eq(password_hash),
                users::created_at.eq(now),
            ))
            .execute(conn)
            .map_err(StorageError::from_insert)?;
        Ok(UserId(last_insert_id(conn)?))
    })
}

pub fn find_user_by_name(
    conn: &mut DbConnection,
    username: &str,
) -> Result<Option<UserRow>, StorageError> {
    Ok(users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_user(conn: &mut DbConnection, id: UserId) -> Result<Option<UserRow>, StorageError> {
    Ok(users::table.find(id.0).select(UserRow::as_select()).first(conn).optional()?)
}

/// Stores a token by its hash; the token itself is never stored.
pub fn insert_token(
    conn: &mut DbConnection,
    token_hash: &str,
    user: UserId,
    now: i64,
    expires_at: i64,
) -> Result<(), StorageError> {
    diesel::insert_into(tokens::table)
        .values((
            tokens::token_hash.eq(token_hash),
            tokens::user_id.eq(user.0),
            tokens::created_at.eq(now),
            tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The user a token hash belongs to, if the token is neither expired nor revoked.
pub fn user_for_token(
    conn: &mut DbConnection,
    token_hash: &str,
    now: i64,
) -> Result<Option<UserId>, StorageError> {
    let found = tokens::table
        .filter(tokens::token_hash.eq(token_hash))
        .filter(tokens::revoked_at.is_null())
        .filter(tokens::expires_at.gt(now))
        .select(tokens::user_id)
        .first::<i64>(conn)
        .optional()?;
    Ok(found.map(UserId))
}

/// Revokes a token; returns whether a live token was revoked.
pub fn revoke_token(
    conn: &mut DbConnection,
    token_hash: &str,
    now: i64,
) -> Result<bool, StorageError> {
    let changed = diesel::update(tokens::table)
        .filter(tokens::token_hash.eq(token_hash))
        .filter(tokens::revoked_at.is_null())
        .set(tokens::revoked_at.eq(now))
        .execute(conn)?;
    Ok(changed > 0)
}
