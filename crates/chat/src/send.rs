//! Sending a message: the one path shared by WebSocket sends and HTTP uploads.
//!
//! Requests queue into one writer thread per node, which takes whatever has queued while the
//! previous batch committed (group commit) and for each batch:
//!
//! 1. resolves the target conversation and checks that the sender is an active member;
//! 2. finds retries: a `(sender, client_msg_id)` already stored gets its first ack again;
//! 3. takes each message's seq from the segment allocator, in queue order;
//! 4. stores the whole batch in one write transaction;
//! 5. only then acks each sender and pushes each message to the members' connections.
//!
//! Because one thread allocates and commits in order, seqs within a conversation commit in
//! increasing order and every connection receives them in that order. Blocking database work
//! stays on this thread, never on the async runtime's workers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tern_db::{DbPool, write_transaction};
use tern_idgen::IdAllocator;
use tern_protocol::frames::Content;
use tern_protocol::{ConversationId, ErrorCode, MessageId, ServerFrame, UserId};
use tern_storage::messages::{self, Draft, MessageRow};
use tern_storage::{StorageError, conversations, friends, users};
use tokio::sync::{mpsc, oneshot};

use crate::hub::{Hub, Outgoing};
use crate::views::{content_to_columns, message_view};
use crate::{ChatError, clock};

/// Where a message goes.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    User(UserId),
    Conversation(ConversationId),
}

/// What the sender is told once the message is durably stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub client_msg_id: String,
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub seq: u64,
    pub server_time: i64,
    pub duplicate: bool,
}

impl Ack {
    fn of(row: &MessageRow, duplicate: bool) -> Ack {
        let view = message_view(row);
        Ack {
            client_msg_id: view.client_msg_id,
            message_id: view.message_id,
            conversation_id: view.conversation_id,
            seq: view.seq,
            server_time: row.created_at,
            duplicate,
        }
    }

    pub fn frame(&self) -> ServerFrame {
        ServerFrame::Ack {
            client_msg_id: self.client_msg_id.clone(),
            message_id: self.message_id,
            conversation_id: self.conversation_id,
            seq: self.seq,
            server_time: self.server_time,
            duplicate: self.duplicate,
        }
    }
}

/// Where the outcome of a send goes.
#[derive(Debug)]
pub enum Reply {
    /// Back to an awaiting caller (the HTTP path).
    Caller(oneshot::Sender<Result<Ack, ChatError>>),
    /// Into the sending connection's own queue, as an `ack` or `error` frame, so a WebSocket
    /// client can pipeline sends without a task per message.
    Session { user: UserId, session: u64 },
}

/// Who is behind a send; it decides what the message may carry and which checks apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client's `send`: text or custom content.
    Client,
    /// An HTTP upload: a picture or file whose attachment the server has stored.
    Upload,
    /// A notice the server writes (member joined, message recalled...).
    System,
}

/// A change committed in the same transaction as a system notice, so that members, seqs and
/// notices can never disagree about the order things happened in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// These users become members; they see the conversation from the notice on.
    Join(Vec<UserId>),
    /// The user stops being a member; they can still read up to and including the notice.
    Leave(UserId),
    /// The sender's message at this seq is recalled.
    Recall(u64),
}

/// One message waiting for the writer.
#[derive(Debug)]
pub struct SendRequest {
    pub sender: UserId,
    pub origin: Origin,
    /// Applied with the message; a request with an effect is committed in a batch of its own.
    pub effect: Option<Effect>,
    /// The sending connection, which does not get its own message pushed back.
    pub sender_session: Option<u64>,
    pub target: Target,
    pub client_msg_id: String,
    pub content: Content,
    pub reply: Reply,
}

/// Limits on what one send may carry.
#[derive(Clone, Debug)]
pub struct SendLimits {
    pub max_text_bytes: usize,
    pub max_client_msg_id_len: usize,
}

