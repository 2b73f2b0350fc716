//! The life of a connection: authentication, heartbeats, timeouts, kicks and refusals.

mod common;

use std::time::Duration;

use common::*;
use tern_client::{WsClient, WsError};
use tern_db::Backend;
use tern_protocol::codec::Encoding;
use tern_protocol::{ClientFrame, ErrorCode, ServerFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused_with_a_typed_error_and_a_close() -> TestResult {
    let server = TestServer::start(Backend::Sqlite).await;
    match WsClient::connect(&server.host(), "not-a-token", "phone", Vec::new()).await {
        Err(WsError::Refused(err)) => assert_eq!(err.code, ErrorCode::Unauthorized),
        Ok(_) => panic!("a bad token was accepted"),
        Err(other) => panic!("expected a typed refusal, got {other}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_before_connect_are_refused_and_a_silent_client_is_closed() -> TestResult {
    let server = TestServer::start_with(Backend::Sqlite, |c| c.websocket.auth_timeout_ms = 400).await;
    let mut ws = WsClient::open(&server.host(), Encoding::Json, None).await?;
    ws.send(&ClientFrame::Ping { nonce: None }).await?;
    match ws.next_within(WAIT).await? {
        ServerFrame::Error(err) => assert_eq!(err.code, ErrorCode::NotConnected),
        other => panic!("{other:?}"),
    }
    let (last, _) = ws.until(WAIT, |f| matches!(f, ServerFrame::Error(_))).await?;
    assert!(matches!(last, ServerFrame::Error(e) if e.code == ErrorCode::Unauthorized));
    assert!(matches!(ws.next_within(WAIT).await, Err(WsError::Closed { .. })));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_session_open_and_silence_closes_it() -> TestResult {
    let server = TestServer::start_with(Backend::Sqlite, |c| c.websocket.idle_timeout_ms = 500).await;
    let alice = server.user("alice").await;
    let mut ws = server.connect(&alice, "phone").await;
    read_replay(&mut ws).await;
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        ws.send(&ClientFrame::Ping { nonce: Some(i.to_string()) }).await?;
        let (pong, _) = ws.until(WAIT, |f| matches!(f, ServerFrame::Pong { .. })).await?;
        assert_eq!(pong, ServerFrame::Pong { nonce: Some(i.to_string()) });
    }
    match ws.next_within(WAIT).await {
        Err(WsError::Closed { reason, .. }) => assert_eq!(reason, "idle timeout"),
        other => panic!("a silent session stayed open: {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_token_and_kicks_its_sessions() -> TestResult {
    let server = TestServer::start(Backend::Sqlite).await;
    let alice = server.user("alice").await;
    let other = server.http.login("alice", "correct horse battery").await?;
    let mut kept = server.connect_at(&tern_user(&alice, &other.token), "tablet", Vec::new()).await;
    read_replay(&mut kept).await;
    let mut ws = server.connect(&alice, "phone").await;
    read_replay(&mut ws).await;

    server.http.logout(&alice.token).await?;
    let (kicked, _) = ws.until(WAIT, |f| matches!(f, ServerFrame::Kicked { .. })).await?;
    assert_eq!(kicked, ServerFrame::Kicked { reason: "logged out".into() });
    assert!(matches!(ws.next_within(WAIT).await, Err(WsError::Closed { .. })));
    let me = server.http.json::<(), serde_json::Value>("GET", "/api/v1/me", Some(&alice.token), None).await;
    assert_eq!(me.err().and_then(|e| e.code()), Some(ErrorCode::Unauthorized));

    // The session opened with the other token is untouched.
    kept.send(&ClientFrame::Ping { nonce: None }).await?;
    assert!(matches!(kept.next_within(WAIT).await?, ServerFrame::Pong { .. }));
    Ok(())
}

fn tern_user(user: &User, token: &str) -> User {
    User { name: user.name.clone(), id: user.id, token: token.to_owned() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_device_connecting_again_kicks_the_old_session() -> TestResult {
    let server = TestServer::start(Backend::Sqlite).await;
    let alice = server.user("alice").await;
    let mut old = server.connect(&alice, "phone").await;
    read_replay(&mut old).await;
    let mut new = server.connect(&alice, "phone").await;
    read_replay(&mut new).await;
    let kicked = old.until(WAIT, |f| matches!(f, ServerFrame::Kicked { .. })).await;
    assert!(matches!(kicked, Ok((ServerFrame::Kicked { ref reason }, _)) if reason.starts_with("replaced")), "{kicked:?}");
    new.send(&ClientFrame::Ping { nonce: None }).await?;
    assert!(matches!(new.next_within(WAIT).await?, ServerFrame::Pong { .. }));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_user_cap_are_refused() -> TestResult {
    let server = TestServer::start_with(Backend::Sqlite, |c| c.websocket.max_connections_per_user = 2).await;
    let alice = server.user("alice").await;
    let _a = server.connect(&alice, "one").await;
    let _b = server.connect(&alice, "two").await;
    match WsClient::connect(&server.host(), &alice.token, "three", Vec::new()).await {
        Err(WsError::Refused(err)) => assert_eq!(err.code, ErrorCode::TooManyConnections),
        other => panic!("a third connection was not refused: {:?}", other.err()),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_cannot_open_a_websocket() -> TestResult {
    let server = TestServer::start(Backend::Sqlite).await;
    let refused = WsClient::open(&server.host(), Encoding::Json, Some("http://evil.example")).await;
    assert!(refused.is_err(), "a cross-site page opened a socket");
    let own = format!("http://{}", server.host());
    assert!(WsClient::open(&server.host(), Encoding::Json, Some(&own)).await.is_ok());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_half_a_request_line_is_dropped() -> TestResult {
    let server = TestServer::start_with(Backend::Sqlite, |c| c.server.header_read_timeout_ms = 300).await;
    let mut socket = tokio::net::TcpStream::connect(server.host()).await?;
    socket.write_all(b"GET /healthz HT").await?;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(WAIT, socket.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server held a half-sent request open");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messagepack_clients_chat_with_json_clients() -> TestResult {
    let server = TestServer::start(Backend::Sqlite).await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let (mut a, _) =
        WsClient::connect_with(&server.host(), &alice.token, "phone", Vec::new(), Encoding::MessagePack).await?;
    let mut b = server.connect(&bob, "laptop").await;
    read_replay(&mut a).await;
    read_replay(&mut b).await;
    a.send_text(bob.id, "bin-1", "from a binary client").await?;
    assert!(matches!(answer_to(&mut a, "bin-1").await, ServerFrame::Ack { .. }));
    assert_eq!(text_of(&next_message(&mut b).await), "from a binary client");
    b.send_text(alice.id, "json-1", "from a text client").await?;
    assert_eq!(text_of(&next_message(&mut a).await), "from a text client");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_tells_clients_to_reconnect() -> TestResult {
    let mut server = TestServer::start(Backend::Sqlite).await;
    let alice = server.user("alice").await;
    let mut ws = server.connect(&alice, "phone").await;
    read_replay(&mut ws).await;
    let reader = tokio::spawn(async move { ws.until(WAIT, |f| matches!(f, ServerFrame::GoingAway { .. })).await });
    server.stop().await;
    let (frame, _) = reader.await??;
    assert!(matches!(frame, ServerFrame::GoingAway { .. }));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_chat_page_is_served_with_a_strict_policy() -> TestResult {
    let server = TestServer::start(Backend::Sqlite).await;
    for (path, kind) in [("/", "text/html"), ("/app.js", "text/javascript"), ("/app.css", "text/css")] {
        let mut stream = tokio::net::TcpStream::connect(server.host()).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.host());
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let head = response.split("\r\n\r\n").next().unwrap_or_default().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(head.contains(&format!("content-type: {kind}")), "{path}: {head}");
        assert!(head.contains("content-security-policy: default-src 'none'; script-src 'self'"), "{path}");
        assert!(head.contains("x-content-type-options: nosniff"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stops_arriving_is_given_up() -> TestResult {
    let server = TestServer::start_with(Backend::Sqlite, |c| c.server.body_idle_timeout_ms = 300).await;
    let mut socket = tokio::net::TcpStream::connect(server.host()).await?;
    let head = format!(
        "POST /api/v1/sessions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"use",
        server.host()
    );
    socket.write_all(head.as_bytes()).await?;
    let mut response = Vec::new();
    let read = tokio::time::timeout(WAIT, socket.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "the server waited for the rest of the body indefinitely");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 4"), "a client error comes back: {text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usernames_are_one_account_whatever_their_case() -> TestResult {
    let server = TestServer::start(Backend::Sqlite).await;
    server.http.register("Alice", "correct horse battery").await?;
    let taken = server.http.register("aLiCe", "another password").await;
    assert_eq!(taken.err().and_then(|e| e.code()), Some(ErrorCode::Conflict));
    let session = server.http.login("ALICE", "correct horse battery").await?;
    let found = server.http.user_by_name(&session.token, "alice").await?;
    assert_eq!((found.user_id, found.username.as_str()), (session.user_id, "alice"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_would_drive_a_terminal_is_refused() -> TestResult {
    let server = TestServer::start(Backend::Sqlite).await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let mut a = server.connect(&alice, "a").await;
    read_replay(&mut a).await;
    a.send_text(bob.id, "esc", "clear \u{1b}[2J fake [carol] hi").await?;
    assert!(matches!(answer_to(&mut a, "esc").await, ServerFrame::Error(e) if e.code == ErrorCode::InvalidRequest));
    a.send_text(bob.id, "crlf", "two\r\nlines\tand a tab").await?;
    assert!(matches!(answer_to(&mut a, "crlf").await, ServerFrame::Ack { .. }));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_cut_off_after_ten_failures() -> TestResult {
    let server = TestServer::start(Backend::Sqlite).await;
    server.user("alice").await;
    for _ in 0..10 {
        let wrong = server.http.login("alice", "not the password").await;
        assert_eq!(wrong.err().and_then(|e| e.code()), Some(ErrorCode::Unauthorized));
    }
    let limited = server.http.login("alice", "correct horse battery").await;
    assert_eq!(limited.err().and_then(|e| e.code()), Some(ErrorCode::RateLimited), "even the right password waits");
    assert!(server.http.login("bob-does-not-exist", "whatever password").await.is_err());
    Ok(())
}
