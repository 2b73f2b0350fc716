//! Many senders at once through the real server, on every backend.
//!
//! Fifty connections write into one conversation, and forty-six users write into the 1,035
//! conversations between every pair of them, all at the same moment. Every send must be acked,
//! the database must hold each message exactly once, and each conversation's seqs must rise
//! with every message linking to the one before. The server's warnings are captured: a
//! "database is locked", a deadlock or a batch that had to be retried one message at a time
//! fails the test even when every send was acked in the end.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use tern_client::WsClient;
use tern_protocol::frames::MessageView;
use tern_protocol::{ClientFrame, ConversationId, ServerFrame, UserId};
use tern_server::Config;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

/// How long one connection may take to get all its answers: generous, so a slow machine
/// passes, yet far below anything that looks like a hang.
const ANSWERS_WITHIN: Duration = Duration::from_secs(60);

/// Devices of one user, all sending into the same conversation.
const DEVICES: usize = 50;
const SENDS_PER_DEVICE: usize = 20;

/// Users who all talk to each other: 46 people make 1,035 one-to-one conversations.
const PEOPLE: usize = 46;

/// The history API's largest page.
const PAGE: usize = 200;

/// The tests of this file take turns: each one alone is the load under study, and two at
/// once on a small machine would only measure the machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Room for fifty devices per user, and queues deep enough that a test client reading a
/// burst a little late is not cut off as a slow consumer.
fn roomy(config: &mut Config) {
    config.websocket.max_connections_per_user = DEVICES + 8;
    config.websocket.outbound_queue = 16_384;
}

