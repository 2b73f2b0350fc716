//! Open-loop message traffic and what became of every message.
//!
//! Each sending connection has a fixed schedule: its `j`-th message is due at
//! `t0 + slot / rate + j * senders / rate`, so together the senders offer exactly `rate`
//! messages a second. Latency is measured from the due time, not from the moment the frame
//! left: when the server (or this generator) falls behind, the wait before sending counts too,
//! and a slow server cannot hide its stalls by slowing the generator down (coordinated
//! omission). Messages still unsent when the window closes are counted, not dropped silently.
//!
//! A client message id `RUN.SENDER.J` names the run, the sending connection and the message's
//! place in its schedule, so both the ack and the delivery tell their own due time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt, stream};
use tern_protocol::frames::{Content, MessageView};
use tern_protocol::{ClientFrame, ConversationId, ServerFrame, UserId};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;

use crate::accounts::Account;
use crate::connect::{self, Endpoint, Socket};
use crate::procstat;
use crate::stats::{Latency, Recorder};

/// Sessions opened at once while setting up.
const CONNECT_PARALLEL: usize = 64;
/// How often the end-of-run condition is checked.
const POLL: Duration = Duration::from_millis(20);
/// How often the server's memory is sampled for its peak.
const MEMORY_POLL: Duration = Duration::from_millis(250);

/// Where one connection's messages go.
#[derive(Clone, Copy, Debug)]
pub enum Destination {
    User(UserId),
    Conversation(ConversationId),
}

/// Who sends to whom: per connection, its destination (none for a pure receiver) and the
/// connections that must receive what it sends.
#[derive(Clone, Debug)]
pub struct Plan {
    pub destinations: Vec<Option<Destination>>,
    pub recipients: Vec<Vec<usize>>,
}

impl Plan {
    /// Connections 2k and 2k+1 talk to each other, both ways.
    pub fn pairs(accounts: &[Account]) -> Plan {
        let n = accounts.len() & !1;
        let destinations = (0..n)
            .map(|i| Some(Destination::User(accounts[i ^ 1].id)))
            .collect();
        let recipients = (0..n).map(|i| vec![i ^ 1]).collect();
        Plan {
            destinations,
            recipients,
        }
    }

    fn slots(&self) -> Vec<Option<usize>> {
        let mut next = 0;
        self.destinations
            .iter()
            .map(|d| {
                d.map(|_| {
                    next += 1;
                    next - 1
                })
            })
            .collect()
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub rate: f64,
    pub duration: Duration,
    /// How long to wait after the window for acks and deliveries still on their way.
    pub drain: Duration,
    pub text_bytes: usize,
    pub device: String,
}

/// State every connection task shares.
struct Shared {
    run: String,
    t0: Instant,
    end: Instant,
    rate: f64,
    senders: usize,
    slots: Vec<Option<usize>>,
    fanout: Vec<usize>,
    ack_latency: Recorder,
    deliver_latency: Recorder,
    sent: AtomicU64,
    answered: AtomicU64,
    delivered: AtomicU64,
    expected_deliveries: AtomicU64,
    writers_done: AtomicUsize,
    last_ack_ns: AtomicU64,
    last_delivery_ns: AtomicU64,
}

impl Shared {
    fn due(&self, slot: usize, j: u64) -> Instant {
        let seconds = (slot as f64 + j as f64 * self.senders as f64) / self.rate;
        self.t0 + Duration::from_secs_f64(seconds)
    }

    /// How many messages the schedule of `slot` puts inside the window.
    fn scheduled(&self, slot: usize) -> u64 {
        let window = (self.end - self.t0).as_secs_f64() * self.rate;
        let count = ((window - slot as f64) / self.senders as f64).ceil();
        if count > 0.0 { count as u64 } else { 0 }
    }

    fn since_t0(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.t0).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The sender and schedule index named by a client message id of this run.
    fn parse_id(&self, id: &str) -> Option<(usize, u64)> {
        let rest = id.strip_prefix(self.run.as_str())?.strip_prefix('.')?;
        let (sender, j) = rest.split_once('.')?;
        Some((sender.parse().ok()?, j.parse().ok()?))
    }

