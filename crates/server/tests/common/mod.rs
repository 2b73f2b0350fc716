//! The real server on `127.0.0.1:0`, on a fresh database, for integration tests.

#![allow(dead_code)]

use std::time::Duration;

use tern_client::{HttpClient, WsClient};
use tern_db::Backend;
use tern_protocol::frames::Position;
use tern_protocol::{ServerFrame, UserId};
use tern_server::{Config, Running};
use tern_testkit::TestDatabase;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a test waits to be sure a frame does not come.
pub const QUIET: Duration = Duration::from_millis(300);

pub struct TestServer {
    pub db: TestDatabase,
    pub data: tempfile::TempDir,
    pub config: Config,
    pub running: Option<Running>,
    pub http: HttpClient,
}

/// A user with a token.
pub struct User {
    pub name: String,
    pub id: UserId,
    pub token: String,
}

/// The settings tests use: the given database, a private data folder, a free port.
pub fn test_config(db: &TestDatabase, data: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    config.database.url = db.url.clone();
    config.storage.data_dir = data.to_path_buf();
    config.server.shutdown_grace_ms = 3_000;
    config
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let db = TestDatabase::create(backend);
        let data = tempfile::tempdir().expect("data folder");
        let mut config = test_config(&db, data.path());
        tweak(&mut config);
        let running = tern_server::start(config.clone()).await.expect("server starts");
        let http = HttpClient::new(&running.addr.to_string());
        TestServer { db, data, config, running: Some(running), http }
    }

    pub fn host(&self) -> String {
        self.http.host().to_owned()
    }

    /// Stops gracefully and starts again on the same database and port-less config.
    pub async fn restart(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.expect("clean shutdown");
        }
        let running = tern_server::start(self.config.clone()).await.expect("server restarts");
        self.http = HttpClient::new(&running.addr.to_string());
        self.running = Some(running);
    }

    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.expect("clean shutdown");
        }
    }

    pub async fn user(&self, name: &str) -> User {
        let session = self.http.sign_up(name, "correct horse battery").await.expect("sign up");
        User { name: name.into(), id: session.user_id, token: session.token }
    }

    pub async fn connect(&self, user: &User, device: &str) -> WsClient {
        self.connect_at(user, device, Vec::new()).await
    }

    /// Connects and reads through the replay up to `sync_done`, returning replayed messages.
    pub async fn connect_at(&self, user: &User, device: &str, positions: Vec<Position>) -> WsClient {
        let (ws, _info) = WsClient::connect(&self.host(), &user.token, device, positions)
            .await
            .expect("websocket connects");
        ws
    }
}

/// Reads the replay after `connect`: every message until `sync_done`.
pub async fn read_replay(ws: &mut WsClient) -> Vec<tern_protocol::frames::MessageView> {
    let (_, skipped) = ws
        .until(WAIT, |f| matches!(f, ServerFrame::SyncDone { .. }))
        .await
        .expect("sync_done arrives");
    skipped
        .into_iter()
        .filter_map(|f| match f {
            ServerFrame::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// Waits for the ack or error answering `client_msg_id`.
pub async fn answer_to(ws: &mut WsClient, client_msg_id: &str) -> ServerFrame {
    let (frame, _) = ws
        .until(WAIT, |f| match f {
            ServerFrame::Ack { client_msg_id: id, .. } => id == client_msg_id,
            ServerFrame::Error(e) => e.client_msg_id.as_deref() == Some(client_msg_id),
            _ => false,
        })
        .await
        .expect("an answer to the send");
    frame
}

/// Waits for the next pushed message.
pub async fn next_message(ws: &mut WsClient) -> tern_protocol::frames::MessageView {
    let (frame, _) = ws.until(WAIT, |f| matches!(f, ServerFrame::Message(_))).await.expect("a message");
    match frame {
        ServerFrame::Message(m) => m,
        _ => unreachable!("filtered above"),
    }
}

/// Asserts that no message arrives for a short while.
pub async fn assert_no_message(ws: &mut WsClient) {
    let outcome = ws.until(QUIET, |f| matches!(f, ServerFrame::Message(_))).await;
    assert!(outcome.is_err(), "unexpected message: {outcome:?}");
}

/// The text of a text message; panics on any other kind, which a test did not expect.
pub fn text_of(m: &tern_protocol::frames::MessageView) -> &str {
    match &m.content {
        tern_protocol::frames::Content::Text { text } => text,
        other => panic!("expected a text message, got {other:?}"),
    }
}