impl SendRequest {
    /// Checks what can be checked without the database.
    pub fn validate(&self, limits: &SendLimits) -> Result<(), ChatError> {
        let id = &self.client_msg_id;
        if id.is_empty() || id.len() > limits.max_client_msg_id_len {
            return Err(invalid(format!(
                "client_msg_id must be 1 to {} bytes",
                limits.max_client_msg_id_len
            )));
        }
        let too_large = |what: &str| {
            ChatError::refused(ErrorCode::FrameTooLarge, format!("{what} is over {} bytes", limits.max_text_bytes))
        };
        match (&self.content, self.origin) {
            (Content::Text { text }, Origin::Client) => {
                if text.trim().is_empty() {
                    return Err(invalid("text is empty"));
                }
                if has_forbidden_control(text) {
                    return Err(invalid("text may not contain control characters other than tab and newline"));
                }
                if text.len() > limits.max_text_bytes {
                    return Err(too_large("text"));
                }
                Ok(())
            }
            (Content::Custom { custom_type, payload }, Origin::Client) => {
                let tag_ok = (1..=64).contains(&custom_type.len())
                    && custom_type.chars().all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c));
                if !tag_ok {
                    return Err(invalid("custom_type must be 1 to 64 letters, digits or ._:/-"));
                }
                if payload.len() > limits.max_text_bytes {
                    return Err(too_large("payload"));
                }
                Ok(())
            }
            (Content::Image { .. } | Content::File { .. }, Origin::Upload) => Ok(()),
            (Content::System { .. }, Origin::System) => Ok(()),
            (Content::Image { .. } | Content::File { .. }, _) => {
                Err(invalid("pictures and files are sent with an HTTP upload"))
            }
            _ => Err(invalid("this kind of message cannot be sent")),
        }
    }
}

/// Control characters that only make sense to a terminal (escape sequences, bell, NUL, a lone
/// carriage return that overwrites a line): refused in text so that no client's display can
/// be driven by another user. Tab, newline and carriage return before a newline are text.
fn has_forbidden_control(text: &str) -> bool {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let allowed = match c {
            '\t' | '\n' => true,
            '\r' => chars.peek() == Some(&'\n'),
            '\u{2028}' | '\u{2029}' => false,
            c => !c.is_control(),
        };
        if !allowed {
            return true;
        }
    }
    false
}

fn invalid(message: impl Into<String>) -> ChatError {
    ChatError::refused(ErrorCode::InvalidRequest, message)
}

/// The handle through which everything sends.
#[derive(Clone, Debug)]
pub struct Sender {
    queue: mpsc::Sender<SendRequest>,
    enqueue_timeout: Duration,
}

impl Sender {
    /// Queues a request. A full queue waits briefly, then refuses with `unavailable`: the
    /// writer is behind, and a bounded queue keeps that from becoming unbounded memory.
    pub async fn submit(&self, request: SendRequest) -> Result<(), (ChatError, SendRequest)> {
        match self.queue.send_timeout(request, self.enqueue_timeout).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(r)) => {
                Err((ChatError::Unavailable("send queue is full".into()), r))
            }
            Err(mpsc::error::SendTimeoutError::Closed(r)) => {
                Err((ChatError::Unavailable("server is shutting down".into()), r))
            }
        }
    }
}

/// Settings of the writer thread.
#[derive(Clone, Debug)]
pub struct WriterSettings {
    pub queue_capacity: usize,
    pub max_batch: usize,
    pub enqueue_timeout: Duration,
}

/// Starts the writer thread; it ends when every [`Sender`] is dropped and the queue drained.
pub fn start_writer(
    pool: DbPool,
    ids: IdAllocator,
    hub: Arc<Hub>,
    settings: &WriterSettings,
) -> std::io::Result<(Sender, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(settings.queue_capacity);
    let mut writer = Writer { pool, ids, hub, direct: HashMap::new(), members: HashMap::new(), max_batch: settings.max_batch };
    let handle = std::thread::Builder::new()
        .name("tern-writer".into())
        .spawn(move || writer.run(rx))?;
    Ok((Sender { queue: tx, enqueue_timeout: settings.enqueue_timeout }, handle))
}

