//! `tern-cli`: register, log in, send and listen from a terminal or a script.
//!
//! ```text
//! tern-cli register alice secret-pw
//! tern-cli chat alice secret-pw bob        # type lines to send to bob; his replies print
//! tern-cli send alice secret-pw bob "hi"   # one message, waits for the ack
//! tern-cli listen bob secret-pw            # prints everything that arrives
//! ```
//! The server is `http://127.0.0.1:8080` unless `TERN_SERVER` says otherwise.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tern_client::{HttpClient, WsClient};
use tern_protocol::frames::Content;
use tern_protocol::{ServerFrame, UserId};
use tokio::io::{AsyncBufReadExt, BufReader};

const USAGE: &str = "usage:
  tern-cli register USER PASSWORD
  tern-cli send USER PASSWORD TO_USER TEXT
  tern-cli chat USER PASSWORD TO_USER
  tern-cli listen USER PASSWORD
environment: TERN_SERVER (default http://127.0.0.1:8080), TERN_DEVICE (default cli)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let server = std::env::var("TERN_SERVER").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let http = HttpClient::new(&server);
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["register", user, password] => {
            let account = http.register(user, password).await?;
            println!("registered {} as user {}", account.username, account.user_id);
        }
        ["send", user, password, to, text] => send_one(&http, user, password, to, text).await?,
        ["chat", user, password, to] => chat(&http, user, password, Some(to)).await?,
        ["listen", user, password] => chat(&http, user, password, None).await?,
        _ => bail!("{USAGE}"),
    }
    Ok(())
}

struct Connected {
    ws: WsClient,
    token: String,
    me: UserId,
    heartbeat: Duration,
}

/// Logs in and connects as device `TERN_DEVICE`, by default one per command, so that a
/// `listen` next to a `chat` of the same user does not replace it.
async fn connect(http: &HttpClient, user: &str, password: &str, command: &str) -> anyhow::Result<Connected> {
    let session = http.login(user, password).await.context("logging in")?;
    let device = std::env::var("TERN_DEVICE").unwrap_or_else(|_| format!("cli-{command}"));
    let (ws, info) = WsClient::connect(http.host(), &session.token, &device, Vec::new()).await?;
    // Ping well inside the server's idle timeout, whatever it is configured to.
    let heartbeat = Duration::from_millis(info.heartbeat_ms.min(info.idle_timeout_ms / 2).max(100));
    Ok(Connected { ws, token: session.token, me: info.user_id, heartbeat })
}

async fn send_one(http: &HttpClient, user: &str, password: &str, to: &str, text: &str) -> anyhow::Result<()> {
    let mut c = connect(http, user, password, "send").await?;
    let peer = http.user_by_name(&c.token, to).await.context("finding the recipient")?;
    let id = client_msg_id();
    c.ws.send_text(peer.user_id, &id, text).await?;
    let (frame, _) = c.ws.until(Duration::from_secs(10), |f| is_answer(f, &id)).await?;
    match frame {
        ServerFrame::Ack { seq, message_id, .. } => println!("sent: seq {seq}, id {message_id}"),
        ServerFrame::Error(err) => bail!("refused: {err}"),
        _ => {}
    }
    Ok(())
}

async fn chat(http: &HttpClient, user: &str, password: &str, to: Option<&&str>) -> anyhow::Result<()> {
    let command = if to.is_some() { "chat" } else { "listen" };
    let mut c = connect(http, user, password, command).await?;
    let peer = match to {
        Some(name) => Some(http.user_by_name(&c.token, name).await.context("finding the peer")?),
        None => None,
    };
    let mut names = std::collections::HashMap::new();
    names.insert(c.me, user.to_owned());
    if let Some(peer) = &peer {
        names.insert(peer.user_id, peer.username.clone());
        println!("chatting with {}; type a line and press enter (Ctrl-D to quit)", peer.username);
    } else {
        println!("listening as {user} (Ctrl-C to quit)");
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut ping = tokio::time::interval(c.heartbeat);
    let mut stdin_open = peer.is_some();
    loop {
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line? {
                Some(text) if !text.trim().is_empty() => {
                    if let Some(peer) = &peer {
                        c.ws.send_text(peer.user_id, &client_msg_id(), &text).await?;
                    }
                }
                Some(_) => {}
                None => stdin_open = false,
            },
            _ = ping.tick() => c.ws.send(&tern_protocol::ClientFrame::Ping { nonce: None }).await?,
            frame = c.ws.next() => {
                let frame = frame?;
                show(&frame, &names);
                if let ServerFrame::Message(m) = &frame {
                    c.ws.receipt(m.conversation_id, m.seq).await?;
                }
            }
        }
        if !stdin_open && peer.is_some() {
            return Ok(());
        }
    }
}

fn show(frame: &ServerFrame, names: &std::collections::HashMap<UserId, String>) {
    match frame {
        ServerFrame::Message(m) => {
            let who = names.get(&m.sender_id).cloned().unwrap_or_else(|| format!("user {}", m.sender_id));
            println!("[{}] {}", printable(&who), printable(&describe(&m.content)));
        }
        ServerFrame::Delivered { seq, .. } => println!("  (delivered up to #{seq})"),
        ServerFrame::Error(err) => println!("  error: {}", printable(&err.to_string())),
        ServerFrame::Kicked { reason } => println!("  kicked: {}", printable(reason)),
        ServerFrame::GoingAway { .. } => println!("  server going away"),
        _ => {}
    }
}

/// Text from other users with every control character made visible, so that a message cannot
/// drive this terminal (escape sequences, carriage returns that overwrite a line).
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => "\n    ".to_owned(),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') => {
                c.escape_unicode().to_string()
            }
            c => c.to_string(),
        })
        .collect()
}

fn describe(content: &Content) -> String {
    match content {
        Content::Text { text } => text.clone(),
        Content::Image { attachment } => format!("(picture {}, {} bytes)", attachment.name, attachment.size),
        Content::File { attachment } => format!("(file {}, {} bytes)", attachment.name, attachment.size),
        Content::Custom { custom_type, payload } => format!("(custom {custom_type}: {payload})"),
        Content::System { event } => format!("(notice: {event:?})"),
        Content::Recalled {} => "(recalled)".into(),
    }
}

fn is_answer(frame: &ServerFrame, id: &str) -> bool {
    match frame {
        ServerFrame::Ack { client_msg_id, .. } => client_msg_id == id,
        ServerFrame::Error(err) => err.client_msg_id.as_deref() == Some(id),
        _ => false,
    }
}

fn client_msg_id() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("cli-{nanos:x}-{}", std::process::id())
}