/// What the server said to one send.
#[derive(Clone, Debug)]
struct Answer {
    client_msg_id: String,
    conversation_id: ConversationId,
    seq: u64,
    duplicate: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_connections_sending_into_one_conversation_store_every_message_once_in_order()
-> TestResult {
    let _turn = ONE_AT_A_TIME.lock().await;
    let logs = capture_warnings();
    for backend in tern_testkit::backends() {
        let name = backend.name();
        let server = TestServer::start_with(backend, roomy).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let total = DEVICES * SENDS_PER_DEVICE;

        // Bob's one device reads everything and signs for every tenth message as it goes.
        let mut reader = server.connect(&bob, "laptop").await;
        read_replay(&mut reader).await;
        let listen = Plan {
            to: Vec::new(),
            ids: Vec::new(),
            pushes: total,
            sign_every: 10,
        };
        let live = tokio::spawn(async move { run_plan(&mut reader, listen).await });

        // Fifty devices of Alice's send at once; each also receives what the other
        // forty-nine send, and signs for some of it.
        let start = Arc::new(Barrier::new(DEVICES));
        let mut devices = JoinSet::new();
        for device in 0..DEVICES {
            let mut ws = server.connect(&alice, &format!("device-{device}")).await;
            read_replay(&mut ws).await;
            let ids: Vec<String> = (0..SENDS_PER_DEVICE)
                .map(|i| format!("d{device}-m{i}"))
                .collect();
            let to = vec![bob.id; ids.len()];
            let pushes = (DEVICES - 1) * SENDS_PER_DEVICE;
            let plan = Plan {
                to,
                ids,
                pushes,
                sign_every: 50,
            };
            let start = start.clone();
            devices.spawn(async move {
                start.wait().await;
                run_plan(&mut ws, plan).await
            });
        }
        let outcomes = join_outcomes(&mut devices, name).await?;
        let answers: Vec<Answer> = outcomes
            .iter()
            .flat_map(|o| o.answers.iter().cloned())
            .collect();
        assert_eq!(answers.len(), total, "{name}: one answer per send");
        assert!(
            answers.iter().all(|a| !a.duplicate),
            "{name}: no first send is a duplicate"
        );
        let conversations: HashSet<ConversationId> =
            answers.iter().map(|a| a.conversation_id).collect();
        assert_eq!(
            conversations.len(),
            1,
            "{name}: every device wrote into one conversation"
        );

        let history = full_history(&server, &bob.token, answers[0].conversation_id).await?;
        assert_stored_once_in_order(name, &answers, &history);
        let pushed = live.await?.map_err(|e| format!("{name}: bob: {e}"))?.pushed;
        assert_eq!(
            pushed, history,
            "{name}: the peer's device saw what was stored, in order"
        );
        for outcome in &outcomes {
            let seqs: Vec<u64> = outcome.pushed.iter().map(|m| m.seq).collect();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "{name}: a sender's other device saw seqs out of order"
            );
        }
    }
    assert_no_lock_trouble(&logs);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_conversations_written_at_once_store_every_message_once_in_order() -> TestResult
{
    let _turn = ONE_AT_A_TIME.lock().await;
    let logs = capture_warnings();
    for backend in tern_testkit::backends() {
        let name = backend.name();
        let server = TestServer::start_with(backend, roomy).await;
        let people = sign_up_many(&server, PEOPLE).await?;

        // Everyone writes to everyone else at once, so both sides of every pair race into
        // their shared conversation, and signs for every fifth message they receive.
        let start = Arc::new(Barrier::new(people.len()));
        let mut devices = JoinSet::new();
        for (me, person) in people.iter().enumerate() {
            let mut ws = server.connect(person, "phone").await;
            read_replay(&mut ws).await;
            let to: Vec<UserId> = people
                .iter()
                .filter(|p| p.id != person.id)
                .map(|p| p.id)
                .collect();
            let ids: Vec<String> = to.iter().map(|peer| format!("u{me}-to-{peer}")).collect();
            let plan = Plan {
                pushes: to.len(),
                to,
                ids,
                sign_every: 5,
            };
            let start = start.clone();
            devices.spawn(async move {
                start.wait().await;
                run_plan(&mut ws, plan).await
            });
        }
        let outcomes = join_outcomes(&mut devices, name).await?;
        let answers: Vec<Answer> = outcomes.into_iter().flat_map(|o| o.answers).collect();
        assert_eq!(
            answers.len(),
            PEOPLE * (PEOPLE - 1),
            "{name}: one answer per send"
        );
        assert!(
            answers.iter().all(|a| !a.duplicate),
            "{name}: no first send is a duplicate"
        );

        let mut by_conversation: BTreeMap<ConversationId, Vec<Answer>> = BTreeMap::new();
        for answer in answers {
            by_conversation
                .entry(answer.conversation_id)
                .or_default()
                .push(answer);
        }
        assert_eq!(
            by_conversation.len(),
            PEOPLE * (PEOPLE - 1) / 2,
            "{name}: one conversation per pair"
        );
        let checks = Arc::new(tokio::sync::Semaphore::new(8));
        let mut verified = JoinSet::new();
        for (conversation, answers) in by_conversation {
            assert_eq!(
                answers.len(),
                2,
                "{name}: both sides of {conversation} answered"
            );
            let (http, checks) = (server.http.clone(), checks.clone());
            let token = reader_of(&people, &answers)?;
            verified.spawn(async move {
                let _slot = checks.acquire_owned().await.map_err(|e| e.to_string())?;
                let page = http
                    .history(&token, conversation, &format!("after=0&limit={PAGE}"))
                    .await;
                page.map(|p| (answers, p.messages))
                    .map_err(|e| e.to_string())
            });
        }
        while let Some(done) = verified.join_next().await {
            let (answers, stored) = done?.map_err(|e| format!("{name}: history: {e}"))?;
            assert_stored_once_in_order(name, &answers, &stored);
        }
    }
    assert_no_lock_trouble(&logs);
    Ok(())
}

/// A member's token for the conversation the answers belong to: the first sender's (each
/// client id starts with its sender's index).
fn reader_of(people: &[User], answers: &[Answer]) -> Result<String, String> {
    let id = &answers[0].client_msg_id;
    let index = id
        .strip_prefix('u')
        .and_then(|rest| rest.split('-').next())
        .and_then(|n| n.parse::<usize>().ok());
    index
        .and_then(|i| people.get(i))
        .map(|p| p.token.clone())
        .ok_or_else(|| format!("no sender for {id}"))
}

/// Signs up `count` users at once.
async fn sign_up_many(
    server: &TestServer,
    count: usize,
) -> Result<Vec<User>, Box<dyn std::error::Error>> {
    let mut signing = JoinSet::new();
    for n in 0..count {
        let http = server.http.clone();
        signing.spawn(async move {
            let name = format!("person{n:02}");
            let session = http.sign_up(&name, "correct horse battery").await;
            (n, name, session)
        });
    }
    let mut people = Vec::with_capacity(count);
    while let Some(done) = signing.join_next().await {
        let (n, name, session) = done?;
        let session = session?;
        people.push((
            n,
            User {
                name,
                id: session.user_id,
                token: session.token,
            },
        ));
    }
    people.sort_by_key(|(n, _)| *n);
    Ok(people.into_iter().map(|(_, user)| user).collect())
}

/// What one connection does: send a text to each of `to` (pipelined, without waiting for
/// answers), read until every send is answered and `pushes` messages from others arrived,
/// and sign with a receipt for every `sign_every`-th of those, so that receipt writes race
/// the sends.
struct Plan {
    to: Vec<UserId>,
    ids: Vec<String>,
    pushes: usize,
    sign_every: usize,
}

/// What one connection got back.
struct Outcome {
    answers: Vec<Answer>,
    pushed: Vec<MessageView>,
}

/// Runs a [`Plan`]. An error frame, a close or a timeout is the failure; a ping answered at
/// the end shows every receipt before it was handled without error.
async fn run_plan(ws: &mut WsClient, plan: Plan) -> Result<Outcome, String> {
    for (peer, id) in plan.to.iter().zip(&plan.ids) {
        ws.send_text(*peer, id, id)
            .await
            .map_err(|e| format!("sending {id}: {e}"))?;
    }
    let mut pending: HashSet<&str> = plan.ids.iter().map(String::as_str).collect();
    let mut outcome = Outcome {
        answers: Vec::with_capacity(plan.ids.len()),
        pushed: Vec::new(),
    };
    let deadline = tokio::time::Instant::now() + ANSWERS_WITHIN;
    while !pending.is_empty() || outcome.pushed.len() < plan.pushes {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let waiting = format!(
            "{} unanswered, {} of {} pushed",
            pending.len(),
            outcome.pushed.len(),
            plan.pushes
        );
        match ws
            .next_within(left)
            .await
            .map_err(|e| format!("{waiting}: {e}"))?
        {
            ServerFrame::Ack {
                client_msg_id,
                conversation_id,
                seq,
                duplicate,
                ..
            } => {
                if !pending.remove(client_msg_id.as_str()) {
                    return Err(format!("an ack nobody waited for: {client_msg_id}"));
                }
                outcome.answers.push(Answer {
                    client_msg_id,
                    conversation_id,
                    seq,
                    duplicate,
                });
            }
            ServerFrame::Message(message) => {
                if (outcome.pushed.len() + 1).is_multiple_of(plan.sign_every) {
                    let (conversation, seq) = (message.conversation_id, message.seq);
                    ws.receipt(conversation, seq)
                        .await
                        .map_err(|e| format!("receipt: {e}"))?;
                }
                outcome.pushed.push(message);
            }
            ServerFrame::Error(err) => {
                return Err(format!("refused: {:?} {}", err.code, err.message));
            }
            _ => {}
        }
    }
    flush(ws).await?;
    Ok(outcome)
}

/// Pings and reads up to the pong; the server handles a connection's frames in order.
async fn flush(ws: &mut WsClient) -> Result<(), String> {
    let ping = ClientFrame::Ping {
        nonce: Some("flush".into()),
    };
    ws.send(&ping).await.map_err(|e| format!("ping: {e}"))?;
    let deadline = tokio::time::Instant::now() + ANSWERS_WITHIN;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ws
            .next_within(left)
            .await
            .map_err(|e| format!("waiting for pong: {e}"))?
        {
            ServerFrame::Pong { .. } => return Ok(()),
            ServerFrame::Error(err) => {
                return Err(format!("refused: {:?} {}", err.code, err.message));
            }
            _ => {}
        }
    }
}

