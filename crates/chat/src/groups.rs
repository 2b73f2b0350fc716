//! Groups: create, add and remove members, leave.
//!
//! Membership changes go through the writer as system notices carrying their effect, so the
//! change and its notice commit together and take their place in the conversation's order:
//! a member removed at seq N receives nothing after N and can read nothing after N.

use tern_protocol::frames::SystemEvent;
use tern_protocol::{ConversationId, ErrorCode, UserId};
use tern_storage::{conversations, users};

use crate::send::Effect;
use crate::state::active_member;
use crate::{Ack, Chat, ChatError, clock};

impl Chat {
    /// Creates a group with the creator and `members`; everyone gets a `group_created` notice.
    pub async fn create_group(
        &self,
        creator: UserId,
        title: String,
        members: Vec<UserId>,
    ) -> Result<ConversationId, ChatError> {
        let title = title.trim().to_owned();
        if title.is_empty() || title.chars().count() > 100 {
            return Err(ChatError::refused(ErrorCode::InvalidRequest, "title must be 1 to 100 characters"));
        }
        if members.len() + 1 > self.config.max_group_members {
            let max = self.config.max_group_members;
            return Err(ChatError::refused(ErrorCode::InvalidRequest, format!("a group has at most {max} members")));
        }
        let stored_title = title.clone();
        let conversation = self
            .blocking(move |conn| {
                for member in &members {
                    if users::find_user(conn, *member)?.is_none() {
                        return Err(ChatError::refused(ErrorCode::NotFound, format!("no user {member}")));
                    }
                }
                Ok(conversations::create_group(conn, creator, &stored_title, &members, clock::now_ms())?)
            })
            .await?;
        let event = SystemEvent::GroupCreated { title, by: creator };
        self.notice(creator, conversation, event, None, "created".into()).await?;
        Ok(conversation)
    }

    /// Adds a user to a group; any active member may. The new member sees the group from
    /// the `member_joined` notice on.
    pub async fn add_member(&self, actor: UserId, conversation: ConversationId, user: UserId) -> Result<Ack, ChatError> {
        let joined_before = self
            .blocking(move |conn| {
                group_of(conn, conversation)?;
                active_member(conn, conversation, actor)?;
                if users::find_user(conn, user)?.is_none() {
                    return Err(ChatError::refused(ErrorCode::NotFound, "no such user"));
                }
                match conversations::membership(conn, conversation, user)? {
                    Some(m) if m.is_active() => Err(ChatError::refused(ErrorCode::Conflict, "already a member")),
                    Some(m) => Ok(m.joined_seq),
                    None => Ok(0),
                }
            })
            .await?;
        let event = SystemEvent::MemberJoined { user_id: user, by: actor };
        // A rejoin is a new event: the key carries the previous window so it is not a retry.
        let key = format!("join:{user}:{joined_before}");
        self.notice(actor, conversation, event, Some(Effect::Join(vec![user])), key).await
    }

    /// Removes a member: themselves (leaving) or, for the group's creator, anyone.
    pub async fn remove_member(&self, actor: UserId, conversation: ConversationId, user: UserId) -> Result<Ack, ChatError> {
        let joined = self
            .blocking(move |conn| {
                let group = group_of(conn, conversation)?;
                active_member(conn, conversation, actor)?;
                if actor != user && group.created_by != actor.0 {
                    return Err(ChatError::refused(ErrorCode::Forbidden, "only the group's creator can remove others"));
                }
                match conversations::membership(conn, conversation, user)? {
                    Some(m) if m.is_active() => Ok(m.joined_seq),
                    _ => Err(ChatError::refused(ErrorCode::NotFound, "not a member")),
                }
            })
            .await?;
        let event = SystemEvent::MemberLeft { user_id: user, by: actor };
        let key = format!("leave:{user}:{joined}");
        self.notice(actor, conversation, event, Some(Effect::Leave(user)), key).await
    }
}

fn group_of(
    conn: &mut tern_db::DbConnection,
    conversation: ConversationId,
) -> Result<conversations::ConversationRow, ChatError> {
    match conversations::find_conversation(conn, conversation)? {
        Some(c) if c.kind == conversations::KIND_GROUP => Ok(c),
        Some(_) => Err(ChatError::refused(ErrorCode::InvalidRequest, "not a group")),
        None => Err(ChatError::refused(ErrorCode::NotFound, "no such conversation")),
    }
}
