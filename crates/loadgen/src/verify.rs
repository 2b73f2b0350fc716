//! After a run: does the database hold every acked message exactly once, under the seq the
//! ack named and with the client id it was sent with? Read through the HTTP history API, as
//! any client would see it.

use std::collections::HashMap;

use anyhow::Context;
use futures_util::{StreamExt, stream};
use tern_client::HttpClient;
use tern_protocol::ConversationId;

use crate::accounts::Account;

/// The largest page the server gives by default (`messages.history_max_limit`).
const PAGE: usize = 200;
/// Conversations read at once.
const PARALLEL: usize = 8;

#[derive(Debug, Default)]
pub struct Check {
    pub conversations: usize,
    pub checked: u64,
    /// Acked but not in the history.
    pub missing: u64,
    /// In the history under the acked seq, but with another client id.
    pub wrong_client_id: u64,
    /// A client id of this run stored more than once.
    pub duplicated: u64,
    /// Stored with this run's prefix but never acked (the ack may have been lost in transit).
    pub stored_unacked: u64,
    pub pages: u64,
}

impl Check {
    pub fn clean(&self) -> bool {
        self.missing == 0 && self.wrong_client_id == 0 && self.duplicated == 0
    }
}

/// `acked` is (conversation, seq, client id, sending connection); `accounts[sender]` reads.
pub async fn check(
    http: &HttpClient,
    accounts: &[Account],
    acked: &[(ConversationId, u64, String, usize)],
    run_prefix: &str,
) -> anyhow::Result<Check> {
    // Per conversation: a sender whose token reads it, and the acked (seq, client id) pairs.
    type Expected<'a> = (usize, Vec<(u64, &'a str)>);
    let mut by_conversation: HashMap<ConversationId, Expected> = HashMap::new();
    for (conversation, seq, id, sender) in acked {
        let entry = by_conversation
            .entry(*conversation)
            .or_insert((*sender, Vec::new()));
        entry.1.push((*seq, id.as_str()));
    }
    let jobs = by_conversation
        .into_iter()
        .map(|(conversation, (reader, expected))| {
            let token = accounts
                .get(reader)
                .map(|a| a.token.clone())
                .unwrap_or_default();
            async move { check_one(http, &token, conversation, expected, run_prefix).await }
        });
    let results: Vec<anyhow::Result<Check>> = stream::iter(jobs)
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut total = Check::default();
    for r in results {
        let c = r?;
        total.conversations += 1;
        total.checked += c.checked;
        total.missing += c.missing;
        total.wrong_client_id += c.wrong_client_id;
        total.duplicated += c.duplicated;
        total.stored_unacked += c.stored_unacked;
        total.pages += c.pages;
    }
    Ok(total)
}

async fn check_one(
    http: &HttpClient,
    token: &str,
    conversation: ConversationId,
    expected: Vec<(u64, &str)>,
    run_prefix: &str,
) -> anyhow::Result<Check> {
    let first = expected.iter().map(|(s, _)| *s).min().unwrap_or(1);
    let last = expected.iter().map(|(s, _)| *s).max().unwrap_or(0);
    let mut stored: HashMap<u64, Vec<String>> = HashMap::new();
    let mut ids: HashMap<String, u64> = HashMap::new();
    let mut after = first.saturating_sub(1);
    let mut check = Check::default();
    loop {
        let query = format!("after={after}&limit={PAGE}");
        let page = http
            .history(token, conversation, &query)
            .await
            .with_context(|| format!("history of conversation {conversation}"))?;
        check.pages += 1;
        for m in &page.messages {
            after = after.max(m.seq);
            stored
                .entry(m.seq)
                .or_default()
                .push(m.client_msg_id.clone());
            if m.client_msg_id.starts_with(run_prefix) {
                *ids.entry(m.client_msg_id.clone()).or_default() += 1;
            }
        }
        if !page.has_more || after >= last || page.messages.is_empty() {
            break;
        }
    }
    let mut acked_ids = std::collections::HashSet::new();
    for (seq, id) in &expected {
        check.checked += 1;
        acked_ids.insert(*id);
        match stored.get(seq).map(Vec::as_slice) {
            None | Some([]) => check.missing += 1,
            Some([one]) if one == id => {}
            Some([_]) => check.wrong_client_id += 1,
            Some(_) => check.duplicated += 1,
        }
    }
    check.duplicated += ids.values().filter(|n| **n > 1).count() as u64;
    check.stored_unacked += ids
        .keys()
        .filter(|id| !acked_ids.contains(id.as_str()))
        .count() as u64;
    Ok(check)
}