async fn join_outcomes(
    devices: &mut JoinSet<Result<Outcome, String>>,
    backend: &str,
) -> Result<Vec<Outcome>, Box<dyn std::error::Error>> {
    let mut all = Vec::new();
    while let Some(done) = devices.join_next().await {
        all.push(done?.map_err(|e| format!("{backend}: {e}"))?);
    }
    Ok(all)
}

/// Every message of a conversation, oldest first, page by page.
async fn full_history(
    server: &TestServer,
    token: &str,
    conversation: ConversationId,
) -> Result<Vec<MessageView>, Box<dyn std::error::Error>> {
    let mut all: Vec<MessageView> = Vec::new();
    loop {
        let after = all.last().map(|m| m.seq).unwrap_or(0);
        let page = server
            .http
            .history(token, conversation, &format!("after={after}&limit={PAGE}"))
            .await?;
        all.extend(page.messages);
        if !page.has_more {
            return Ok(all);
        }
    }
}

/// Seqs rise strictly and each message names the one before it (0 for the first).
fn assert_chain(backend: &str, messages: &[MessageView]) {
    let mut prev = 0;
    for m in messages {
        assert!(
            m.seq > prev,
            "{backend}: seq {} does not rise after {prev}",
            m.seq
        );
        assert_eq!(
            m.prev_seq, prev,
            "{backend}: seq {} links to {} instead of {prev}",
            m.seq, m.prev_seq
        );
        prev = m.seq;
    }
}

