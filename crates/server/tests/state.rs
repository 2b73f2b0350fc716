//! Recall, read state and unread counts, typing, custom messages and the conversation list.

mod common;

use common::*;
use tern_protocol::frames::{Content, SystemEvent};
use tern_protocol::http::ConversationPage;
use tern_protocol::{ClientFrame, ConversationId, ErrorCode, ServerFrame};

async fn send_ok(ws: &mut tern_client::WsClient, to: tern_protocol::UserId, id: &str) -> (ConversationId, u64) {
    ws.send_text(to, id, id).await.expect("sent");
    match answer_to(ws, id).await {
        ServerFrame::Ack { conversation_id, seq, .. } => (conversation_id, seq),
        other => panic!("{other:?}"),
    }
}

async fn list(server: &TestServer, user: &User, query: &str) -> ConversationPage {
    let path = format!("/api/v1/conversations?{query}");
    server.http.json::<(), _>("GET", &path, Some(&user.token), None).await.expect("conversation list")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recall_reaches_every_device_and_history_shows_it_recalled() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let mut a = server.connect(&alice, "a").await;
        let mut a2 = server.connect(&alice, "a2").await;
        let mut b = server.connect(&bob, "b").await;
        for ws in [&mut a, &mut a2, &mut b] {
            read_replay(ws).await;
        }
        let (conversation, seq) = send_ok(&mut a, bob.id, "oops").await;
        next_message(&mut b).await;
        next_message(&mut a2).await;

        // Bob cannot recall Alice's message.
        b.send(&ClientFrame::Recall { conversation_id: conversation, seq }).await?;
        let (err, _) = b.until(WAIT, |f| matches!(f, ServerFrame::Error(_))).await?;
        assert!(matches!(err, ServerFrame::Error(e) if e.code == ErrorCode::Forbidden));

        a.send(&ClientFrame::Recall { conversation_id: conversation, seq }).await?;
        for ws in [&mut a, &mut a2, &mut b] {
            let notice = next_message(ws).await;
            assert_eq!(notice.content, Content::System { event: SystemEvent::MessageRecalled { seq, by: alice.id } });
        }
        let page = server.http.history(&bob.token, conversation, "after=0&limit=10").await?;
        let recalled = page.messages.iter().find(|m| m.seq == seq).expect("still in history");
        assert_eq!(recalled.content, Content::Recalled {});
        assert!(recalled.recalled_at.is_some());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recall_after_the_window_is_refused() -> TestResult {
    let server = TestServer::start_with(tern_db::Backend::Sqlite, |c| c.messages.recall_window_secs = 0).await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let mut a = server.connect(&alice, "a").await;
    read_replay(&mut a).await;
    let (conversation, seq) = send_ok(&mut a, bob.id, "too late").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let path = format!("/api/v1/conversations/{conversation}/messages/{seq}");
    let refused = server.http.json::<(), serde_json::Value>("DELETE", &path, Some(&alice.token), None).await;
    assert_eq!(refused.err().and_then(|e| e.code()), Some(ErrorCode::Forbidden));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_follow_read_positions_on_every_device() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let mut a = server.connect(&alice, "a").await;
        read_replay(&mut a).await;
        let mut seqs = Vec::new();
        for i in 0..3 {
            seqs.push(send_ok(&mut a, bob.id, &format!("u{i}")).await);
        }
        let conversation = seqs[0].0;
        let bob_view = list(&server, &bob, "limit=10").await;
        assert_eq!(bob_view.conversations[0].unread, 3);
        assert_eq!(list(&server, &alice, "limit=10").await.conversations[0].unread, 0, "own messages do not count");

        let mut b1 = server.connect(&bob, "phone").await;
        let mut b2 = server.connect(&bob, "laptop").await;
        read_replay(&mut b1).await;
        read_replay(&mut b2).await;
        b1.send(&ClientFrame::Read { conversation_id: conversation, seq: seqs[1].1 }).await?;
        let expected = ServerFrame::Read { conversation_id: conversation, user_id: bob.id, seq: seqs[1].1 };
        let (to_alice, _) = a.until(WAIT, |f| matches!(f, ServerFrame::Read { .. })).await?;
        assert_eq!(to_alice, expected, "the sender gets a read receipt");
        let (to_other_device, _) = b2.until(WAIT, |f| matches!(f, ServerFrame::Read { .. })).await?;
        assert_eq!(to_other_device, expected, "the reader's other devices converge");
        assert_eq!(list(&server, &bob, "limit=10").await.conversations[0].unread, 1);

        // A lower read position never moves it back; reconnects change nothing.
        b2.send(&ClientFrame::Read { conversation_id: conversation, seq: seqs[0].1 }).await?;
        b2.close().await?;
        let mut b3 = server.connect(&bob, "laptop").await;
        read_replay(&mut b3).await;
        let summary = &list(&server, &bob, "limit=10").await.conversations[0];
        assert_eq!((summary.unread, summary.read_seq), (1, seqs[1].1));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conversation_list_is_ordered_by_activity_with_previews_and_pages() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob, carol) = (server.user("alice").await, server.user("bob").await, server.user("carol").await);
        let mut a = server.connect(&alice, "a").await;
        read_replay(&mut a).await;
        send_ok(&mut a, bob.id, "to bob").await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        send_ok(&mut a, carol.id, "to carol").await;

        let first = list(&server, &alice, "limit=1").await;
        let top = &first.conversations[0];
        assert_eq!(top.peer.as_ref().map(|p| p.username.as_str()), Some("carol"));
        assert_eq!(top.last_message.as_ref().map(text_of), Some("to carol"));
        let cursor = first.next_before.clone().expect("a second page");
        let second = list(&server, &alice, &format!("limit=1&before={cursor}")).await;
        assert_eq!(second.conversations[0].peer.as_ref().map(|p| p.username.as_str()), Some("bob"));
        assert!(second.next_before.is_none());

        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        send_ok(&mut a, bob.id, "bob again").await;
        let reordered = list(&server, &alice, "limit=10").await;
        let order: Vec<&str> = reordered.conversations.iter().filter_map(|c| c.peer.as_ref()).map(|p| p.username.as_str()).collect();
        assert_eq!(order, ["bob", "carol"]);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_relayed_to_members_only() -> TestResult {
    let server = TestServer::start(tern_db::Backend::Sqlite).await;
    let (alice, bob, eve) = (server.user("alice").await, server.user("bob").await, server.user("eve").await);
    let mut a = server.connect(&alice, "a").await;
    let mut b = server.connect(&bob, "b").await;
    let mut e = server.connect(&eve, "e").await;
    for ws in [&mut a, &mut b, &mut e] {
        read_replay(ws).await;
    }
    let (conversation, _) = send_ok(&mut a, bob.id, "hi").await;
    a.send(&ClientFrame::Typing { conversation_id: conversation }).await?;
    let (typing, _) = b.until(WAIT, |f| matches!(f, ServerFrame::Typing { .. })).await?;
    assert_eq!(typing, ServerFrame::Typing { conversation_id: conversation, user_id: alice.id });
    e.send(&ClientFrame::Typing { conversation_id: conversation }).await?;
    let (err, _) = e.until(WAIT, |f| matches!(f, ServerFrame::Error(_))).await?;
    assert!(matches!(err, ServerFrame::Error(x) if x.code == ErrorCode::NotMember));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_message_is_stored_and_delivered_unchanged() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let mut a = server.connect(&alice, "a").await;
        let mut b = server.connect(&bob, "b").await;
        read_replay(&mut a).await;
        read_replay(&mut b).await;
        let payload = r#"{"lat":52.52,"lon":13.40,"note":"ünïcödé \"quoted\""}"#.to_owned();
        let content = Content::Custom { custom_type: "app.location/v1".into(), payload: payload.clone() };
        a.send(&ClientFrame::Send { client_msg_id: "c1".into(), to_user: Some(bob.id), conversation_id: None, content: content.clone() }).await?;
        let ServerFrame::Ack { conversation_id, .. } = answer_to(&mut a, "c1").await else { panic!("no ack") };
        assert_eq!(next_message(&mut b).await.content, content);
        let page = server.http.history(&bob.token, conversation_id, "limit=5").await?;
        assert_eq!(page.messages[0].content, content);

        let bad = Content::Custom { custom_type: "has spaces".into(), payload: "x".into() };
        a.send(&ClientFrame::Send { client_msg_id: "c2".into(), to_user: Some(bob.id), conversation_id: None, content: bad }).await?;
        assert!(matches!(answer_to(&mut a, "c2").await, ServerFrame::Error(e) if e.code == ErrorCode::InvalidRequest));
        let forged = Content::System { event: SystemEvent::MemberLeft { user_id: bob.id, by: bob.id } };
        a.send(&ClientFrame::Send { client_msg_id: "c3".into(), to_user: Some(bob.id), conversation_id: None, content: forged }).await?;
        assert!(matches!(answer_to(&mut a, "c3").await, ServerFrame::Error(e) if e.code == ErrorCode::InvalidRequest));
    }
    Ok(())
}
