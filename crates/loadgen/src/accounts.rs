//! Accounts for a run: registered and logged in over HTTP, a bounded number at a time, and
//! optionally kept in a file so later runs on the same server skip the Argon2 work.
//!
//! The file holds bearer tokens of throw-away benchmark accounts; it is written with mode
//! 0600 and belongs in the run's temporary folder.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt, stream};
use tern_client::{HttpClient, HttpError};
use tern_protocol::{ErrorCode, UserId};

/// Every benchmark account has this password; the accounts exist only on servers this tool
/// was pointed at.
const PASSWORD: &str = "loadgen-password";

/// Attempts per account before the run gives up: a server busy hashing passwords may answer
/// `unavailable` while its database queue is full.
const ATTEMPTS: u32 = 5;

#[derive(Clone, Debug)]
pub struct Account {
    pub name: String,
    pub id: UserId,
    pub token: String,
}

/// The accounts `{prefix}0` .. `{prefix}{count-1}`, from the file when it has them.
pub async fn ensure(
    http: &HttpClient,
    prefix: &str,
    count: usize,
    parallel: usize,
    file: Option<&Path>,
) -> anyhow::Result<Vec<Account>> {
    let mut known = match file {
        Some(path) if path.exists() => read_file(path)?,
        _ => HashMap::new(),
    };
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !known.contains_key(*n))
        .cloned()
        .collect();
    if !missing.is_empty() {
        let started = std::time::Instant::now();
        let created: Vec<Account> =
            stream::iter(missing.into_iter().map(|name| sign_up(http, name)))
                .buffer_unordered(parallel.max(1))
                .try_collect()
                .await?;
        eprintln!(
            "signed up {} accounts in {:.1} s",
            created.len(),
            started.elapsed().as_secs_f64()
        );
        known.extend(created.into_iter().map(|a| (a.name.clone(), a)));
        if let Some(path) = file {
            write_file(path, known.values())?;
        }
    }
    names
        .iter()
        .map(|n| {
            known
                .get(n)
                .cloned()
                .with_context(|| format!("account {n} missing"))
        })
        .collect()
}

async fn sign_up(http: &HttpClient, name: String) -> anyhow::Result<Account> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match http.sign_up(&name, PASSWORD).await {
            Ok(session) => {
                return Ok(Account {
                    name,
                    id: session.user_id,
                    token: session.token,
                });
            }
            Err(err) if attempt < ATTEMPTS && retryable(&err) => {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(err) => return Err(anyhow::anyhow!("signing up {name}: {err}")),
        }
    }
}

fn retryable(err: &HttpError) -> bool {
    matches!(err, HttpError::Transport(_)) || err.code() == Some(ErrorCode::Unavailable)
}

fn read_file(path: &Path) -> anyhow::Result<HashMap<String, Account>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut accounts = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split('\t');
        let (Some(name), Some(id), Some(token)) = (parts.next(), parts.next(), parts.next()) else {
            anyhow::bail!("{}: unreadable line", path.display());
        };
        let id = UserId(
            id.parse()
                .with_context(|| format!("{}: bad user id", path.display()))?,
        );
        accounts.insert(
            name.to_owned(),
            Account {
                name: name.to_owned(),
                id,
                token: token.to_owned(),
            },
        );
    }
    Ok(accounts)
}

fn write_file<'a>(path: &Path, accounts: impl Iterator<Item = &'a Account>) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let mut out = String::new();
    for a in accounts {
        out.push_str(&format!("{}\t{}\t{}\n", a.name, a.id, a.token));
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(out.as_bytes())?;
    Ok(())
}
