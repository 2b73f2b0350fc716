//! Pool exhaustion through the real server, on every backend.
//!
//! The server runs on one pooled connection with a short connection timeout. A burst of
//! reads and sends must end quickly: each request either succeeds or gets a clear
//! `unavailable`, none waits the 30 seconds r2d2 would by default, and nothing acked is lost.
//! Meanwhile `/healthz`, which touches no database, keeps answering: blocking database calls
//! run off the async workers, so a starved pool cannot stall the runtime.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tern_client::{HttpClient, HttpError};
use tern_protocol::{ConversationId, ErrorCode, UserId};
use tern_server::Config;
use tern_storage::StorageError;
use tern_storage::messages::{self, Draft};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

/// Requests fired at once: far more than one connection serves at a time.
const BURST: usize = 200;

/// The whole burst ends within this: a few times what queueing for a database slot and the
/// connection timeout allow, far below r2d2's 30-second default.
const BURST_WITHIN: Duration = Duration::from_secs(10);

/// How long `/healthz` may take while the pool is starved. It does no database work: a
/// runtime stalled by blocking calls would hold it as long as the database work it ran (the
/// seconds of a stall), while a machine busy with other work delays it far less.
const HEALTH_WITHIN: Duration = Duration::from_secs(2);

/// How long another client holds the lock that stalls the server's writes.
const STALL: Duration = Duration::from_secs(3);

fn one_connection(config: &mut Config) {
    config.database.pool_size = 1;
    config.database.connection_timeout_ms = 250;
}

/// How one request of a burst ended.
enum Outcome {
    Read,
    Sent(String),
    Unavailable,
}