/// Bounds the memory of the direct-conversation cache; it is cleared when full.
const DIRECT_CACHE_MAX: usize = 100_000;

struct Writer {
    pool: DbPool,
    ids: IdAllocator,
    hub: Arc<Hub>,
    direct: HashMap<(UserId, UserId), ConversationId>,
    /// Active members of the current batch's conversations: checked before the commit, used
    /// for the fan-out after it.
    members: HashMap<ConversationId, Vec<UserId>>,
    max_batch: usize,
}

/// A request that passed the checks, with its conversation and members resolved.
struct Accepted {
    request: SendRequest,
    conversation: ConversationId,
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<SendRequest>) {
        // A request with an effect (a membership change, a recall) is committed alone, so
        // the membership checked for a batch holds for every message in it.
        let mut carried: Option<SendRequest> = None;
        loop {
            let first = match carried.take() {
                Some(request) => request,
                None => match rx.blocking_recv() {
                    Some(request) => request,
                    None => break,
                },
            };
            let mut batch = vec![first];
            while batch[0].effect.is_none() && batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(request) if request.effect.is_some() => {
                        carried = Some(request);
                        break;
                    }
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.process(batch);
        }
        tracing::debug!("send queue closed; writer stops");
    }

    fn process(&mut self, batch: Vec<SendRequest>) {
        let Some(fresh) = self.check(batch) else { return };
        let effect = fresh.first().and_then(|a| a.request.effect.clone());
        // No connection is held here: a conversation's first seq is claimed on this thread
        // with a connection of its own, and holding one while waiting for another would
        // starve a small pool (with one connection, every first send would time out).
        let (mut drafts, waiting) = self.allocate(fresh);
        if drafts.is_empty() {
            return;
        }
        let mut conn = match self.pool.get() {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(error = %err, batch = drafts.len(), "no database connection to commit sends");
                let failure = ChatError::Unavailable(err.to_string());
                for w in waiting {
                    let id = w.request.client_msg_id.clone();
                    self.answer(w.request.reply, Err(clone_err(&failure)), &id);
                }
                return;
            }
        };
        let mut committed = commit(&mut conn, &drafts, effect.as_ref());
        for _ in 0..SEQ_BEHIND_RETRIES {
            let Err(StorageError::SeqBehind { conversation, last_seq }) = committed else { break };
            // Another node committed higher seqs in this conversation: take new ones above
            // its last, so commit order and seq order stay the same.
            tracing::debug!(conv.id = conversation.0, last_seq, "seqs fell behind another writer; renumbering");
            if let Err(err) = self.renumber(&mut drafts, conversation, last_seq) {
                committed = Err(StorageError::Unavailable(err.to_string()));
                break;
            }
            committed = commit(&mut conn, &drafts, effect.as_ref());
        }
        match committed {
            Ok(rows) => {
                if let (Some(Effect::Join(users)), Some(row)) = (&effect, rows.first()) {
                    // New members get the notice of their own arrival.
                    let members = self.members.entry(ConversationId(row.conversation_id)).or_default();
                    members.extend(users.iter().filter(|u| !members.contains(u)).collect::<Vec<_>>());
                }
                self.publish(rows, waiting)
            }
            Err(err) if effect.is_some() => {
                tracing::warn!(error = %err, "change failed to commit");
                let failure = ChatError::from(err);
                for w in waiting {
                    let id = w.request.client_msg_id.clone();
                    self.answer(w.request.reply, Err(clone_err(&failure)), &id);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, batch = drafts.len(), "batch commit failed; retrying one by one");
                self.commit_one_by_one(&mut conn, drafts, waiting);
            }
        }
    }

    /// Gives the conversation's drafts new seqs above `floor`, in their order.
    fn renumber(&self, drafts: &mut [Draft], conversation: ConversationId, floor: i64) -> Result<(), tern_idgen::IdgenError> {
        let mut floor = u64::try_from(floor).unwrap_or_default();
        for draft in drafts.iter_mut().filter(|d| d.conversation_id == conversation) {
            // Seqs below the floor were skipped by another writer; the allocator's buffered
            // ranges run out within two segments, after which its claims start above it.
            let mut seq = self.ids.next_seq(conversation.0)?;
            while seq <= floor {
                seq = self.ids.next_seq(conversation.0)?;
            }
            draft.seq = i64::try_from(seq).unwrap_or(i64::MAX);
            floor = seq;
        }
        Ok(())
    }

    /// Resolves the batch and answers retries, on a connection given back before returning;
    /// `None` when nothing is left to store.
    fn check(&mut self, batch: Vec<SendRequest>) -> Option<Vec<Accepted>> {
        let mut conn = match self.pool.get() {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(error = %err, batch = batch.len(), "no database connection for sends");
                let failure = ChatError::Unavailable(err.to_string());
                batch.into_iter().for_each(|r| self.answer(r.reply, Err(clone_err(&failure)), &r.client_msg_id));
                return None;
            }
        };
        let accepted = self.resolve(&mut conn, batch);
        let (fresh, retried) = match self.split_retries(&mut conn, accepted) {
            Ok(parts) => parts,
            Err(failed) => {
                self.fail_all(failed.0, failed.1);
                return None;
            }
        };
        for (request, row) in retried {
            self.answer(request.reply, Ok(Ack::of(&row, true)), "");
        }
        Some(fresh)
    }

    /// Finds each request's conversation and drops those the sender may not write to.
    fn resolve(&mut self, conn: &mut tern_db::PooledConn, batch: Vec<SendRequest>) -> Vec<Accepted> {
        let mut resolved = Vec::with_capacity(batch.len());
        for request in batch {
            match self.conversation_of(conn, &request) {
                Ok(conversation) => resolved.push(Accepted { request, conversation }),
                Err(err) => {
                    let id = request.client_msg_id.clone();
                    self.answer(request.reply, Err(err), &id);
                }
            }
        }
        let conversations: Vec<ConversationId> = resolved.iter().map(|a| a.conversation).collect();
        let members = match conversations::active_members_of(conn, &conversations) {
            Ok(members) => members,
            Err(err) => {
                let failure = ChatError::from(err);
                for a in resolved {
                    self.answer(a.request.reply, Err(clone_err(&failure)), &a.request.client_msg_id);
                }
                return Vec::new();
            }
        };
        self.members = members;
        let blocked = match self.blocked_in(conn, &resolved) {
            Ok(blocked) => blocked,
            Err(err) => {
                let failure = ChatError::from(err);
                for a in resolved {
                    self.answer(a.request.reply, Err(clone_err(&failure)), &a.request.client_msg_id);
                }
                return Vec::new();
            }
        };
        let mut accepted = Vec::with_capacity(resolved.len());
        for a in resolved {
            let is_member =
                self.members.get(&a.conversation).is_some_and(|m| m.contains(&a.request.sender));
            let refusal = if !is_member {
                Some(ChatError::refused(ErrorCode::NotMember, "not a member of this conversation"))
            } else if blocked.contains(&(a.conversation, a.request.sender)) {
                Some(ChatError::refused(ErrorCode::Forbidden, "the recipient does not accept your messages"))
            } else {
                None
            };
            match refusal {
                None => accepted.push(a),
                Some(err) => self.answer(a.request.reply, Err(err), &a.request.client_msg_id),
            }
        }
        accepted
    }

    /// The `(conversation, sender)` pairs of one-to-one conversations whose other member has
    /// blocked the sender.
    fn blocked_in(
        &self,
        conn: &mut tern_db::PooledConn,
        resolved: &[Accepted],
    ) -> Result<Vec<(ConversationId, UserId)>, StorageError> {
        let conversations: Vec<ConversationId> = resolved.iter().map(|a| a.conversation).collect();
        let kinds = conversations::kinds_of(conn, &conversations)?;
        let mut pairs = Vec::new();
        for a in resolved.iter().filter(|a| a.request.origin == Origin::Client || a.request.origin == Origin::Upload) {
            if kinds.get(&a.conversation).map(String::as_str) != Some(conversations::KIND_DIRECT) {
                continue;
            }
            let peers = self.members.get(&a.conversation).into_iter().flatten();
            for peer in peers.filter(|p| **p != a.request.sender) {
                pairs.push((a.conversation, *peer, a.request.sender));
            }
        }
        let lookup: Vec<(UserId, UserId)> = pairs.iter().map(|(_, peer, sender)| (*peer, *sender)).collect();
        let blocks = friends::blocked_pairs(conn, &lookup)?;
        Ok(pairs
            .into_iter()
            .filter(|(_, peer, sender)| blocks.contains(&(*peer, *sender)))
            .map(|(conversation, _, sender)| (conversation, sender))
            .collect())
    }

    fn conversation_of(
        &mut self,
        conn: &mut tern_db::PooledConn,
        request: &SendRequest,
    ) -> Result<ConversationId, ChatError> {
        let peer = match request.target {
            Target::Conversation(id) => return Ok(id),
            Target::User(peer) => peer,
        };
        if peer == request.sender {
            return Err(ChatError::refused(ErrorCode::Forbidden, "cannot send to yourself"));
        }
        let key = if request.sender < peer { (request.sender, peer) } else { (peer, request.sender) };
        if let Some(id) = self.direct.get(&key) {
            return Ok(*id);
        }
        if users::find_user(conn, peer)?.is_none() {
            return Err(ChatError::refused(ErrorCode::NotFound, "no such user"));
        }
        let id = conversations::direct_conversation(conn, key.0, key.1, clock::now_ms())?;
        if self.direct.len() >= DIRECT_CACHE_MAX {
            self.direct.clear();
        }
        self.direct.insert(key, id);
        Ok(id)
    }

    /// Separates first sends from retries of messages already stored. Two sends with the
    /// same client id inside one batch are caught later, in `allocate`.
    #[allow(clippy::type_complexity)]
    fn split_retries(
        &self,
        conn: &mut tern_db::PooledConn,
        accepted: Vec<Accepted>,
    ) -> Result<(Vec<Accepted>, Vec<(SendRequest, MessageRow)>), (Vec<Accepted>, ChatError)> {
        let keys: Vec<(UserId, &str)> =
            accepted.iter().map(|a| (a.request.sender, a.request.client_msg_id.as_str())).collect();
        let stored = match messages::find_by_client_ids(conn, &keys) {
            Ok(rows) => rows,
            Err(err) => return Err((accepted, err.into())),
        };
        let stored: HashMap<(i64, &str), &MessageRow> =
            stored.iter().map(|r| ((r.sender_id, r.client_msg_id.as_str()), r)).collect();
        let mut fresh = Vec::with_capacity(accepted.len());
        let mut retried = Vec::new();
        for a in accepted {
            let found = stored.get(&(a.request.sender.0, a.request.client_msg_id.as_str())).cloned();
            match found {
                Some(row) => retried.push((a.request, row.clone())),
                None => fresh.push(a),
            }
        }
        Ok((fresh, retried))
    }

    /// Takes a seq for each first send, in queue order.
    fn allocate(&self, fresh: Vec<Accepted>) -> (Vec<Draft>, Vec<Waiting>) {
        let now = clock::now_ms();
        let mut drafts = Vec::with_capacity(fresh.len());
        let mut waiting = Vec::with_capacity(fresh.len());
        let mut firsts: HashMap<(UserId, String), usize> = HashMap::new();
        for a in fresh {
            let key = (a.request.sender, a.request.client_msg_id.clone());
            if let Some(&first) = firsts.get(&key) {
                waiting.push(Waiting { request: a.request, draft: None, duplicate_of: Some(first) });
                continue;
            }
            let seq = match self.ids.next_seq(a.conversation.0) {
                Ok(seq) => seq,
                Err(err) => {
                    tracing::warn!(error = %err, conv.id = a.conversation.0, "no seq for a send");
                    let id = a.request.client_msg_id.clone();
                    self.answer(a.request.reply, Err(err.into()), &id);
                    continue;
                }
            };
            let (kind, body, meta) = content_to_columns(&a.request.content);
            firsts.insert(key, drafts.len());
            drafts.push(Draft {
                conversation_id: a.conversation,
                seq: i64::try_from(seq).unwrap_or(i64::MAX),
                sender_id: a.request.sender,
                client_msg_id: a.request.client_msg_id.clone(),
                kind,
                body,
                meta,
                created_at: now,
            });
            waiting.push(Waiting { request: a.request, draft: Some(drafts.len() - 1), duplicate_of: None });
        }
        (drafts, waiting)
    }

    /// After a commit: ack every sender, then push each message to its members.
    fn publish(&self, rows: Vec<MessageRow>, waiting: Vec<Waiting>) {
        for w in waiting {
            let (index, duplicate) = match (w.draft, w.duplicate_of) {
                (Some(i), _) => (i, false),
                (None, Some(i)) => (i, true),
                (None, None) => continue,
            };
            let Some(row) = rows.get(index) else { continue };
            let sender = w.request.sender;
            let session = w.request.sender_session;
            self.answer(w.request.reply, Ok(Ack::of(row, duplicate)), "");
            if !duplicate {
                self.fan_out(row, sender, session);
            }
        }
    }

    fn fan_out(&self, row: &MessageRow, sender: UserId, session: Option<u64>) {
        let conversation = ConversationId(row.conversation_id);
        let Some(members) = self.members.get(&conversation) else { return };
        let frame = Outgoing::new(ServerFrame::Message(message_view(row)));
        for member in members {
            let skip = if *member == sender { session } else { None };
            self.hub.deliver(*member, &frame, skip);
        }
    }

    /// A batch failed as a whole (a retry raced in from another node, say): store each
    /// message in its own transaction so one bad message cannot fail the others.
    fn commit_one_by_one(&self, conn: &mut tern_db::PooledConn, drafts: Vec<Draft>, waiting: Vec<Waiting>) {
        let outcomes: Vec<Result<(MessageRow, bool), ChatError>> =
            drafts.into_iter().map(|draft| commit_single(conn, draft)).collect();
        for w in waiting {
            let (index, repeat) = match (w.draft, w.duplicate_of) {
                (Some(i), _) => (i, false),
                (None, Some(i)) => (i, true),
                (None, None) => continue,
            };
            let id = w.request.client_msg_id.clone();
            match outcomes.get(index) {
                Some(Ok((row, stored_before))) => {
                    let duplicate = repeat || *stored_before;
                    let (sender, session) = (w.request.sender, w.request.sender_session);
                    self.answer(w.request.reply, Ok(Ack::of(row, duplicate)), "");
                    if !duplicate {
                        self.fan_out(row, sender, session);
                    }
                }
                Some(Err(err)) => self.answer(w.request.reply, Err(clone_err(err)), &id),
                None => self.answer(w.request.reply, Err(ChatError::Internal("no outcome".into())), &id),
            }
        }
    }

    fn fail_all(&self, accepted: Vec<Accepted>, err: ChatError) {
        tracing::warn!(error = %err, batch = accepted.len(), "sends failed before commit");
        for a in accepted {
            self.answer(a.request.reply, Err(clone_err(&err)), &a.request.client_msg_id);
        }
    }

    fn answer(&self, reply: Reply, outcome: Result<Ack, ChatError>, client_msg_id: &str) {
        match reply {
            Reply::Caller(tx) => {
                let _ = tx.send(outcome);
            }
            Reply::Session { user, session } => {
                let frame = match outcome {
                    Ok(ack) => ack.frame(),
                    Err(err) => ServerFrame::Error(
                        err.to_wire().answering(Some(client_msg_id.to_owned())),
                    ),
                };
                self.hub.deliver_to_session(user, session, &Outgoing::new(frame));
            }
        }
    }
}

