//! Group fan-out, when the server has groups.
//!
//! The server is asked for `POST /api/v1/groups` (`{"title", "members"}`, answered with the
//! group's `conversation_id`); a 404 or 405 means this build has no groups and the mode
//! reports itself skipped instead of failing, since groups are optional for a one-to-one
//! deployment.

use serde_json::{Value, json};
use tern_client::HttpClient;
use tern_protocol::ConversationId;

use crate::accounts::Account;
use crate::chat::{Destination, Plan};

/// Whether the server has groups, and the group when it does.
pub enum Group {
    Unavailable(String),
    Created(ConversationId),
}

/// Why the server has no groups, or `None` when it has them: an empty body to the create
/// route is refused as invalid where groups exist, and as an unknown route where they do not.
pub async fn unavailable(http: &HttpClient, owner: &Account) -> anyhow::Result<Option<String>> {
    let empty = bytes::Bytes::from_static(b"{}");
    let response = http
        .raw("POST", "/api/v1/groups", Some(&owner.token), Some(empty))
        .await?;
    Ok(match response.status {
        404 | 405 => Some(format!("POST /api/v1/groups answered {}", response.status)),
        _ => None,
    })
}

/// Creates one group of all `members`, the first as its owner.
pub async fn create(http: &HttpClient, members: &[Account]) -> anyhow::Result<Group> {
    let Some(owner) = members.first() else {
        anyhow::bail!("a group needs members")
    };
    let ids: Vec<String> = members.iter().skip(1).map(|a| a.id.to_string()).collect();
    let body = json!({ "title": "loadgen fan-out", "members": ids });
    let bytes = bytes::Bytes::from(serde_json::to_vec(&body)?);
    let response = http
        .raw("POST", "/api/v1/groups", Some(&owner.token), Some(bytes))
        .await?;
    if response.status == 404 || response.status == 405 {
        return Ok(Group::Unavailable(format!(
            "POST /api/v1/groups answered {}",
            response.status
        )));
    }
    let text = String::from_utf8_lossy(&response.body).into_owned();
    anyhow::ensure!(
        (200..300).contains(&response.status),
        "creating a group failed with {}: {text}",
        response.status
    );
    let value: Value = serde_json::from_str(&text)?;
    let id = ["conversation_id", "group_id", "id"]
        .iter()
        .find_map(|k| value.get(*k))
        .and_then(|v| {
            v.as_str()
                .map(str::to_owned)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
        })
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no conversation id in the group answer: {text}"))?;
    Ok(Group::Created(ConversationId(id)))
}

/// The first `senders` members send into the group; every member receives what the others
/// send.
pub fn plan(members: usize, senders: usize, group: ConversationId) -> Plan {
    let destinations = (0..members)
        .map(|i| (i < senders).then_some(Destination::Conversation(group)))
        .collect();
    let recipients = (0..members)
        .map(|i| {
            if i < senders {
                (0..members).filter(|r| *r != i).collect()
            } else {
                Vec::new()
            }
        })
        .collect();
    Plan {
        destinations,
        recipients,
    }
}