/// What a burst did, counted.
#[derive(Default)]
struct Tally {
    reads: usize,
    acked: HashSet<String>,
    unavailable: usize,
    took: Duration,
    slowest_health: Duration,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (reads, acked, refused) = (self.reads, self.acked.len(), self.unavailable);
        write!(
            f,
            "{reads} reads, {acked} sends acked, {refused} unavailable in {:?}; ",
            self.took
        )?;
        write!(f, "slowest /healthz {:?}", self.slowest_health)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_one_pooled_connection_ends_fast_with_success_or_unavailable() -> TestResult {
    for backend in tern_testkit::backends() {
        let name = backend.name();
        let server = TestServer::start_with(backend, one_connection).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let first = send(&server.http, &alice.token, bob.id, "before-the-burst").await?;
        let conversation = conversation_of(&first)?;

        let tally = burst(&server, &alice, bob.id, conversation, "burst")
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        eprintln!("{name}: {tally}");
        let stored = stored_ids(&server.http, &bob.token, conversation).await?;
        let missing: Vec<&String> = tally
            .acked
            .iter()
            .filter(|id| !stored.contains(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{name}: acked but not stored: {missing:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_writes_stall_on_a_lock_reads_fail_fast_with_unavailable_and_sends_complete_after()
-> TestResult {
    for backend in tern_testkit::backends() {
        let name = backend.name();
        let server = TestServer::start_with(backend, one_connection).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let first = send(&server.http, &alice.token, bob.id, "before-the-stall").await?;
        let conversation = conversation_of(&first)?;

        // Another client holds a write on the conversation for a few seconds, so the
        // server's writer waits inside its commit holding the pool's only connection.
        let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
        let url = server.db.url.clone();
        let holder = tokio::task::spawn_blocking(move || {
            hold_write_lock(&url, conversation, alice.id, locked_tx)
        });
        timeout(BURST_WITHIN, locked_rx).await??;

        let tally = burst(&server, &alice, bob.id, conversation, "stalled")
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        eprintln!("{name}: {tally}");
        holder.await??;
        assert!(
            tally.unavailable > 0,
            "{name}: with the only connection stuck, some request was refused"
        );
        let stored = stored_ids(&server.http, &bob.token, conversation).await?;
        let missing: Vec<&String> = tally
            .acked
            .iter()
            .filter(|id| !stored.contains(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{name}: acked but not stored: {missing:?}"
        );
        assert!(
            !stored.contains("held-lock"),
            "{name}: the other client's rolled-back write is gone"
        );
    }
    Ok(())
}

/// Fires [`BURST`] requests at once, half history reads and half sends, while probing
/// `/healthz`; fails on any answer other than success or `unavailable`, or on a burst or
/// health check slower than its bound.
async fn burst(
    server: &TestServer,
    sender: &User,
    to: UserId,
    conversation: ConversationId,
    prefix: &str,
) -> Result<Tally, Box<dyn std::error::Error>> {
    let health = probe_health_aside(server.http.clone())?;
    let started = Instant::now();
    let mut requests = JoinSet::new();
    for n in 0..BURST {
        let (http, token) = (server.http.clone(), sender.token.clone());
        let id = format!("{prefix}-{n}");
        requests.spawn(async move {
            if n % 2 == 0 {
                classify(
                    http.history(&token, conversation, "limit=20")
                        .await
                        .map(|_| Outcome::Read),
                )
            } else {
                classify(
                    send(&http, &token, to, &id)
                        .await
                        .map(|_| Outcome::Sent(id)),
                )
            }
        });
    }
    let mut tally = Tally::default();
    let collect = async {
        while let Some(done) = requests.join_next().await {
            match done?? {
                Outcome::Read => tally.reads += 1,
                Outcome::Sent(id) => drop(tally.acked.insert(id)),
                Outcome::Unavailable => tally.unavailable += 1,
            }
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    timeout(BURST_WITHIN, collect)
        .await
        .map_err(|_| format!("the burst did not end within {BURST_WITHIN:?}"))??;
    tally.took = started.elapsed();
    tally.slowest_health = tokio::task::spawn_blocking(move || health.join())
        .await?
        .map_err(|_| "the /healthz probe panicked")??;
    Ok(tally)
}

/// Runs [`probe_health`] on a thread and runtime of its own, so the probe's client side does
/// not queue behind the burst's: what it measures is the server.
fn probe_health_aside(
    http: HttpClient,
) -> std::io::Result<std::thread::JoinHandle<Result<Duration, String>>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("healthz-probe".into())
        .spawn(move || runtime.block_on(probe_health(http)))
}

/// Keeps asking `/healthz` for about as long as a burst may take, failing on any answer
/// slower than [`HEALTH_WITHIN`]; returns the slowest.
async fn probe_health(http: HttpClient) -> Result<Duration, String> {
    let until = Instant::now() + STALL + Duration::from_secs(1);
    let mut slowest = Duration::ZERO;
    while Instant::now() < until {
        let asked = Instant::now();
        let answer = timeout(HEALTH_WITHIN, http.raw("GET", "/healthz", None, None)).await;
        let response = answer
            .map_err(|_| {
                format!("/healthz took over {HEALTH_WITHIN:?} while the pool was starved")
            })?
            .map_err(|e| e.to_string())?;
        if response.status != 200 {
            return Err(format!("/healthz answered {}", response.status));
        }
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(slowest)
}

/// Opens its own connection, writes a message into the conversation inside a write
/// transaction (taking the locks the server's writer needs next), says so, waits [`STALL`],
/// and rolls back.
fn hold_write_lock(
    url: &str,
    conversation: ConversationId,
    sender: UserId,
    locked: tokio::sync::oneshot::Sender<()>,
) -> Result<(), String> {
    let pool =
        tern_db::connect(url, &tern_db::PoolSettings::default()).map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let draft = Draft {
        conversation_id: conversation,
        seq: 1 << 40,
        sender_id: sender,
        client_msg_id: "held-lock".into(),
        kind: "text".into(),
        body: "held".into(),
        meta: None,
        created_at: 0,
    };
    let outcome = tern_db::write_transaction(&mut conn, |c| {
        messages::append(c, vec![draft])?;
        let _ = locked.send(());
        std::thread::sleep(STALL);
        Err::<(), _>(StorageError::Conflict)
    });
    match outcome {
        Err(StorageError::Conflict) => Ok(()),
        other => Err(format!("holding the lock: {other:?}")),
    }
}

/// A success, or `unavailable` as the one acceptable failure.
fn classify(result: Result<Outcome, HttpError>) -> Result<Outcome, String> {
    match result {
        Ok(outcome) => Ok(outcome),
        Err(err) if err.code() == Some(ErrorCode::Unavailable) => Ok(Outcome::Unavailable),
        Err(err) => Err(format!("neither success nor unavailable: {err}")),
    }
}

async fn send(http: &HttpClient, token: &str, to: UserId, id: &str) -> Result<Value, HttpError> {
    let body = json!({ "client_msg_id": id, "to_user": to, "kind": "text", "text": id });
    http.json("POST", "/api/v1/messages", Some(token), Some(&body))
        .await
}

fn conversation_of(ack: &Value) -> Result<ConversationId, String> {
    let id = ack["conversation_id"].as_str().and_then(|s| s.parse().ok());
    id.map(ConversationId)
        .ok_or_else(|| format!("no conversation id in {ack}"))
}

/// The client ids stored in a conversation, read page by page.
async fn stored_ids(
    http: &HttpClient,
    token: &str,
    conversation: ConversationId,
) -> Result<HashSet<String>, HttpError> {
    let mut ids = HashSet::new();
    let mut after = 0;
    loop {
        let page = http
            .history(token, conversation, &format!("after={after}&limit=200"))
            .await?;
        after = page.messages.last().map(|m| m.seq).unwrap_or(after);
        ids.extend(page.messages.into_iter().map(|m| m.client_msg_id));
        if !page.has_more {
            return Ok(ids);
        }
    }
}
