//! Friend requests, friendships and blocks.
//!
//! Each change commits both sides at once and then reaches both users' connections as a
//! `notice`; `friend_pull` returns what changed since the version a client holds.

use tern_protocol::frames::{FriendEntry, FriendState, SystemEvent};
use tern_protocol::{ErrorCode, ServerFrame, UserId};
use tern_storage::friends::{self, BLOCKED, FRIEND, INCOMING, NONE, OUTGOING};
use tern_storage::{users, write_transaction};

use crate::hub::Outgoing;
use crate::{Chat, ChatError, clock};

/// What a friend operation does to the two sides, decided from how they stand now.
type Transition = fn(&str, &str) -> Result<(&'static str, &'static str), ChatError>;

fn refused(code: ErrorCode, message: &str) -> ChatError {
    ChatError::refused(code, message)
}

fn request(mine: &str, theirs: &str) -> Result<(&'static str, &'static str), ChatError> {
    match (mine, theirs) {
        (_, BLOCKED) => Err(refused(ErrorCode::Forbidden, "this user does not accept requests from you")),
        (FRIEND, _) => Err(refused(ErrorCode::Conflict, "already friends")),
        (OUTGOING, _) => Err(refused(ErrorCode::Conflict, "request already sent")),
        // They asked first: asking back is accepting.
        (INCOMING, _) => Ok((FRIEND, FRIEND)),
        _ => Ok((OUTGOING, INCOMING)),
    }
}

fn accept(mine: &str, _theirs: &str) -> Result<(&'static str, &'static str), ChatError> {
    match mine {
        INCOMING => Ok((FRIEND, FRIEND)),
        _ => Err(refused(ErrorCode::NotFound, "no request from this user")),
    }
}

fn reject(mine: &str, _theirs: &str) -> Result<(&'static str, &'static str), ChatError> {
    match mine {
        INCOMING => Ok((NONE, NONE)),
        _ => Err(refused(ErrorCode::NotFound, "no request from this user")),
    }
}

fn remove(mine: &str, _theirs: &str) -> Result<(&'static str, &'static str), ChatError> {
    match mine {
        FRIEND | OUTGOING => Ok((NONE, NONE)),
        _ => Err(refused(ErrorCode::NotFound, "not a friend")),
    }
}

fn block(_mine: &str, theirs: &str) -> Result<(&'static str, &'static str), ChatError> {
    // The blocked side loses any friendship or request; a block of theirs stays.
    Ok((BLOCKED, if theirs == BLOCKED { BLOCKED } else { NONE }))
}

fn unblock(mine: &str, theirs: &str) -> Result<(&'static str, &'static str), ChatError> {
    match mine {
        BLOCKED => Ok((NONE, if theirs == BLOCKED { BLOCKED } else { NONE })),
        _ => Err(refused(ErrorCode::NotFound, "not blocked")),
    }
}

/// Friend operations a user can perform on another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FriendAction {
    Request,
    Accept,
    Reject,
    Remove,
    Block,
    Unblock,
}

impl FriendAction {
    fn transition(self) -> Transition {
        match self {
            FriendAction::Request => request,
            FriendAction::Accept => accept,
            FriendAction::Reject => reject,
            FriendAction::Remove => remove,
            FriendAction::Block => block,
            FriendAction::Unblock => unblock,
        }
    }
}

fn wire_state(state: &str) -> FriendState {
    match state {
        FRIEND => FriendState::Friend,
        INCOMING => FriendState::Incoming,
        OUTGOING => FriendState::Outgoing,
        BLOCKED => FriendState::Blocked,
        _ => FriendState::None,
    }
}

impl Chat {
    /// Applies a friend operation of `user` on `other` and notifies both.
    pub async fn friend(&self, user: UserId, other: UserId, action: FriendAction) -> Result<FriendState, ChatError> {
        if user == other {
            return Err(refused(ErrorCode::Forbidden, "that is you"));
        }
        let (mine, theirs) = self
            .blocking(move |conn| {
                if users::find_user(conn, other)?.is_none() {
                    return Err(refused(ErrorCode::NotFound, "no such user"));
                }
                write_transaction(conn, |conn| {
                    let mine = friends::state(conn, user, other)?;
                    let theirs = friends::state(conn, other, user)?;
                    let (new_mine, new_theirs) = (action.transition())(&mine, &theirs)?;
                    let now = clock::now_ms();
                    if new_mine != mine {
                        friends::set_state(conn, user, other, new_mine, now)?;
                    }
                    if new_theirs != theirs {
                        friends::set_state(conn, other, user, new_theirs, now)?;
                    }
                    Ok::<_, ChatError>((new_mine, (theirs, new_theirs)))
                })
            })
            .await?;
        self.tell_friend_change(user, other, action, theirs);
        Ok(wire_state(mine))
    }

    /// Notices for both sides. A block is not announced to the blocked user; they only see
    /// their side of the relation end.
    fn tell_friend_change(&self, user: UserId, other: UserId, action: FriendAction, theirs: (String, &str)) {
        let to_other = match action {
            FriendAction::Request if theirs.1 == FRIEND => Some(SystemEvent::FriendAccepted { user_id: user }),
            FriendAction::Request => Some(SystemEvent::FriendRequested { user_id: user }),
            FriendAction::Accept => Some(SystemEvent::FriendAccepted { user_id: user }),
            FriendAction::Reject => Some(SystemEvent::FriendRejected { user_id: user }),
            FriendAction::Remove => Some(SystemEvent::FriendRemoved { user_id: user }),
            FriendAction::Block if theirs.0 != theirs.1 => Some(SystemEvent::FriendRemoved { user_id: user }),
            FriendAction::Block | FriendAction::Unblock => None,
        };
        if let Some(event) = to_other {
            self.hub.deliver(other, &Outgoing::new(ServerFrame::Notice { event }), None);
        }
        // The user's own other devices learn of it too, so their lists converge.
        let own = match action {
            FriendAction::Request if theirs.1 == FRIEND => SystemEvent::FriendAccepted { user_id: other },
            FriendAction::Request => SystemEvent::FriendRequested { user_id: other },
            FriendAction::Accept => SystemEvent::FriendAccepted { user_id: other },
            FriendAction::Reject => SystemEvent::FriendRejected { user_id: other },
            _ => SystemEvent::FriendRemoved { user_id: other },
        };
        self.hub.deliver(user, &Outgoing::new(ServerFrame::Notice { event: own }), None);
    }

    /// Entries of the user's friend list changed after `since`, and the current version.
    pub async fn friends_since(&self, user: UserId, since: u64) -> Result<(u64, Vec<FriendEntry>), ChatError> {
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        let (version, rows) = self.blocking(move |conn| Ok(friends::changed_since(conn, user, since)?)).await?;
        let entries = rows
            .into_iter()
            .map(|(other, username, state, version)| FriendEntry {
                user_id: UserId(other),
                username,
                state: wire_state(&state),
                version: u64::try_from(version).unwrap_or_default(),
            })
            .collect();
        Ok((u64::try_from(version).unwrap_or_default(), entries))
    }
}