/// How often a batch is renumbered when another writer's commits overtake it before it gives
/// up with `unavailable`. With one writer per conversation it never happens.
const SEQ_BEHIND_RETRIES: usize = 8;

/// Stores the drafts, and the effect of a notice, in one write transaction.
fn commit(
    conn: &mut tern_db::DbConnection,
    drafts: &[Draft],
    effect: Option<&Effect>,
) -> Result<Vec<MessageRow>, StorageError> {
    write_transaction(conn, |c| {
        let rows = messages::append(c, drafts.to_vec())?;
        if let (Some(effect), Some(row)) = (effect, rows.first()) {
            apply_effect(c, effect, row)?;
        }
        Ok(rows)
    })
}

/// Commits what a system notice stands for, in the notice's own transaction.
fn apply_effect(conn: &mut tern_db::DbConnection, effect: &Effect, notice: &MessageRow) -> Result<(), StorageError> {
    let conversation = ConversationId(notice.conversation_id);
    match effect {
        Effect::Join(users) => conversations::join(conn, conversation, users, notice.seq - 1, notice.created_at),
        Effect::Leave(user) => conversations::leave(conn, conversation, *user, notice.seq),
        Effect::Recall(seq) => {
            let seq = i64::try_from(*seq).unwrap_or(i64::MAX);
            messages::recall(conn, conversation, seq, notice.created_at).map(|_| ())
        }
    }
}

