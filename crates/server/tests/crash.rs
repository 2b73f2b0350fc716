//! `kill -9` right after an ack loses nothing: the real binary, killed and restarted.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;
use tern_client::{HttpClient, WsClient};
use tern_protocol::ServerFrame;
use tern_testkit::TestDatabase;

struct Process {
    child: Child,
    host: String,
}

/// Starts `tern-server` and reads its address from the JSON start-up log.
fn spawn_server(db: &TestDatabase, data: &std::path::Path) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tern-server"))
        .env("TERN__SERVER__LISTEN", "127.0.0.1:0")
        .env("TERN__DATABASE__URL", &db.url)
        .env("TERN__STORAGE__DATA_DIR", data)
        .env("TERN__LOG__FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tern-server starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    let host = loop {
        let line = lines.next().expect("server printed its address").expect("readable log");
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if let Some(addr) = entry.pointer("/fields/addr").and_then(|a| a.as_str()) {
            break addr.to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Process { child, host }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_right_after_an_ack_loses_nothing() -> TestResult {
    for backend in tern_testkit::backends() {
        let db = TestDatabase::create(backend);
        let data = tempfile::tempdir()?;
        let mut server = spawn_server(&db, data.path());
        let http = HttpClient::new(&server.host);
        let alice = http.sign_up("alice", "correct horse battery").await?;
        let bob = http.sign_up("bob", "correct horse battery").await?;
        let (mut a, _) = WsClient::connect(&server.host, &alice.token, "phone", Vec::new()).await?;
        read_replay(&mut a).await;

        // Pipeline sends, and kill the server the moment the 30th ack arrives.
        for i in 0..60 {
            a.send_text(bob.user_id, &format!("k{i}"), &format!("k{i}")).await?;
        }
        let mut acked = Vec::new();
        while acked.len() < 30 {
            if let ServerFrame::Ack { client_msg_id, seq, conversation_id, .. } = a.next_within(WAIT).await? {
                acked.push((conversation_id, seq, client_msg_id));
            }
        }
        server.child.kill()?;
        server.child.wait()?;

        let server = spawn_server(&db, data.path());
        let http = HttpClient::new(&server.host);
        let bob = http.login("bob", "correct horse battery").await?;
        let conversation = acked[0].0;
        let page = http.history(&bob.token, conversation, "after=0&limit=200").await?;
        for (_, seq, id) in &acked {
            assert!(
                page.messages.iter().any(|m| m.seq == *seq && &m.client_msg_id == id),
                "acked message {id} (seq {seq}) lost on {}",
                backend.name()
            );
        }
        for pair in page.messages.windows(2) {
            assert_eq!(pair[1].prev_seq, pair[0].seq, "stored messages link without holes");
        }

        // After the crash, new messages keep increasing and link to the last stored one.
        let alice = http.login("alice", "correct horse battery").await?;
        let (mut a, _) = WsClient::connect(&server.host, &alice.token, "phone", Vec::new()).await?;
        read_replay(&mut a).await;
        a.send_text(bob.user_id, "after", "after the crash").await?;
        let ServerFrame::Ack { seq, .. } = answer_to(&mut a, "after").await else { panic!("no ack") };
        let last = page.messages.last().expect("messages survived");
        assert!(seq > last.seq);
        let newest = http.history(&bob.token, conversation, "limit=1").await?;
        assert_eq!(newest.messages[0].prev_seq, last.seq, "a skipped range is not a false gap");
        let mut server = server;
        server.child.kill()?;
        server.child.wait()?;
    }
    Ok(())
}