    fn latency_of(&self, sender: usize, j: u64, now: Instant) -> Option<Duration> {
        let slot = (*self.slots.get(sender)?)?;
        Some(now.saturating_duration_since(self.due(slot, j)))
    }
}

/// What one connection saw.
#[derive(Debug, Default)]
struct Seen {
    /// Its own sends that were acked: (conversation, seq, j).
    acks: Vec<(ConversationId, u64, u64)>,
    ack_flagged_duplicate: u64,
    /// Errors answering its sends, by code.
    errors: HashMap<String, u64>,
    /// Messages of this run it received, by (sender, j).
    got: HashSet<(usize, u64)>,
    seen_seqs: HashSet<(ConversationId, u64)>,
    last_seq: HashMap<ConversationId, u64>,
    duplicates: u64,
    out_of_order: u64,
    /// Messages not from this run (left over from an earlier one).
    foreign: u64,
    unreadable: u64,
    /// Why the connection ended before the run did, if it did.
    ended: Option<String>,
    /// Highest seq known per conversation, for the closing receipts.
    highest: HashMap<ConversationId, u64>,
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// The prefix of this run's client message ids.
    pub run: String,
    pub connections: usize,
    pub senders: usize,
    pub offered_rate: f64,
    pub window: Duration,
    pub scheduled: u64,
    pub sent: u64,
    pub acked: u64,
    pub ack_flagged_duplicate: u64,
    pub errors: HashMap<String, u64>,
    pub unanswered: u64,
    pub delivered: u64,
    pub expected_deliveries: u64,
    pub lost_deliveries: u64,
    pub lost_messages: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub foreign: u64,
    pub unreadable: u64,
    pub disconnects: Vec<String>,
    pub drained: bool,
    pub acked_per_s: f64,
    pub delivered_per_s: f64,
    pub ack_latency: Latency,
    pub deliver_latency: Latency,
    pub server: Option<ServerUse>,
    pub loadgen_cpu_seconds: f64,
    pub machine_busy: Option<f64>,
    /// Every acked message, for checking the database: (conversation, seq, client id, sender).
    pub acked_messages: Vec<(ConversationId, u64, String, usize)>,
}

/// The server process over the run.
#[derive(Clone, Copy, Debug)]
pub struct ServerUse {
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
    pub rss_start: u64,
    pub rss_end: u64,
    pub rss_peak: u64,
}

/// Runs the plan's traffic and accounts for every message.
pub async fn run(
    endpoint: &Endpoint,
    accounts: &[Account],
    plan: &Plan,
    settings: &Settings,
    server_pid: Option<u32>,
) -> anyhow::Result<Outcome> {
    let n = plan.destinations.len();
    let mut lives = open_all(endpoint, accounts, n, &settings.device).await?;
    let run = run_id();
    warm_up(&mut lives, plan, &run, endpoint.encoding).await?;
    let heartbeat = lives
        .first()
        .map(|l| l.heartbeat)
        .unwrap_or(Duration::from_secs(30));
    let replayed: usize = lives.iter().map(|l| l.replayed).sum();
    if replayed > 0 {
        eprintln!("note: {replayed} messages of earlier runs were replayed on connect");
    }
    let slots = plan.slots();
    let senders = slots.iter().flatten().count().max(1);
    let t0 = Instant::now() + Duration::from_millis(200);
    let shared = Arc::new(Shared {
        run,
        t0,
        end: t0 + settings.duration,
        rate: settings.rate,
        senders,
        slots,
        fanout: plan.recipients.iter().map(Vec::len).collect(),
        ack_latency: Recorder::new()?,
        deliver_latency: Recorder::new()?,
        sent: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        expected_deliveries: AtomicU64::new(0),
        writers_done: AtomicUsize::new(0),
        last_ack_ns: AtomicU64::new(0),
        last_delivery_ns: AtomicU64::new(0),
    });
    let (done_tx, done_rx) = watch::channel(false);
    let text = filler(settings.text_bytes);
    let mut writers = Vec::with_capacity(n);
    let mut readers = Vec::with_capacity(n);
    for (index, live) in lives.into_iter().enumerate() {
        let (sink, stream) = live.socket.split();
        let job = Writer {
            shared: shared.clone(),
            index,
            destination: plan.destinations[index],
            heartbeat,
            text: text.clone(),
            encoding: endpoint.encoding,
        };
        writers.push(tokio::spawn(job.run(sink)));
        let seen = Seen {
            highest: live.positions,
            ..Seen::default()
        };
        readers.push(tokio::spawn(read(
            stream,
            shared.clone(),
            index,
            done_rx.clone(),
            seen,
        )));
    }

    let start = server_pid.map(procstat::sample).transpose()?;
    let own_start = procstat::cpu_seconds(std::process::id()).unwrap_or(0.0);
    let machine_start = procstat::machine_ticks();
    let (drained, rss_peak) = watch_until_done(&shared, n, settings.drain, server_pid).await;
    let end_sample = server_pid.map(procstat::sample).transpose()?;
    let own_cpu = procstat::cpu_seconds(std::process::id()).unwrap_or(0.0) - own_start;
    let machine_busy = machine_share(machine_start, procstat::machine_ticks());
    let _ = done_tx.send(true);

    let (sinks, sent_by) = join_writers(writers, settings.drain).await;
    let mut seen = Vec::with_capacity(n);
    let mut streams = Vec::with_capacity(n);
    for reader in readers {
        let (stream, s) = reader.await.context("a reader task failed")?;
        streams.push(stream);
        seen.push(s);
    }
    close_all(sinks, streams, &seen, endpoint.encoding).await;

    let server = match (start, end_sample) {
        (Some(a), Some(b)) => Some(ServerUse {
            cpu_seconds: b.cpu_seconds - a.cpu_seconds,
            wall_seconds: (b.at - a.at).as_secs_f64(),
            rss_start: a.rss_bytes,
            rss_end: b.rss_bytes,
            rss_peak: rss_peak.max(b.rss_bytes),
        }),
        _ => None,
    };
    Ok(tally(
        &shared,
        plan,
        settings,
        sent_by,
        seen,
        drained,
        server,
        own_cpu,
        machine_busy,
    ))
}

/// A short id that keeps this run's messages apart from earlier runs on the same accounts.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("r{:x}", (nanos / 1000) % (1 << 40))
}

