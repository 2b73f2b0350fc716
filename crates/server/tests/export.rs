//! History export through the real server: JSON lines and readable text, streamed a page at
//! a time, limited to what the caller's membership shows, on every backend.

mod common;

use bytes::Bytes;
use common::*;
use serde_json::json;
use tern_client::{FilePart, FormPart};
use tern_protocol::frames::{Content, MessageView, SystemEvent};
use tern_protocol::{ConversationId, ErrorCode};

/// Small pages, so an export of a few messages spans several of them.
const PAGE: usize = 3;

#[derive(Debug, serde::Deserialize)]
struct Sent {
    conversation_id: ConversationId,
    seq: u64,
}

async fn send_text(
    server: &TestServer,
    user: &User,
    to: serde_json::Value,
    id: &str,
    text: &str,
) -> Sent {
    let mut body = json!({"client_msg_id": id, "kind": "text", "text": text});
    body.as_object_mut()
        .expect("an object")
        .extend(to.as_object().expect("an object").clone());
    server
        .http
        .json("POST", "/api/v1/messages", Some(&user.token), Some(&body))
        .await
        .expect("sent")
}

fn lines_of(body: &[u8]) -> Vec<MessageView> {
    std::str::from_utf8(body)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is a message"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_exports_as_json_lines_and_as_readable_text() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start_with(backend, |c| c.messages.history_max_limit = PAGE).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let to_bob = json!({"to_user": bob.id.to_string()});
        let first = send_text(&server, &alice, to_bob.clone(), "t0", "hello bob").await;
        let conversation = first.conversation_id;
        send_text(
            &server,
            &bob,
            json!({"to_user": alice.id.to_string()}),
            "t1",
            "hi alice",
        )
        .await;
        send_text(&server, &alice, to_bob.clone(), "t2", "line one\nline two").await;
        let regret = send_text(&server, &alice, to_bob.clone(), "t3", "something I regret").await;
        let notes = FilePart::bytes("notes.txt", "text/plain", Bytes::from(vec![b'n'; 1536]));
        let form = vec![
            FormPart::text("client_msg_id", "f1"),
            FormPart::text("conversation_id", conversation),
            FormPart::text("kind", "file"),
            FormPart::File(notes),
        ];
        assert_eq!(server.http.upload(&alice.token, form).await?.status, 200);
        let recall = format!(
            "/api/v1/conversations/{conversation}/messages/{}",
            regret.seq
        );
        assert_eq!(
            server
                .http
                .raw("DELETE", &recall, Some(&alice.token), None)
                .await?
                .status,
            204
        );
        send_text(
            &server,
            &bob,
            json!({"conversation_id": conversation.to_string()}),
            "t4",
            "bye",
        )
        .await;

        let path = format!("/api/v1/conversations/{conversation}/export");
        let jsonl = server
            .http
            .get(&format!("{path}?format=jsonl"), Some(&bob.token), &[])
            .await?;
        assert_eq!(jsonl.status, 200);
        assert_eq!(jsonl.header("content-type"), Some("application/x-ndjson"));
        let disposition = jsonl.header("content-disposition").unwrap_or_default();
        assert!(disposition.starts_with("attachment;"), "{disposition}");
        let messages = lines_of(&jsonl.body);
        assert!(
            messages.len() > 2 * PAGE,
            "spans several pages: {}",
            messages.len()
        );
        assert!(
            messages
                .windows(2)
                .all(|w| w[0].seq < w[1].seq && w[1].prev_seq == w[0].seq)
        );
        let kinds: Vec<&str> = messages
            .iter()
            .map(|m| match &m.content {
                Content::Text { .. } => "text",
                Content::File { .. } => "file",
                Content::Recalled {} => "recalled",
                Content::System {
                    event: SystemEvent::MessageRecalled { .. },
                } => "recall notice",
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "text",
                "text",
                "text",
                "recalled",
                "file",
                "recall notice",
                "text"
            ]
        );
        assert_eq!(messages[0].client_msg_id, "t0");

        let text = server
            .http
            .get(&format!("{path}?format=text"), Some(&alice.token), &[])
            .await?;
        assert_eq!(text.status, 200);
        assert_eq!(
            text.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        let text = String::from_utf8(text.body.to_vec())?;
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with(&format!(
                "Conversation {conversation}, exported by alice at "
            )),
            "{text}"
        );
        for expected in [
            "] alice: hello bob",
            "] bob: hi alice",
            "] alice: line one",
            "] alice: (message recalled)",
            "] alice: [file notes.txt, 1.5 KiB, text/plain]",
            "] * alice recalled a message",
            "] bob: bye",
        ] {
            assert!(
                lines.iter().any(|l| l.ends_with(expected)),
                "missing {expected:?} in\n{text}"
            );
        }
        assert!(
            lines.contains(&"    line two"),
            "continuation lines are indented:\n{text}"
        );
        assert!(
            !text.contains("something I regret"),
            "a recalled text is not exported"
        );
        let stamp = lines
            .iter()
            .find(|l| l.ends_with("] bob: bye"))
            .copied()
            .unwrap_or_default();
        assert!(
            stamp.starts_with('[') && stamp.contains(" UTC] "),
            "{stamp}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_cannot_export_and_a_member_who_left_exports_up_to_leaving() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start_with(backend, |c| c.messages.history_max_limit = PAGE).await;
        let (alice, bob, carol) = (
            server.user("alice").await,
            server.user("bob").await,
            server.user("carol").await,
        );
        let dave = server.user("dave").await;
        let group = json!({"title": "team", "members": [bob.id.to_string(), carol.id.to_string()]});
        let created: serde_json::Value = server
            .http
            .json("POST", "/api/v1/groups", Some(&alice.token), Some(&group))
            .await?;
        let conversation = created["conversation_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let into_group = json!({"conversation_id": conversation});
        for i in 0..4 {
            send_text(
                &server,
                &alice,
                into_group.clone(),
                &format!("before-{i}"),
                &format!("before {i}"),
            )
            .await;
        }
        let leave = format!("/api/v1/groups/{conversation}/members/{}", carol.id);
        assert_eq!(
            server
                .http
                .raw("DELETE", &leave, Some(&carol.token), None)
                .await?
                .status,
            200
        );
        send_text(
            &server,
            &alice,
            into_group.clone(),
            "after",
            "after carol left",
        )
        .await;

        let path = format!("/api/v1/conversations/{conversation}/export");
        let carols = server.http.get(&path, Some(&carol.token), &[]).await?;
        assert_eq!(carols.status, 200);
        let seen = lines_of(&carols.body);
        let last = seen.last().expect("carol sees the group");
        assert!(
            matches!(&last.content, Content::System { event: SystemEvent::MemberLeft { user_id, .. } } if *user_id == carol.id),
            "carol's export ends with her leaving: {last:?}"
        );
        let texts = seen
            .iter()
            .filter(|m| matches!(m.content, Content::Text { .. }))
            .count();
        assert_eq!(texts, 4, "everything before she left, nothing after");
        let bobs = lines_of(&server.http.get(&path, Some(&bob.token), &[]).await?.body);
        assert_eq!(
            bobs.len(),
            seen.len() + 1,
            "bob also sees the message after"
        );

        for format in ["jsonl", "text"] {
            let outsider = server
                .http
                .get(&format!("{path}?format={format}"), Some(&dave.token), &[])
                .await?;
            assert_eq!(outsider.status, 403);
            assert_eq!(outsider.error().map(|e| e.code), Some(ErrorCode::NotMember));
        }
        let anonymous = server.http.get(&path, None, &[]).await?;
        assert_eq!(
            anonymous.error().map(|e| e.code),
            Some(ErrorCode::Unauthorized)
        );
        let unknown = server
            .http
            .get(&format!("{path}?format=html"), Some(&bob.token), &[])
            .await?;
        assert_eq!(
            (unknown.status, unknown.error().map(|e| e.code)),
            (400, Some(ErrorCode::InvalidRequest))
        );
    }
    Ok(())
}
