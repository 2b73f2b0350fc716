//! Two nodes on one database, relaying live deliveries through NATS.

mod common;

use common::*;
use tern_client::{HttpClient, WsClient};
use tern_protocol::frames::Content;
use tern_protocol::{ClientFrame, ServerFrame};
use tern_server::{Config, Running};
use tern_testkit::TestDatabase;

struct Node {
    running: Running,
    http: HttpClient,
}

/// Both nodes of one test share a subject of their own, so tests running at the same time on
/// one NATS server do not hear each other.
async fn node(db: &TestDatabase, data: &std::path::Path, nats: &str, subject: &str) -> Node {
    let mut config: Config = test_config(db, data);
    config.cluster.nats_url = nats.to_owned();
    config.cluster.subject = subject.to_owned();
    let running = tern_server::start(config).await.expect("node starts");
    let http = HttpClient::new(&running.addr.to_string());
    Node { running, http }
}

/// A subject no other test uses: the process, a counter and the clock.
fn private_subject() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("tern.test.{}.{n}.{nanos}", std::process::id())
}

impl Node {
    fn host(&self) -> String {
        self.running.addr.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_on_one_node_reaches_a_user_on_the_other() -> TestResult {
    let Some(nats) = tern_testkit::nats_url() else {
        eprintln!("no TERN_TEST_NATS_URL: nothing to test against");
        return Ok(());
    };
    for backend in tern_testkit::backends() {
        let db = TestDatabase::create(backend);
        let (data_a, data_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
        let subject = private_subject();
        let a = node(&db, data_a.path(), &nats, &subject).await;
        let b = node(&db, data_b.path(), &nats, &subject).await;
        let alice = a.http.sign_up("alice", "correct horse battery").await?;
        let bob = b.http.sign_up("bob", "correct horse battery").await?;
        let (mut on_a, _) = WsClient::connect(&a.host(), &alice.token, "phone", Vec::new()).await?;
        let (mut on_b, _) = WsClient::connect(&b.host(), &bob.token, "laptop", Vec::new()).await?;
        read_replay(&mut on_a).await;
        read_replay(&mut on_b).await;

        on_a.send_text(bob.user_id, "x1", "across nodes").await?;
        assert!(matches!(answer_to(&mut on_a, "x1").await, ServerFrame::Ack { .. }));
        assert_eq!(text_of(&next_message(&mut on_b).await), "across nodes");
        on_b.send_text(alice.user_id, "x2", "and back").await?;
        assert_eq!(text_of(&next_message(&mut on_a).await), "and back");

        // Logging out through node A kicks the session held by node B.
        a.http.logout(&bob.token).await?;
        let (kicked, _) = on_b.until(WAIT, |f| matches!(f, ServerFrame::Kicked { .. })).await?;
        assert_eq!(kicked, ServerFrame::Kicked { reason: "logged out".into() });
        a.running.shutdown().await?;
        b.running.shutdown().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_writing_one_conversation_keep_seqs_in_commit_order() -> TestResult {
    let Some(nats) = tern_testkit::nats_url() else {
        eprintln!("no TERN_TEST_NATS_URL: nothing to test against");
        return Ok(());
    };
    for backend in tern_testkit::backends() {
        let db = TestDatabase::create(backend);
        let (data_a, data_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
        let subject = private_subject();
        let a = node(&db, data_a.path(), &nats, &subject).await;
        let b = node(&db, data_b.path(), &nats, &subject).await;
        let alice = a.http.sign_up("alice", "correct horse battery").await?;
        let bob = a.http.sign_up("bob", "correct horse battery").await?;
        let (mut first, _) = WsClient::connect(&a.host(), &alice.token, "one", Vec::new()).await?;
        let (mut second, _) = WsClient::connect(&b.host(), &alice.token, "two", Vec::new()).await?;
        read_replay(&mut first).await;
        read_replay(&mut second).await;

        let per_node = 60;
        let send_all = |mut ws: WsClient, tag: &'static str, to| async move {
            for i in 0..per_node {
                let frame = ClientFrame::Send {
                    client_msg_id: format!("{tag}{i}"),
                    to_user: Some(to),
                    conversation_id: None,
                    content: Content::Text { text: format!("{tag}{i}") },
                };
                ws.send(&frame).await.expect("sent");
            }
            let mut acked = 0;
            while acked < per_node {
                match ws.next_within(WAIT).await.expect("answers") {
                    ServerFrame::Ack { .. } => acked += 1,
                    ServerFrame::Error(err) => panic!("a send failed: {err}"),
                    _ => {}
                }
            }
        };
        let one = tokio::spawn(send_all(first, "a", bob.user_id));
        let two = tokio::spawn(send_all(second, "b", bob.user_id));
        one.await?;
        two.await?;

        let conversations: tern_protocol::http::ConversationPage =
            a.http.json::<(), _>("GET", "/api/v1/conversations?limit=5", Some(&bob.token), None).await?;
        let conversation = conversations.conversations[0].conversation_id;
        let page = a.http.history(&bob.token, conversation, "after=0&limit=200").await?;
        assert_eq!(page.messages.len(), 2 * per_node, "every acked message stored once");
        for pair in page.messages.windows(2) {
            assert!(pair[0].seq < pair[1].seq);
            assert_eq!(pair[1].prev_seq, pair[0].seq, "each message links to the one committed before it");
        }
        a.running.shutdown().await?;
        b.running.shutdown().await?;
    }
    Ok(())
}