/// Stores one draft unless its client id is already stored; says which happened.
fn commit_single(conn: &mut tern_db::PooledConn, draft: Draft) -> Result<(MessageRow, bool), ChatError> {
    let key = [(draft.sender_id, draft.client_msg_id.as_str())];
    if let Some(row) = messages::find_by_client_ids(conn, &key)?.pop() {
        return Ok((row, true));
    }
    let mut rows = write_transaction(conn, |c| messages::append(c, vec![draft.clone()]))
        .inspect_err(|err| tracing::warn!(error = %err, "send failed to commit"))?;
    rows.pop().map(|row| (row, false)).ok_or_else(|| ChatError::Internal("insert returned nothing".into()))
}

/// A first send or an in-batch retry, waiting for its draft to commit.
struct Waiting {
    request: SendRequest,
    /// Index of this request's own draft.
    draft: Option<usize>,
    /// Index of the draft this request repeats.
    duplicate_of: Option<usize>,
}

fn clone_err(err: &ChatError) -> ChatError {
    match err {
        ChatError::Refused(w) => ChatError::Refused(w.clone()),
        ChatError::Unavailable(m) => ChatError::Unavailable(m.clone()),
        ChatError::Internal(m) => ChatError::Internal(m.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::has_forbidden_control;

    #[test]
    fn terminal_control_characters_are_refused_in_text() {
        for ok in ["plain", "tab\there", "two\nlines", "windows\r\nline", "emoji 🦀"] {
            assert!(!has_forbidden_control(ok), "{ok:?}");
        }
        for bad in ["esc \u{1b}[2J", "bell \u{7}", "nul \0", "lone \r overwrite", "sep \u{2028}", "next \u{85}"] {
            assert!(has_forbidden_control(bad), "{bad:?}");
        }
    }
}
