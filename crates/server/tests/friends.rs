//! Friends: requests, accept, reject, remove, block, and the incremental pull.

mod common;

use common::*;
use serde_json::json;
use tern_protocol::frames::{FriendState, SystemEvent};
use tern_protocol::{ClientFrame, ErrorCode, ServerFrame};

async fn post(server: &TestServer, user: &User, path: &str, body: Option<serde_json::Value>) -> Result<serde_json::Value, tern_client::HttpError> {
    server.http.json("POST", path, Some(&user.token), body.as_ref()).await
}

async fn pull(ws: &mut tern_client::WsClient, since: u64) -> (u64, Vec<tern_protocol::frames::FriendEntry>) {
    ws.send(&ClientFrame::FriendPull { since_version: since }).await.expect("pull sent");
    let (frame, _) = ws.until(WAIT, |f| matches!(f, ServerFrame::Friends { .. })).await.expect("friends");
    match frame {
        ServerFrame::Friends { version, entries } => (version, entries),
        _ => unreachable!(),
    }
}

fn notice(frame: &ServerFrame) -> Option<&SystemEvent> {
    match frame {
        ServerFrame::Notice { event } => Some(event),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_friend_request_accepted_shows_on_both_lists_incrementally() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let mut a = server.connect(&alice, "a").await;
        let mut b = server.connect(&bob, "b").await;
        read_replay(&mut a).await;
        read_replay(&mut b).await;

        post(&server, &alice, "/api/v1/friends/requests", Some(json!({"user_id": bob.id.to_string()}))).await?;
        let (frame, _) = b.until(WAIT, |f| notice(f).is_some()).await?;
        assert_eq!(notice(&frame), Some(&SystemEvent::FriendRequested { user_id: alice.id }));
        let (v1, entries) = pull(&mut b, 0).await;
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].user_id, entries[0].state), (alice.id, FriendState::Incoming));

        post(&server, &bob, &format!("/api/v1/friends/requests/{}/accept", alice.id), None).await?;
        // Alice's own devices heard of her request first; then comes Bob's answer.
        let (frame, skipped) = a.until(WAIT, |f| matches!(notice(f), Some(SystemEvent::FriendAccepted { .. }))).await?;
        assert!(skipped.iter().any(|f| notice(f) == Some(&SystemEvent::FriendRequested { user_id: bob.id })));
        assert_eq!(notice(&frame), Some(&SystemEvent::FriendAccepted { user_id: bob.id }));
        let (v2, changed) = pull(&mut b, v1).await;
        assert!(v2 > v1);
        assert_eq!(changed.len(), 1, "only what changed since v1");
        assert_eq!(changed[0].state, FriendState::Friend);
        let (_, alice_list) = pull(&mut a, 0).await;
        assert_eq!(alice_list.iter().map(|e| (e.user_id, e.state)).collect::<Vec<_>>(), [(bob.id, FriendState::Friend)]);
        let (_, nothing) = pull(&mut b, v2).await;
        assert!(nothing.is_empty());

        let twice = post(&server, &alice, "/api/v1/friends/requests", Some(json!({"user_id": bob.id.to_string()}))).await;
        assert_eq!(twice.err().and_then(|e| e.code()), Some(ErrorCode::Conflict));

        server.http.json::<(), serde_json::Value>("DELETE", &format!("/api/v1/friends/{}", bob.id), Some(&alice.token), None).await?;
        let (frame, _) = b.until(WAIT, |f| matches!(notice(f), Some(SystemEvent::FriendRemoved { .. }))).await?;
        assert_eq!(notice(&frame), Some(&SystemEvent::FriendRemoved { user_id: alice.id }));
        let (_, after) = pull(&mut b, v2).await;
        assert_eq!(after[0].state, FriendState::None);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_request_leaves_no_relation() -> TestResult {
    let server = TestServer::start(tern_db::Backend::Sqlite).await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    post(&server, &alice, "/api/v1/friends/requests", Some(json!({"user_id": bob.id.to_string()}))).await?;
    let mut a = server.connect(&alice, "a").await;
    read_replay(&mut a).await;
    post(&server, &bob, &format!("/api/v1/friends/requests/{}/reject", alice.id), None).await?;
    let (frame, _) = a.until(WAIT, |f| notice(f).is_some()).await?;
    assert_eq!(notice(&frame), Some(&SystemEvent::FriendRejected { user_id: bob.id }));
    let (_, entries) = pull(&mut a, 0).await;
    assert_eq!(entries[0].state, FriendState::None);
    let again = post(&server, &bob, &format!("/api/v1/friends/requests/{}/accept", alice.id), None).await;
    assert_eq!(again.err().and_then(|e| e.code()), Some(ErrorCode::NotFound));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_user_can_neither_message_nor_befriend_the_blocker() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, carol) = (server.user("alice").await, server.user("carol").await);
        let mut a = server.connect(&alice, "a").await;
        read_replay(&mut a).await;
        a.send_text(carol.id, "before", "hi carol").await?;
        assert!(matches!(answer_to(&mut a, "before").await, ServerFrame::Ack { .. }));

        server.http.json::<(), serde_json::Value>("PUT", &format!("/api/v1/blocks/{}", alice.id), Some(&carol.token), None).await?;
        a.send_text(carol.id, "after", "hi again").await?;
        match answer_to(&mut a, "after").await {
            ServerFrame::Error(err) => assert_eq!(err.code, ErrorCode::Forbidden),
            other => panic!("a blocked user's message went through: {other:?}"),
        }
        let request = post(&server, &alice, "/api/v1/friends/requests", Some(json!({"user_id": carol.id.to_string()}))).await;
        assert_eq!(request.err().and_then(|e| e.code()), Some(ErrorCode::Forbidden));

        server.http.json::<(), serde_json::Value>("DELETE", &format!("/api/v1/blocks/{}", alice.id), Some(&carol.token), None).await?;
        a.send_text(carol.id, "unblocked", "friends again?").await?;
        assert!(matches!(answer_to(&mut a, "unblocked").await, ServerFrame::Ack { .. }));
    }
    Ok(())
}
