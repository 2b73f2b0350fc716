//! Groups: fan-out to every member, stored once; leaving, removal and joining.

mod common;

use common::*;
use serde_json::json;
use tern_protocol::frames::{Content, SystemEvent};
use tern_protocol::{ConversationId, ErrorCode, ServerFrame};

async fn create_group(server: &TestServer, owner: &User, members: &[&User]) -> ConversationId {
    let ids: Vec<String> = members.iter().map(|m| m.id.to_string()).collect();
    let body = json!({"title": "team", "members": ids});
    let created: serde_json::Value =
        server.http.json("POST", "/api/v1/groups", Some(&owner.token), Some(&body)).await.expect("group created");
    let id = created["conversation_id"].as_str().expect("id").parse().expect("number");
    ConversationId(id)
}

fn is_event(frame: &ServerFrame, wanted: fn(&SystemEvent) -> bool) -> bool {
    matches!(frame, ServerFrame::Message(m) if matches!(&m.content, Content::System { event } if wanted(event)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_message_reaches_every_member_and_is_stored_once() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob, carol) = (server.user("alice").await, server.user("bob").await, server.user("carol").await);
        let mut a = server.connect(&alice, "a").await;
        let mut b = server.connect(&bob, "b").await;
        let mut b2 = server.connect(&bob, "b2").await;
        let mut c = server.connect(&carol, "c").await;
        for ws in [&mut a, &mut b, &mut b2, &mut c] {
            read_replay(ws).await;
        }
        let group = create_group(&server, &alice, &[&bob, &carol]).await;
        for ws in [&mut a, &mut b, &mut b2, &mut c] {
            ws.until(WAIT, |f| is_event(f, |e| matches!(e, SystemEvent::GroupCreated { .. }))).await?;
        }

        let send = tern_protocol::ClientFrame::Send {
            client_msg_id: "g1".into(),
            to_user: None,
            conversation_id: Some(group),
            content: Content::Text { text: "hello team".into() },
        };
        a.send(&send).await?;
        assert!(matches!(answer_to(&mut a, "g1").await, ServerFrame::Ack { .. }));
        for ws in [&mut b, &mut b2, &mut c] {
            assert_eq!(text_of(&next_message(ws).await), "hello team");
        }
        let page = server.http.history(&carol.token, group, "after=0&limit=50").await?;
        let texts = page.messages.iter().filter(|m| matches!(m.content, Content::Text { .. })).count();
        assert_eq!(texts, 1, "stored once for all members");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_leaves_stops_receiving_and_cannot_read_what_came_after() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob, carol) = (server.user("alice").await, server.user("bob").await, server.user("carol").await);
        let group = create_group(&server, &alice, &[&bob, &carol]).await;
        let mut a = server.connect(&alice, "a").await;
        let mut c = server.connect(&carol, "c").await;
        read_replay(&mut a).await;
        read_replay(&mut c).await;
        let send = |id: &str, text: &str| tern_protocol::ClientFrame::Send {
            client_msg_id: id.into(),
            to_user: None,
            conversation_id: Some(group),
            content: Content::Text { text: text.into() },
        };
        a.send(&send("before", "before you left")).await?;
        answer_to(&mut a, "before").await;
        assert_eq!(text_of(&next_message(&mut c).await), "before you left");

        let path = format!("/api/v1/groups/{group}/members/{}", carol.id);
        let left: serde_json::Value = server.http.json::<(), _>("DELETE", &path, Some(&carol.token), None).await?;
        assert!(left["seq"].as_u64().is_some());
        c.until(WAIT, |f| is_event(f, |e| matches!(e, SystemEvent::MemberLeft { .. }))).await?;

        a.send(&send("after", "after you left")).await?;
        answer_to(&mut a, "after").await;
        assert_no_message(&mut c).await;
        let page = server.http.history(&carol.token, group, "after=0&limit=50").await?;
        assert!(page.messages.iter().all(|m| !matches!(&m.content, Content::Text { text } if text == "after you left")));
        assert!(page.messages.iter().any(|m| matches!(&m.content, Content::Text { text } if text == "before you left")));

        c.send(&send("c1", "can I still talk?")).await?;
        match answer_to(&mut c, "c1").await {
            ServerFrame::Error(err) => assert_eq!(err.code, ErrorCode::NotMember),
            other => panic!("a former member sent: {other:?}"),
        }
        // Bob is not the creator: he cannot remove Alice.
        let path = format!("/api/v1/groups/{group}/members/{}", alice.id);
        let refused = server.http.json::<(), serde_json::Value>("DELETE", &path, Some(&bob.token), None).await;
        assert_eq!(refused.err().and_then(|e| e.code()), Some(ErrorCode::Forbidden));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_sees_the_group_from_their_arrival_on() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob, dave) = (server.user("alice").await, server.user("bob").await, server.user("dave").await);
        let group = create_group(&server, &alice, &[&bob]).await;
        let mut a = server.connect(&alice, "a").await;
        read_replay(&mut a).await;
        let send = |id: &str| tern_protocol::ClientFrame::Send {
            client_msg_id: id.into(),
            to_user: None,
            conversation_id: Some(group),
            content: Content::Text { text: id.into() },
        };
        a.send(&send("old")).await?;
        answer_to(&mut a, "old").await;

        let mut d = server.connect(&dave, "d").await;
        read_replay(&mut d).await;
        let body = json!({"user_id": dave.id.to_string()});
        let path = format!("/api/v1/groups/{group}/members");
        server.http.json::<_, serde_json::Value>("POST", &path, Some(&bob.token), Some(&body)).await?;
        d.until(WAIT, |f| is_event(f, |e| matches!(e, SystemEvent::MemberJoined { .. }))).await?;
        a.send(&send("new")).await?;
        answer_to(&mut a, "new").await;
        assert_eq!(text_of(&next_message(&mut d).await), "new");

        let page = server.http.history(&dave.token, group, "after=0&limit=50").await?;
        let texts: Vec<&str> = page
            .messages
            .iter()
            .filter_map(|m| match &m.content {
                Content::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(texts, ["new"], "history before the join stays hidden");
        let again = server.http.json::<_, serde_json::Value>("POST", &path, Some(&bob.token), Some(&body)).await;
        assert_eq!(again.err().and_then(|e| e.code()), Some(ErrorCode::Conflict));
    }
    Ok(())
}
