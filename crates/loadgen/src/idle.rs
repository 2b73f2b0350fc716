//! Idle connections: authenticated sessions that only ping at the heartbeat interval, and
//! what they cost the server in resident memory.
//!
//! The server's RSS is read before the first connection opens and again once all of them
//! are live and have settled; the difference divided by the connections is the cost of one.
//! Accounts should exist before the server process being measured starts (the Argon2 work of
//! signing up leaves freed heap behind that idle connections would then reuse, hiding part of
//! their cost), which is why `accounts` is a separate command.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt, stream};
use tern_protocol::ClientFrame;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use crate::accounts::Account;
use crate::connect::{self, Endpoint, Socket};
use crate::procstat;
use crate::stats::{Report, bytes};

#[derive(Clone, Debug)]
pub struct Settings {
    pub connections: usize,
    pub devices_per_user: usize,
    /// Sessions opened at once.
    pub parallel: usize,
    /// Wait after the last connection before reading memory.
    pub settle: Duration,
    /// How long the connections stay open after the first reading (pinging meanwhile).
    pub hold: Duration,
}

struct Counters {
    pongs: AtomicU64,
    closed: AtomicU64,
}

pub async fn run(
    endpoint: &Endpoint,
    accounts: &[Account],
    settings: &Settings,
    pid: u32,
    report: &mut Report,
) -> anyhow::Result<()> {
    let n = settings.connections;
    let per_user = settings.devices_per_user.max(1);
    anyhow::ensure!(
        accounts.len() * per_user >= n,
        "{n} connections need {} accounts",
        n.div_ceil(per_user)
    );
    sleep(Duration::from_secs(1)).await;
    let before = procstat::sample(pid)?;
    let own_before = procstat::rss_bytes(std::process::id())?;

    let started = Instant::now();
    let opened: Vec<anyhow::Result<(Socket, Duration)>> = stream::iter(0..n)
        .map(|i| {
            let account = &accounts[i / per_user];
            let device = format!("idle-{}", i % per_user);
            async move {
                let live = endpoint
                    .session(i, &account.token, &device)
                    .await
                    .with_context(|| format!("connection {i}"))?;
                Ok((live.socket, live.heartbeat))
            }
        })
        .buffer_unordered(settings.parallel.max(1))
        .collect()
        .await;
    let open_seconds = started.elapsed().as_secs_f64();
    let mut failures = Vec::new();
    let mut sockets = Vec::with_capacity(n);
    for result in opened {
        match result {
            Ok(pair) => sockets.push(pair),
            Err(err) => failures.push(format!("{err:#}")),
        }
    }
    let live = sockets.len();
    eprintln!(
        "{live} idle sessions open in {open_seconds:.1} s ({} failed)",
        failures.len()
    );

    let counters = Arc::new(Counters {
        pongs: AtomicU64::new(0),
        closed: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, (socket, heartbeat))| {
            // Spread the first pings over one interval, as clients that connected at
            // different times would.
            let phase = heartbeat.mul_f64(i as f64 / live.max(1) as f64);
            tokio::spawn(idle(
                socket,
                heartbeat,
                phase,
                endpoint.encoding,
                counters.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();

    sleep(settings.settle).await;
    let settled = procstat::sample(pid)?;
    sleep(settings.hold).await;
    let held = procstat::sample(pid)?;
    let own_after = procstat::rss_bytes(std::process::id())?;
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    sleep(Duration::from_secs(2)).await;
    let closed = procstat::rss_bytes(pid).unwrap_or(0);

    let per_connection = |after: u64| (after as f64 - before.rss_bytes as f64) / live.max(1) as f64;
    let settled_each = per_connection(settled.rss_bytes);
    let held_each = per_connection(held.rss_bytes);
    let worst = settled_each.max(held_each);
    report.row(
        "connections",
        format!(
            "{live} live of {n} ({} failed), {per_user} devices per account",
            failures.len()
        ),
    );
    if let Some(first) = failures.first() {
        report.row("first failure", first);
    }
    report.row(
        "opened in",
        format!(
            "{open_seconds:.1} s ({:.0}/s)",
            live as f64 / open_seconds.max(1e-9)
        ),
    );
    report.row("server RSS before", bytes(before.rss_bytes as f64));
    report.row(
        "server RSS live",
        format!(
            "{} after {:.0} s, {} after {:.0} s more",
            bytes(settled.rss_bytes as f64),
            settings.settle.as_secs_f64(),
            bytes(held.rss_bytes as f64),
            settings.hold.as_secs_f64()
        ),
    );
    report.row("server RSS after closing", bytes(closed as f64));
    report.row(
        "per idle connection",
        format!(
            "{} (settled) / {} (held)",
            bytes(settled_each),
            bytes(held_each)
        ),
    );
    report.row(
        "server CPU while idle",
        format!(
            "{:.1} % of one core",
            100.0 * (held.cpu_seconds - settled.cpu_seconds)
                / (held.at - settled.at).as_secs_f64().max(1e-9)
        ),
    );
    report.row("pongs received", counters.pongs.load(Ordering::Relaxed));
    report.row(
        "closed by the server",
        counters.closed.load(Ordering::Relaxed),
    );
    report.row(
        "load generator RSS per connection",
        bytes((own_after as f64 - own_before as f64) / live.max(1) as f64),
    );
    report.metric("idle_connections", live as f64);
    report.metric("idle_failed", failures.len() as f64);
    report.metric("idle_bytes_per_connection", worst);
    report.metric("idle_server_rss_bytes", held.rss_bytes as f64);
    report.ratio("idle_bytes_per_connection_vs_8KiB_target", worst / 8192.0);
    Ok(())
}

async fn idle(
    mut socket: Socket,
    heartbeat: Duration,
    phase: Duration,
    encoding: tern_protocol::codec::Encoding,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next_ping = Instant::now() + phase;
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            () = sleep_until(next_ping) => {
                next_ping += heartbeat;
                let ping = connect::message(encoding, &ClientFrame::Ping { nonce: None });
                if socket.send(ping).await.is_err() {
                    counters.closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            message = socket.next() => match message {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    counters.closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(Ok(message)) => {
                    if let Ok(Some(tern_protocol::ServerFrame::Pong { .. })) = connect::decode(&message) {
                        counters.pongs.fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.close(None)).await;
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