fn filler(bytes: usize) -> String {
    let pattern = "the quick brown fox jumps over the lazy dog ";
    pattern.chars().cycle().take(bytes.max(1)).collect()
}

async fn open_all(
    endpoint: &Endpoint,
    accounts: &[Account],
    n: usize,
    device: &str,
) -> anyhow::Result<Vec<connect::Live>> {
    anyhow::ensure!(accounts.len() >= n, "{n} connections need {n} accounts");
    let started = std::time::Instant::now();
    let lives: Vec<anyhow::Result<connect::Live>> = stream::iter(0..n)
        .map(|i| {
            let token = accounts[i].token.clone();
            async move {
                endpoint
                    .session(i, &token, device)
                    .await
                    .with_context(|| format!("connection {i}"))
            }
        })
        .buffered(CONNECT_PARALLEL)
        .collect()
        .await;
    let lives = lives.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!(
        "opened {n} sessions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(lives)
}

/// Sends one message per sender and waits for its ack, so that the timed window measures
/// steady state: conversations exist and id segments are loaded, as on a server that has
/// been up for a while. Warm-up messages carry another prefix and are not counted.
async fn warm_up(
    lives: &mut [connect::Live],
    plan: &Plan,
    run: &str,
    encoding: tern_protocol::codec::Encoding,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let jobs = lives.iter_mut().enumerate().filter_map(|(i, live)| {
        let destination = plan.destinations.get(i).copied().flatten()?;
        Some(async move {
            let id = format!("{run}w.{i}");
            let (to_user, conversation_id) = match destination {
                Destination::User(u) => (Some(u), None),
                Destination::Conversation(c) => (None, Some(c)),
            };
            let frame = ClientFrame::Send {
                client_msg_id: id.clone(),
                to_user,
                conversation_id,
                content: Content::Text {
                    text: "warm-up".into(),
                },
            };
            connect::send(&mut live.socket, encoding, &frame).await?;
            let wait = async {
                loop {
                    match connect::next_frame(&mut live.socket).await? {
                        Some(ServerFrame::Ack { client_msg_id, .. }) if client_msg_id == id => {
                            return anyhow::Ok(());
                        }
                        Some(ServerFrame::Error(err))
                            if err.client_msg_id.as_deref() == Some(id.as_str()) =>
                        {
                            anyhow::bail!(
                                "warm-up send refused: {} {}",
                                connect::code_name(err.code),
                                err.message
                            )
                        }
                        Some(_) => {}
                        None => anyhow::bail!("closed during warm-up"),
                    }
                }
            };
            timeout(Duration::from_secs(30), wait)
                .await
                .context("no warm-up ack within 30 s")?
        })
    });
    let outcomes: Vec<anyhow::Result<()>> = stream::iter(jobs)
        .buffer_unordered(CONNECT_PARALLEL)
        .collect()
        .await;
    outcomes.into_iter().collect::<anyhow::Result<()>>()?;
    eprintln!("warmed up in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Sends one connection's schedule, and pings when it has nothing to send for a while.
struct Writer {
    shared: Arc<Shared>,
    index: usize,
    destination: Option<Destination>,
    heartbeat: Duration,
    text: String,
    encoding: tern_protocol::codec::Encoding,
}

type Sink = SplitSink<Socket, Message>;

impl Writer {
    async fn run(self, mut sink: Sink) -> (Sink, u64) {
        let shared = &self.shared;
        let slot = shared.slots.get(self.index).copied().flatten();
        let ping_every = self.heartbeat / 2;
        let mut next_ping = Instant::now() + ping_every;
        let mut j = 0u64;
        loop {
            let due = match (slot, self.destination) {
                (Some(slot), Some(_)) => shared.due(slot, j),
                _ => shared.end,
            };
            if next_ping < due.min(shared.end) {
                sleep_until(next_ping).await;
                next_ping += ping_every;
                if self.ping(&mut sink).await.is_err() {
                    break;
                }
                continue;
            }
            if due >= shared.end {
                sleep_until(shared.end).await;
                break;
            }
            sleep_until(due).await;
            if self.send(&mut sink, j).await.is_err() {
                break;
            }
            shared.sent.fetch_add(1, Ordering::Relaxed);
            next_ping = Instant::now() + ping_every;
            j += 1;
        }
        shared.writers_done.fetch_add(1, Ordering::Relaxed);
        (sink, j)
    }

    async fn send(&self, sink: &mut Sink, j: u64) -> anyhow::Result<()> {
        let (to_user, conversation_id) = match self.destination {
            Some(Destination::User(u)) => (Some(u), None),
            Some(Destination::Conversation(c)) => (None, Some(c)),
            None => return Ok(()),
        };
        let frame = ClientFrame::Send {
            client_msg_id: format!("{}.{}.{j}", self.shared.run, self.index),
            to_user,
            conversation_id,
            content: Content::Text {
                text: self.text.clone(),
            },
        };
        Ok(sink.send(connect::message(self.encoding, &frame)).await?)
    }

    async fn ping(&self, sink: &mut Sink) -> anyhow::Result<()> {
        let frame = ClientFrame::Ping { nonce: None };
        Ok(sink.send(connect::message(self.encoding, &frame)).await?)
    }
}

type Stream = SplitStream<Socket>;

async fn read(
    mut stream: Stream,
    shared: Arc<Shared>,
    index: usize,
    mut done: watch::Receiver<bool>,
    mut seen: Seen,
) -> (Stream, Seen) {
    loop {
        let message = tokio::select! {
            biased;
            () = stopped(&mut done) => break,
            message = stream.next() => message,
        };
        let message = match message {
            Some(Ok(Message::Close(frame))) => {
                seen.ended = Some(
                    frame
                        .map(|f| f.reason.to_string())
                        .unwrap_or_else(|| "closed".into()),
                );
                break;
            }
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                seen.ended = Some(err.to_string());
                break;
            }
            None => {
                seen.ended = Some("closed".into());
                break;
            }
        };
        match connect::decode(&message) {
            Ok(Some(frame)) => on_frame(&shared, index, &mut seen, frame),
            Ok(None) => {}
            Err(_) => seen.unreadable += 1,
        }
    }
    (stream, seen)
}

fn on_frame(shared: &Shared, index: usize, seen: &mut Seen, frame: ServerFrame) {
    let now = Instant::now();
    match frame {
        ServerFrame::Ack {
            client_msg_id,
            conversation_id,
            seq,
            duplicate,
            ..
        } => {
            let Some((sender, j)) = shared.parse_id(&client_msg_id).filter(|(s, _)| *s == index)
            else {
                seen.foreign += 1;
                return;
            };
            if let Some(latency) = shared.latency_of(sender, j, now) {
                shared.ack_latency.record(latency);
            }
            if duplicate {
                seen.ack_flagged_duplicate += 1;
            }
            seen.acks.push((conversation_id, seq, j));
            raise(&mut seen.highest, conversation_id, seq);
            let fanout = shared.fanout.get(index).copied().unwrap_or(0) as u64;
            shared
                .expected_deliveries
                .fetch_add(fanout, Ordering::Relaxed);
            shared.answered.fetch_add(1, Ordering::Relaxed);
            shared
                .last_ack_ns
                .fetch_max(shared.since_t0(now), Ordering::Relaxed);
        }
        ServerFrame::Error(err) => {
            let ours = err
                .client_msg_id
                .as_deref()
                .and_then(|id| shared.parse_id(id));
            *seen.errors.entry(connect::code_name(err.code)).or_default() += 1;
            if ours.is_some() {
                shared.answered.fetch_add(1, Ordering::Relaxed);
            }
        }
        ServerFrame::Message(view) => on_message(shared, seen, view, now),
        ServerFrame::Kicked { reason } => seen.ended = Some(format!("kicked: {reason}")),
        ServerFrame::GoingAway { .. } => seen.ended = Some("server going away".into()),
        _ => {}
    }
}

fn on_message(shared: &Shared, seen: &mut Seen, view: MessageView, now: Instant) {
    let conversation = view.conversation_id;
    raise(&mut seen.highest, conversation, view.seq);
    let Some((sender, j)) = shared.parse_id(&view.client_msg_id) else {
        seen.foreign += 1;
        return;
    };
    if !seen.seen_seqs.insert((conversation, view.seq)) {
        seen.duplicates += 1;
        return;
    }
    let last = seen.last_seq.entry(conversation).or_insert(0);
    if view.seq <= *last {
        seen.out_of_order += 1;
    }
    *last = (*last).max(view.seq);
    if !seen.got.insert((sender, j)) {
        seen.duplicates += 1;
        return;
    }
    if let Some(latency) = shared.latency_of(sender, j, now) {
        shared.deliver_latency.record(latency);
    }
    shared.delivered.fetch_add(1, Ordering::Relaxed);
    shared
        .last_delivery_ns
        .fetch_max(shared.since_t0(now), Ordering::Relaxed);
}

fn raise(map: &mut HashMap<ConversationId, u64>, conversation: ConversationId, seq: u64) {
    let slot = map.entry(conversation).or_insert(0);
    *slot = (*slot).max(seq);
}

/// Waits for the window to close and then for every answer and delivery, or the drain
/// timeout. Returns whether everything arrived, and the server's peak memory seen.
async fn watch_until_done(
    shared: &Shared,
    writers: usize,
    drain: Duration,
    pid: Option<u32>,
) -> (bool, u64) {
    let mut peak = 0;
    let mut next_memory = Instant::now();
    loop {
        sleep(POLL).await;
        let now = Instant::now();
        if let Some(pid) = pid.filter(|_| now >= next_memory) {
            peak = peak.max(procstat::rss_bytes(pid).unwrap_or(0));
            next_memory = now + MEMORY_POLL;
        }
        if now < shared.end {
            continue;
        }
        let writers_done = shared.writers_done.load(Ordering::Relaxed) >= writers;
        let sent = shared.sent.load(Ordering::Relaxed);
        let answered = shared.answered.load(Ordering::Relaxed) >= sent;
        let delivered = shared.delivered.load(Ordering::Relaxed)
            >= shared.expected_deliveries.load(Ordering::Relaxed);
        if writers_done && answered && delivered {
            return (true, peak);
        }
        if now >= shared.end + drain {
            return (false, peak);
        }
    }
}

async fn join_writers(
    writers: Vec<tokio::task::JoinHandle<(Sink, u64)>>,
    drain: Duration,
) -> (Vec<Option<Sink>>, Vec<u64>) {
    let mut sinks = Vec::with_capacity(writers.len());
    let mut sent = Vec::with_capacity(writers.len());
    for writer in writers {
        // A writer blocked on a server that stopped reading is given up on, not waited for.
        match timeout(drain, writer).await {
            Ok(Ok((sink, count))) => {
                sinks.push(Some(sink));
                sent.push(count);
            }
            _ => {
                sinks.push(None);
                sent.push(0);
            }
        }
    }
    (sinks, sent)
}

/// Signs for what each connection received, as a real client would, so that the next run on
/// the same accounts has nothing to replay; then closes.
async fn close_all(
    sinks: Vec<Option<Sink>>,
    streams: Vec<Stream>,
    seen: &[Seen],
    encoding: tern_protocol::codec::Encoding,
) {
    let closing = sinks
        .into_iter()
        .zip(streams)
        .zip(seen)
        .filter_map(|((sink, stream), seen)| {
            let sink = sink?;
            let receipts: Vec<ClientFrame> = seen
                .highest
                .iter()
                .filter(|(_, seq)| **seq > 0)
                .map(|(c, seq)| ClientFrame::Receipt {
                    conversation_id: *c,
                    seq: *seq,
                })
                .collect();
            Some(async move {
                let Ok(mut socket) = sink.reunite(stream) else {
                    return;
                };
                let work = async {
                    for receipt in &receipts {
                        connect::send(&mut socket, encoding, receipt).await?;
                    }
                    socket.close(None).await?;
                    anyhow::Ok(())
                };
                let _ = timeout(Duration::from_secs(5), work).await;
            })
        });
    stream::iter(closing)
        .buffer_unordered(CONNECT_PARALLEL)
        .collect::<Vec<()>>()
        .await;
}

fn machine_share(start: Option<(u64, u64)>, end: Option<(u64, u64)>) -> Option<f64> {
    let ((busy0, total0), (busy1, total1)) = (start?, end?);
    let total = total1.checked_sub(total0)?;
    (total > 0).then(|| (busy1.saturating_sub(busy0)) as f64 / total as f64)
}

#[allow(clippy::too_many_arguments)]
fn tally(
    shared: &Shared,
    plan: &Plan,
    settings: &Settings,
    sent_by: Vec<u64>,
    seen: Vec<Seen>,
    drained: bool,
    server: Option<ServerUse>,
    loadgen_cpu_seconds: f64,
    machine_busy: Option<f64>,
) -> Outcome {
    let scheduled: u64 = shared
        .slots
        .iter()
        .flatten()
        .map(|s| shared.scheduled(*s))
        .sum();
    let sent: u64 = sent_by.iter().sum();
    let mut errors: HashMap<String, u64> = HashMap::new();
    let mut acked_messages = Vec::new();
    let (mut lost_deliveries, mut lost_messages, mut expected) = (0, 0, 0);
    for (sender, s) in seen.iter().enumerate() {
        for (code, count) in &s.errors {
            *errors.entry(code.clone()).or_default() += count;
        }
        let recipients = plan
            .recipients
            .get(sender)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for (conversation, seq, j) in &s.acks {
            let missing = recipients
                .iter()
                .filter(|r| !seen[**r].got.contains(&(sender, *j)))
                .count() as u64;
            expected += recipients.len() as u64;
            lost_deliveries += missing;
            lost_messages += u64::from(missing > 0);
            acked_messages.push((
                *conversation,
                *seq,
                format!("{}.{sender}.{j}", shared.run),
                sender,
            ));
        }
    }
    let acked = acked_messages.len() as u64;
    let error_total: u64 = errors.values().sum();
    let window = settings.duration;
    let per_s = |count: u64, last_ns: &AtomicU64| {
        let last = Duration::from_nanos(last_ns.load(Ordering::Relaxed));
        count as f64 / last.max(window).as_secs_f64()
    };
    Outcome {
        run: shared.run.clone(),
        connections: plan.destinations.len(),
        senders: shared.senders,
        offered_rate: settings.rate,
        window,
        scheduled,
        sent,
        acked,
        ack_flagged_duplicate: seen.iter().map(|s| s.ack_flagged_duplicate).sum(),
        errors,
        unanswered: sent.saturating_sub(acked + error_total),
        delivered: seen.iter().map(|s| s.got.len() as u64).sum(),
        expected_deliveries: expected,
        lost_deliveries,
        lost_messages,
        duplicates: seen.iter().map(|s| s.duplicates).sum(),
        out_of_order: seen.iter().map(|s| s.out_of_order).sum(),
        foreign: seen.iter().map(|s| s.foreign).sum(),
        unreadable: seen.iter().map(|s| s.unreadable).sum(),
        disconnects: seen.iter().filter_map(|s| s.ended.clone()).collect(),
        drained,
        acked_per_s: per_s(acked, &shared.last_ack_ns),
        delivered_per_s: per_s(
            seen.iter().map(|s| s.got.len() as u64).sum(),
            &shared.last_delivery_ns,
        ),
        ack_latency: shared.ack_latency.summary(),
        deliver_latency: shared.deliver_latency.summary(),
        server,
        loadgen_cpu_seconds,
        machine_busy,
        acked_messages,
    }
}

async fn stopped(done: &mut watch::Receiver<bool>) {
    let _ = done.wait_for(|d| *d).await;
}
