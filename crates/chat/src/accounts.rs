//! Registration, login, tokens and logout.
//!
//! Passwords are hashed with Argon2id. A token is 32 random bytes shown to the client once;
//! the database keeps only its SHA-256, so a leaked table does not leak sessions. Tokens
//! expire and can be revoked, and revoking one closes the connections opened with it.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tern_protocol::http::{Account, Credentials, Session};
use tern_protocol::{ErrorCode, UserId};
use tern_storage::users;

use crate::{Chat, ChatError, clock};

/// A request's token, checked: who it belongs to and its stored hash.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub user: UserId,
    pub token_hash: String,
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Usernames are compared without case, so `Alice` and `alice` are one account and nobody
/// can register a look-alike of an existing name by changing case. They are stored lowercase.
pub fn normalize_username(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}

fn validate(credentials: &Credentials) -> Result<(), ChatError> {
    let name = &credentials.username;
    let name_ok = (3..=32).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !name_ok {
        return Err(ChatError::refused(
            ErrorCode::InvalidRequest,
            "username must be 3 to 32 characters of letters, digits, '_', '.' or '-'",
        ));
    }
    if !(8..=256).contains(&credentials.password.len()) {
        return Err(ChatError::refused(ErrorCode::InvalidRequest, "password must be 8 to 256 bytes"));
    }
    Ok(())
}

async fn cpu<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ChatError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| ChatError::Internal(e.to_string()))
}

impl Chat {
    pub async fn register(&self, mut credentials: Credentials) -> Result<Account, ChatError> {
        credentials.username = normalize_username(&credentials.username);
        validate(&credentials)?;
        let password = credentials.password.clone();
        let hash = cpu(move || {
            let salt = new_salt()?;
            Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
        })
        .await?
        .map_err(|e| ChatError::Internal(e.to_string()))?;
        let username = credentials.username.clone();
        let created = self
            .blocking(move |conn| Ok(users::create_user(conn, &username, &hash, clock::now_ms())?))
            .await;
        match created {
            Ok(user_id) => Ok(Account { user_id, username: credentials.username }),
            Err(ChatError::Refused(e)) if e.code == ErrorCode::Conflict => {
                Err(ChatError::refused(ErrorCode::Conflict, "username is taken"))
            }
            Err(other) => Err(other),
        }
    }

    pub async fn login(&self, credentials: Credentials) -> Result<Session, ChatError> {
        let username = normalize_username(&credentials.username);
        self.login_guard.check(&username)?;
        let attempt = username.clone();
        let found = self.blocking(move |conn| Ok(users::find_user_by_name(conn, &username)?)).await?;
        let denied = || ChatError::refused(ErrorCode::Unauthorized, "wrong username or password");
        // Verify against a fixed hash when the user is unknown, so the answer takes as long
        // either way and does not reveal which usernames exist.
        let stored = found.as_ref().map(|u| u.password_hash.clone());
        let password = credentials.password;
        let verified = cpu(move || {
            let stored = stored.unwrap_or_else(|| dummy_hash().to_owned());
            PasswordHash::new(&stored)
                .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
                .unwrap_or(false)
        })
        .await?;
        let user = match found {
            Some(user) if verified => UserId(user.id),
            _ => {
                self.login_guard.failed(&attempt);
                return Err(denied());
            }
        };
        self.login_guard.succeeded(&attempt);
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let token_hash = hash_token(&token);
        let now = clock::now_ms();
        let ttl_ms = i64::try_from(self.config.token_ttl.as_millis()).unwrap_or(i64::MAX);
        let expires_at = now.saturating_add(ttl_ms);
        self.blocking(move |conn| Ok(users::insert_token(conn, &token_hash, user, now, expires_at)?))
            .await?;
        Ok(Session { token, user_id: user, expires_at })
    }

    /// Checks a bearer token: valid, not expired, not revoked.
    pub async fn authenticate(&self, token: &str) -> Result<Authenticated, ChatError> {
        let token_hash = hash_token(token);
        let lookup = token_hash.clone();
        let user = self
            .blocking(move |conn| Ok(users::user_for_token(conn, &lookup, clock::now_ms())?))
            .await?;
        match user {
            Some(user) => Ok(Authenticated { user, token_hash }),
            None => Err(ChatError::refused(ErrorCode::Unauthorized, "invalid or expired token")),
        }
    }

    pub async fn account_by_id(&self, id: UserId) -> Result<Option<Account>, ChatError> {
        let row = self.blocking(move |conn| Ok(users::find_user(conn, id)?)).await?;
        Ok(row.map(|u| Account { user_id: UserId(u.id), username: u.username }))
    }

    pub async fn account_by_name(&self, name: String) -> Result<Option<Account>, ChatError> {
        let name = normalize_username(&name);
        let row = self.blocking(move |conn| Ok(users::find_user_by_name(conn, &name)?)).await?;
        Ok(row.map(|u| Account { user_id: UserId(u.id), username: u.username }))
    }

    /// Revokes the token and kicks every connection that was opened with it.
    pub async fn logout(&self, auth: &Authenticated) -> Result<(), ChatError> {
        let hash = auth.token_hash.clone();
        self.blocking(move |conn| Ok(users::revoke_token(conn, &hash, clock::now_ms())?)).await?;
        self.hub.kick_token(&auth.token_hash, "logged out");
        Ok(())
    }
}

/// Failed logins per username, so a password cannot be guessed at full speed.
///
/// After `MAX_FAILURES` failures within `WINDOW`, further attempts on that username are
/// refused with `rate_limited` until the window since the first failure has passed. The map
/// is cleared when it grows past `MAX_TRACKED` names, which bounds its memory at the cost of
/// forgetting counts under a spray across very many names. Counts are per node.
#[derive(Debug, Default)]
pub struct LoginGuard {
    failures: std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>,
}

const MAX_FAILURES: u32 = 10;
const WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);
const MAX_TRACKED: usize = 100_000;

impl LoginGuard {
    fn check(&self, username: &str) -> Result<(), ChatError> {
        let Ok(mut failures) = self.failures.lock() else { return Ok(()) };
        match failures.get(username) {
            Some((_, since)) if since.elapsed() >= WINDOW => {
                failures.remove(username);
                Ok(())
            }
            Some((count, _)) if *count >= MAX_FAILURES => Err(ChatError::refused(
                ErrorCode::RateLimited,
                "too many failed logins for this user; try again later",
            )),
            _ => Ok(()),
        }
    }

    fn failed(&self, username: &str) {
        let Ok(mut failures) = self.failures.lock() else { return };
        if failures.len() >= MAX_TRACKED {
            failures.clear();
        }
        failures.entry(username.to_owned()).or_insert((0, std::time::Instant::now())).0 += 1;
    }

    fn succeeded(&self, username: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(username);
        }
    }
}

/// 16 random bytes from the OS generator, in the encoding Argon2 hashes carry.
fn new_salt() -> Result<SaltString, argon2::password_hash::Error> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    SaltString::encode_b64(&bytes)
}

/// An Argon2id hash of a random password nobody knows, for timing-equal failed logins.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        new_salt()
            .and_then(|salt| Argon2::default().hash_password(&secret, &salt).map(|h| h.to_string()))
            .unwrap_or_default()
    })
}
