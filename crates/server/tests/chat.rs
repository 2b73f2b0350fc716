//! One-to-one chat through the real server and a real WebSocket client, on every backend.

mod common;

use common::*;
use tern_protocol::frames::Position;
use tern_protocol::{ErrorCode, ServerFrame};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_both_ways_and_receipts_reach_the_sender() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let mut a = server.connect(&alice, "phone").await;
        let mut b = server.connect(&bob, "laptop").await;
        read_replay(&mut a).await;
        read_replay(&mut b).await;

        a.send_text(bob.id, "a1", "hi bob").await?;
        let ack = answer_to(&mut a, "a1").await;
        let ServerFrame::Ack { seq, conversation_id, duplicate, .. } = ack else { panic!("{ack:?}") };
        assert!(!duplicate);
        let got = next_message(&mut b).await;
        assert_eq!((text_of(&got), got.seq, got.sender_id), ("hi bob", seq, alice.id));

        b.send_text(alice.id, "b1", "hi alice").await?;
        let reply = next_message(&mut a).await;
        assert_eq!(text_of(&reply), "hi alice");
        assert!(reply.seq > seq, "seqs increase within the conversation");
        assert_eq!(reply.prev_seq, seq, "each message links to the one before");

        b.receipt(conversation_id, reply.seq).await?;
        let (delivered, _) = a.until(WAIT, |f| matches!(f, ServerFrame::Delivered { .. })).await?;
        assert_eq!(
            delivered,
            ServerFrame::Delivered { conversation_id, user_id: bob.id, seq: reply.seq }
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_an_offline_user_arrives_on_their_next_connect_once() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let mut a = server.connect(&alice, "phone").await;
        read_replay(&mut a).await;
        for i in 0..3 {
            a.send_text(bob.id, &format!("m{i}"), &format!("while you were away {i}")).await?;
            answer_to(&mut a, &format!("m{i}")).await;
        }

        let mut b = server.connect(&bob, "laptop").await;
        let missed = read_replay(&mut b).await;
        let texts: Vec<&str> = missed.iter().map(text_of).collect();
        assert_eq!(texts, ["while you were away 0", "while you were away 1", "while you were away 2"]);
        assert_no_message(&mut b).await;

        // Signed for: the next connect of the same device replays nothing.
        let last = missed.last().expect("three messages");
        b.receipt(last.conversation_id, last.seq).await?;
        b.send(&tern_protocol::ClientFrame::Ping { nonce: Some("sync".into()) }).await?;
        b.until(WAIT, |f| matches!(f, ServerFrame::Pong { .. })).await?;
        b.close().await?;
        let mut again = server.connect(&bob, "laptop").await;
        assert!(read_replay(&mut again).await.is_empty(), "a signed-for message is not replayed");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_send_returns_the_first_ack_and_stores_nothing() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let mut a = server.connect(&alice, "phone").await;
        let mut b = server.connect(&bob, "laptop").await;
        read_replay(&mut a).await;
        read_replay(&mut b).await;

        a.send_text(bob.id, "same-id", "once").await?;
        let first = answer_to(&mut a, "same-id").await;
        a.send_text(bob.id, "same-id", "once").await?;
        let second = answer_to(&mut a, "same-id").await;
        match (&first, &second) {
            (
                ServerFrame::Ack { message_id: m1, seq: s1, duplicate: false, .. },
                ServerFrame::Ack { message_id: m2, seq: s2, duplicate: true, .. },
            ) => assert_eq!((m1, s1), (m2, s2)),
            other => panic!("expected first and duplicate ack, got {other:?}"),
        }
        // A retry from a reconnected connection is recognised too.
        a.close().await?;
        let mut a2 = server.connect(&alice, "phone").await;
        read_replay(&mut a2).await;
        a2.send_text(bob.id, "same-id", "once").await?;
        assert!(matches!(answer_to(&mut a2, "same-id").await, ServerFrame::Ack { duplicate: true, .. }));

        next_message(&mut b).await;
        assert_no_message(&mut b).await;
        let ServerFrame::Ack { conversation_id, .. } = first else { unreachable!() };
        let page = server.http.history(&bob.token, conversation_id, "limit=50").await?;
        assert_eq!(page.messages.len(), 1, "the retry stored nothing");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loses_no_acked_message_and_seqs_keep_increasing() -> TestResult {
    for backend in tern_testkit::backends() {
        let mut server = TestServer::start(backend).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let mut acked = Vec::new();
        for round in 0..3 {
            let mut a = server.connect(&alice, "phone").await;
            read_replay(&mut a).await;
            for i in 0..5 {
                let id = format!("r{round}-{i}");
                a.send_text(bob.id, &id, &id).await?;
                match answer_to(&mut a, &id).await {
                    ServerFrame::Ack { seq, conversation_id, .. } => acked.push((conversation_id, seq, id)),
                    other => panic!("{other:?}"),
                }
            }
            drop(a);
            server.restart().await;
        }
        let seqs: Vec<u64> = acked.iter().map(|(_, s, _)| *s).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs increase across restarts: {seqs:?}");

        let bob = tern_client_login(&server, "bob").await;
        let page = server.http.history(&bob, acked[0].0, "after=0&limit=100").await?;
        let stored: Vec<(u64, &str)> = page.messages.iter().map(|m| (m.seq, text_of(m))).collect();
        let expected: Vec<(u64, &str)> = acked.iter().map(|(_, s, t)| (*s, t.as_str())).collect();
        assert_eq!(stored, expected, "every acked message is stored, in order");
        for pair in page.messages.windows(2) {
            assert_eq!(pair[1].prev_seq, pair[0].seq, "no false gap after a restart");
        }
    }
    Ok(())
}

async fn tern_client_login(server: &TestServer, name: &str) -> String {
    server.http.login(name, "correct horse battery").await.expect("login").token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_can_neither_send_into_nor_read_a_conversation() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob, eve) = (server.user("alice").await, server.user("bob").await, server.user("eve").await);
        let mut a = server.connect(&alice, "phone").await;
        read_replay(&mut a).await;
        a.send_text(bob.id, "a1", "private").await?;
        let ServerFrame::Ack { conversation_id, .. } = answer_to(&mut a, "a1").await else { panic!() };

        let mut e = server.connect(&eve, "laptop").await;
        read_replay(&mut e).await;
        let intrude = format!(
            r#"{{"type":"send","client_msg_id":"e1","conversation_id":"{conversation_id}","kind":"text","text":"let me in"}}"#
        );
        e.send_raw(tokio_tungstenite::tungstenite::Message::text(intrude)).await?;
        match answer_to(&mut e, "e1").await {
            ServerFrame::Error(err) => assert_eq!(err.code, ErrorCode::NotMember),
            other => panic!("an outsider's send was accepted: {other:?}"),
        }
        let read = server.http.history(&eve.token, conversation_id, "limit=10").await;
        assert_eq!(read.err().and_then(|e| e.code()), Some(ErrorCode::NotMember));

        // A frame that claims to come from bob is stored as alice's.
        let forged = format!(
            r#"{{"type":"send","client_msg_id":"a2","to_user":"{}","sender_id":"{}","kind":"text","text":"forged?"}}"#,
            bob.id, bob.id
        );
        a.send_raw(tokio_tungstenite::tungstenite::Message::text(forged)).await?;
        answer_to(&mut a, "a2").await;
        let page = server.http.history(&bob.token, conversation_id, "limit=10").await?;
        let forged = page.messages.iter().find(|m| m.client_msg_id == "a2").expect("stored");
        assert_eq!(forged.sender_id, alice.id, "the sender is the authenticated user");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_typed_errors_and_the_connection_keeps_working() -> TestResult {
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start(tern_db::Backend::Sqlite).await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let mut a = server.connect(&alice, "phone").await;
    read_replay(&mut a).await;
    let oversized = format!(
        r#"{{"type":"send","client_msg_id":"big","to_user":"{}","kind":"text","text":"{}"}}"#,
        bob.id,
        "x".repeat(server.config.websocket.max_frame_bytes + 1)
    );
    let cases: Vec<(Message, ErrorCode)> = vec![
        (Message::text("this is not json"), ErrorCode::BadFrame),
        (Message::text(r#"{"type":"teleport"}"#), ErrorCode::UnknownType),
        (Message::text(r#"{"type":"send","client_msg_id":"x"}"#), ErrorCode::InvalidField),
        (Message::text(r#"{"no_type":1}"#), ErrorCode::InvalidField),
        (Message::binary(vec![0xc1, 0xff, 0x00]), ErrorCode::BadFrame),
        (Message::text(oversized), ErrorCode::FrameTooLarge),
        (
            Message::text(format!(r#"{{"type":"send","client_msg_id":"e","to_user":"{}","kind":"text","text":"  "}}"#, bob.id)),
            ErrorCode::InvalidRequest,
        ),
        (
            Message::text(r#"{"type":"send","client_msg_id":"n","to_user":"999999","kind":"text","text":"hi"}"#),
            ErrorCode::NotFound,
        ),
    ];
    for (frame, code) in cases {
        a.send_raw(frame).await?;
        let (got, _) = a.until(WAIT, |f| matches!(f, ServerFrame::Error(_))).await?;
        match got {
            ServerFrame::Error(err) => assert_eq!(err.code, code, "{}", err.message),
            other => panic!("{other:?}"),
        }
    }
    a.send_text(bob.id, "ok", "still works").await?;
    assert!(matches!(answer_to(&mut a, "ok").await, ServerFrame::Ack { .. }));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_transport_limit_closes_with_1009() -> TestResult {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let server = TestServer::start(tern_db::Backend::Sqlite).await;
    let alice = server.user("alice").await;
    let mut a = server.connect(&alice, "phone").await;
    read_replay(&mut a).await;
    let huge = "y".repeat(server.config.websocket.max_message_bytes + 10);
    a.send_raw(Message::text(huge)).await?;
    match a.next_within(WAIT).await {
        Err(tern_client::WsError::Closed { code, .. }) => assert_eq!(code, Some(CloseCode::Size)),
        other => panic!("expected close 1009, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_during_sends_gets_exactly_what_it_missed() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let mut b = server.connect(&bob, "laptop").await;
        read_replay(&mut b).await;
        let mut a = server.connect(&alice, "phone").await;
        read_replay(&mut a).await;
        a.send_text(bob.id, "first", "first").await?;
        let seen = next_message(&mut b).await;
        b.close().await?;

        // Alice keeps sending while Bob reconnects from where he left off.
        let total = 40;
        let sender = tokio::spawn(async move {
            for i in 0..total {
                let id = format!("s{i}");
                a.send_text(bob.id, &id, &id).await.expect("send");
                answer_to(&mut a, &id).await;
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let position = Position { conversation_id: seen.conversation_id, seq: seen.seq };
        let mut b = server.connect_at(&bob, "laptop", vec![position]).await;
        let mut got: Vec<String> = read_replay(&mut b).await.iter().map(|m| text_of(m).to_owned()).collect();
        sender.await?;
        while got.len() < total {
            got.push(text_of(&next_message(&mut b).await).to_owned());
        }
        assert_no_message(&mut b).await;
        let expected: Vec<String> = (0..total).map(|i| format!("s{i}")).collect();
        assert_eq!(got, expected, "each missed message exactly once, in order");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_backwards_and_forwards() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let mut a = server.connect(&alice, "phone").await;
        read_replay(&mut a).await;
        let mut conversation = None;
        for i in 0..7 {
            a.send_text(bob.id, &format!("h{i}"), &format!("h{i}")).await?;
            if let ServerFrame::Ack { conversation_id, .. } = answer_to(&mut a, &format!("h{i}")).await {
                conversation = Some(conversation_id);
            }
        }
        let conversation = conversation.expect("acked");
        let newest = server.http.history(&bob.token, conversation, "limit=3").await?;
        let texts = |p: &tern_protocol::http::HistoryPage| p.messages.iter().map(|m| text_of(m).to_owned()).collect::<Vec<_>>();
        assert_eq!(texts(&newest), ["h4", "h5", "h6"]);
        assert!(newest.has_more);
        let older = server.http.history(&bob.token, conversation, &format!("before={}&limit=3", newest.messages[0].seq)).await?;
        assert_eq!(texts(&older), ["h1", "h2", "h3"]);
        let oldest = server.http.history(&bob.token, conversation, &format!("before={}&limit=3", older.messages[0].seq)).await?;
        assert_eq!(texts(&oldest), ["h0"]);
        assert!(!oldest.has_more);
        let forward = server.http.history(&bob.token, conversation, &format!("after={}&limit=4", oldest.messages[0].seq)).await?;
        assert_eq!(texts(&forward), ["h1", "h2", "h3", "h4"]);
        let bad = server.http.history(&bob.token, conversation, "limit=100000").await;
        assert_eq!(bad.err().and_then(|e| e.code()), Some(ErrorCode::InvalidRequest));
    }
    Ok(())
}