/// The stored history holds exactly the acked messages, each at the seq its ack named.
fn assert_stored_once_in_order(backend: &str, answers: &[Answer], stored: &[MessageView]) {
    assert_chain(backend, stored);
    let acked: HashMap<&str, u64> = answers
        .iter()
        .map(|a| (a.client_msg_id.as_str(), a.seq))
        .collect();
    assert_eq!(
        acked.len(),
        answers.len(),
        "{backend}: every client id was answered once"
    );
    let kept: HashMap<&str, u64> = stored
        .iter()
        .map(|m| (m.client_msg_id.as_str(), m.seq))
        .collect();
    assert_eq!(
        kept.len(),
        stored.len(),
        "{backend}: no message is stored twice"
    );
    assert_eq!(
        kept, acked,
        "{backend}: the stored messages are exactly the acked ones"
    );
    for m in stored {
        assert_eq!(
            text_of(m),
            m.client_msg_id,
            "{backend}: body stored with its message"
        );
    }
}

/// Warnings and errors the server logged while this test binary ran.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<u8>>>);

impl Write for Warnings {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut held) = self.0.lock() {
            held.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts capturing the server's warnings, once per test binary.
fn capture_warnings() -> Warnings {
    static CAPTURED: OnceLock<Warnings> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let warnings = Warnings::default();
            let writer = warnings.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::WARN)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
            warnings
        })
        .clone()
}

/// No lock timeout, deadlock or failed batch commit was logged, even one that a retry hid.
fn assert_no_lock_trouble(logs: &Warnings) {
    let text = logs
        .0
        .lock()
        .map(|held| String::from_utf8_lossy(&held).into_owned())
        .unwrap_or_default();
    let trouble: Vec<&str> = text
        .lines()
        .filter(|line| {
            let line = line.to_ascii_lowercase();
            ["locked", "deadlock", "busy", "commit failed", "lock wait"]
                .iter()
                .any(|w| line.contains(w))
        })
        .collect();
    assert!(
        trouble.is_empty(),
        "lock trouble in the server log:\n{}",
        trouble.join("\n")
    );
}
