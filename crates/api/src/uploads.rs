//! Pictures and files: one multipart request uploads the content and creates the message.
//!
//! The form carries text fields `client_msg_id`, `to_user` or `conversation_id`, `kind`
//! (`image` or `file`) and one file part, in any order. The file part is streamed to a
//! temporary file as it arrives, hashed on the way, and never held in memory; the stream stops
//! as soon as it passes the size cap. Nothing is kept until the target is resolved and the
//! sender's membership checked, and, for pictures, until the bytes prove to be a PNG, JPEG,
//! GIF or WebP that decodes within the pixel limit. Then the content moves to the
//! attachment's folder, its row is written, and the message goes through the same send path
//! as every other message, so a retried upload gets the first ack back and its copy is
//! deleted.
//!
//! Known limits. If the server stops after an upload's row is written but before its message
//! commits, the row and its files stay behind; they are never served (no committed message
//! carries them), but nothing sweeps them yet. A recalled message's file also stays on disk.
//! There is no per-user quota or cap on concurrent uploads, and no timeout on a body that
//! arrives slowly: the header-read timeout ends at the headers.

use std::pin::pin;
use std::sync::Arc;

use bytes::Buf;
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tern_chat::{Ack, Authenticated, Chat, ChatError, Origin, Target};
use tern_protocol::frames::{Attachment, Content};
use tern_protocol::{ConversationId, ErrorCode, UserId, WireError};
use tern_storage::attachments::{self, AttachmentRow};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use warp::multipart::{FormData, Part};
use warp::{Filter, Rejection, Reply};

use crate::auth::{authenticated, with_chat};
use crate::errors::{ApiError, reject};
use crate::files::{Files, TempFile, new_id};
use crate::media::{self, Picture, PictureError};
use crate::messages::AckBody;

/// Room in a form for its text fields and part headers, on top of the file size cap.
pub const FORM_OVERHEAD_BYTES: u64 = 64 * 1024;

/// The longest text field accepted.
const FIELD_MAX_BYTES: usize = 256;

/// The write buffer of an arriving file: with multipart's own small buffers, about what one
/// upload holds in memory however large the file is.
pub const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// After a refusal, how much of the rest of the body is read and discarded so the client
/// can read the answer instead of a reset connection. A larger remainder is left unread and
/// the connection closes.
const DRAIN_LIMIT_BYTES: u64 = 1024 * 1024;

/// Pictures decoded at once; decoding is CPU- and memory-heavy.
const DECODE_SLOTS: usize = 2;

/// The upload service: the folders and limits, and the decoding slots.
pub struct Uploads {
    files: Files,
    decoding: Semaphore,
}

impl Uploads {
    pub fn new(files: Files) -> Arc<Uploads> {
        Arc::new(Uploads {
            files,
            decoding: Semaphore::new(DECODE_SLOTS),
        })
    }

    /// The largest file part any upload may carry, before its kind is known.
    fn any_cap(&self) -> u64 {
        self.files.max_upload_bytes.max(self.files.max_image_bytes)
    }

    fn cap_for(&self, kind: Option<Kind>) -> u64 {
        match kind {
            Some(Kind::Image) => self.files.max_image_bytes,
            Some(Kind::File) => self.files.max_upload_bytes,
            None => self.any_cap(),
        }
    }
}

pub fn routes(
    chat: Arc<Chat>,
    uploads: Arc<Uploads>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let form_limit = uploads.any_cap().saturating_add(FORM_OVERHEAD_BYTES);
    warp::path!("uploads")
        .and(warp::post())
        .and(with_chat(chat.clone()))
        .and(authenticated(chat))
        .and(warp::any().map(move || uploads.clone()))
        .and(warp::multipart::form().max_length(form_limit))
        .and_then(upload)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Image,
    File,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Image => attachments::KIND_IMAGE,
            Kind::File => attachments::KIND_FILE,
        }
    }
}

/// What the form carried, as far as it has been read.
#[derive(Default)]
struct Form {
    client_msg_id: Option<String>,
    to_user: Option<UserId>,
    conversation_id: Option<ConversationId>,
    kind: Option<Kind>,
    file: Option<Received>,
    /// The target, once resolved and checked.
    conversation: Option<ConversationId>,
}

/// The file part, on disk in the temporary folder.
struct Received {
    temp: TempFile,
    size: u64,
    sha256: String,
    head: Vec<u8>,
    file_name: Option<String>,
    declared_type: Option<String>,
}

#[derive(Debug, Serialize)]
struct UploadReply {
    #[serde(flatten)]
    ack: AckBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    attachment: Option<Attachment>,
}

async fn upload(
    chat: Arc<Chat>,
    auth: Authenticated,
    uploads: Arc<Uploads>,
    mut body: FormData,
) -> Result<impl Reply, Rejection> {
    let mut drain = Drain {
        budget: DRAIN_LIMIT_BYTES,
    };
    let form = match read_form(&chat, &auth, &uploads, &mut body, &mut drain).await {
        Ok(form) => form,
        Err(err) => {
            drain.rest(&mut body).await;
            return Err(reject(err));
        }
    };
    // Once everything has arrived the rest runs to its end even if the client goes away, so
    // an upload is either sent or cleaned up, never left half stored.
    let stored = tokio::spawn(async move { store(&chat, &auth, &uploads, form).await }).await;
    let reply = stored
        .map_err(|err| reject(internal(format!("storing the upload stopped: {err}"))))?
        .map_err(reject)?;
    Ok(warp::reply::json(&reply))
}

/// Reads every part, streaming the file part to disk and resolving the target as soon as
/// it is known, so a refused sender's file is not kept.
async fn read_form(
    chat: &Chat,
    auth: &Authenticated,
    uploads: &Uploads,
    body: &mut FormData,
    drain: &mut Drain,
) -> Result<Form, ApiError> {
    let mut form = Form::default();
    while let Some(part) = body.next().await {
        let part = part.map_err(malformed)?;
        let name = part.name().to_owned();
        if part.filename().is_some() || name == "file" {
            if form.file.is_some() {
                drain.part(part).await;
                return Err(invalid_field("an upload carries one file"));
            }
            if let Err(err) = resolve(chat, auth, &mut form).await {
                drain.part(part).await;
                return Err(err);
            }
            let cap = uploads.cap_for(form.kind);
            form.file =
                Some(receive(part, uploads.files.temp_path(), cap, form.kind, drain).await?);
            continue;
        }
        match name.as_str() {
            "client_msg_id" => set_once(&mut form.client_msg_id, &name, text(part).await?)?,
            "to_user" => set_once(
                &mut form.to_user,
                &name,
                UserId(parse_id(&name, &text(part).await?)?),
            )?,
            "conversation_id" => {
                let id = ConversationId(parse_id(&name, &text(part).await?)?);
                set_once(&mut form.conversation_id, &name, id)?
            }
            "kind" => {
                let kind = match text(part).await?.as_str() {
                    "image" => Kind::Image,
                    "file" => Kind::File,
                    _ => return Err(invalid_field("kind must be image or file")),
                };
                set_once(&mut form.kind, &name, kind)?
            }
            // Fields this server does not know are read past, not stored.
            _ => drain.part(part).await,
        }
    }
    Ok(form)
}

/// Resolves and checks the target once the form has named one.
async fn resolve(chat: &Chat, auth: &Authenticated, form: &mut Form) -> Result<(), ApiError> {
    if form.conversation.is_some() {
        return Ok(());
    }
    let target = match (form.to_user, form.conversation_id) {
        (None, None) => return Ok(()),
        (Some(user), None) => Target::User(user),
        (None, Some(conversation)) => Target::Conversation(conversation),
        (Some(_), Some(_)) => {
            return Err(invalid_field(
                "give exactly one of to_user and conversation_id",
            ));
        }
    };
    form.conversation = Some(chat.resolve_target(auth.user, target).await?);
    Ok(())
}

/// Streams the file part to a temporary file, hashing it on the way. Passing `cap` stops
/// the copy at once and deletes what was written. When the kind is known to be a picture,
/// bytes that are not one are refused as soon as the first few have arrived.
async fn receive(
    part: Part,
    path: std::path::PathBuf,
    cap: u64,
    kind: Option<Kind>,
    drain: &mut Drain,
) -> Result<Received, ApiError> {
    let file_name = part.filename().map(str::to_owned);
    let declared_type = part.content_type().map(str::to_owned);
    let temp = TempFile::new(path);
    let file = tokio::fs::File::create(temp.path())
        .await
        .map_err(storage_failure)?;
    let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(media::SNIFF_BYTES);
    let mut size = 0u64;
    let mut stream = pin!(part.stream());
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(malformed)?;
        while chunk.has_remaining() {
            let bytes = chunk.chunk();
            let n = bytes.len();
            size += n as u64;
            if size > cap {
                drop(temp);
                drain.stream(stream).await;
                return Err(too_large(format!(
                    "the file is over the limit of {cap} bytes"
                )));
            }
            hasher.update(bytes);
            let wanted = media::SNIFF_BYTES.saturating_sub(head.len()).min(n);
            head.extend_from_slice(&bytes[..wanted]);
            out.write_all(bytes).await.map_err(storage_failure)?;
            chunk.advance(n);
        }
        if kind == Some(Kind::Image)
            && head.len() == media::SNIFF_BYTES
            && media::sniff(&head).is_none()
        {
            drop(temp);
            drain.stream(stream).await;
            return Err(not_a_picture());
        }
    }
    out.flush().await.map_err(storage_failure)?;
    out.into_inner().sync_all().await.map_err(storage_failure)?;
    let sha256 = hex::encode(hasher.finalize());
    Ok(Received {
        temp,
        size,
        sha256,
        head,
        file_name,
        declared_type,
    })
}

/// Everything is in: checks what is left, keeps the content, writes the row, sends the
/// message and, once it is committed, links the row to it.
async fn store(
    chat: &Chat,
    auth: &Authenticated,
    uploads: &Uploads,
    mut form: Form,
) -> Result<UploadReply, ApiError> {
    resolve(chat, auth, &mut form).await?;
    let client_msg_id = form
        .client_msg_id
        .take()
        .ok_or_else(|| invalid_field("client_msg_id is required"))?;
    let max_id = chat.config.limits.max_client_msg_id_len;
    if client_msg_id.is_empty() || client_msg_id.len() > max_id {
        return Err(invalid_field(format!(
            "client_msg_id must be 1 to {max_id} bytes"
        )));
    }
    let conversation = form
        .conversation
        .ok_or_else(|| invalid_field("give exactly one of to_user and conversation_id"))?;
    let kind = form
        .kind
        .ok_or_else(|| invalid_field("kind is required: image or file"))?;
    let received = form
        .file
        .take()
        .ok_or_else(|| invalid_field("the file part is missing"))?;
    if received.size > uploads.cap_for(Some(kind)) {
        let cap = uploads.cap_for(Some(kind));
        return Err(too_large(format!(
            "the {} is over the limit of {cap} bytes",
            kind.as_str()
        )));
    }

    let id = new_id();
    let (attachment, thumbnail) = describe(uploads, &id, kind, &received).await?;
    keep(&uploads.files, &id, received.temp, thumbnail).await?;
    let row = AttachmentRow {
        id: id.clone(),
        conversation_id: conversation.0,
        uploader_id: auth.user.0,
        kind: kind.as_str().to_owned(),
        name: attachment.name.clone(),
        mime: attachment.mime.clone(),
        size: i64::try_from(attachment.size).unwrap_or(i64::MAX),
        sha256: attachment.sha256.clone(),
        width: attachment.width.map(i64::from),
        height: attachment.height.map(i64::from),
        thumbnail: attachment.thumbnail,
        seq: None,
        created_at: tern_chat::clock::now_ms(),
    };
    if let Err(err) = chat
        .blocking(move |conn| Ok(attachments::insert(conn, &row)?))
        .await
    {
        uploads.files.remove(&id).await;
        return Err(err.into());
    }

    let content = match kind {
        Kind::Image => Content::Image {
            attachment: attachment.clone(),
        },
        Kind::File => Content::File {
            attachment: attachment.clone(),
        },
    };
    let target = Target::Conversation(conversation);
    let sent = chat
        .send_as(
            auth.user,
            Origin::Upload,
            None,
            target,
            client_msg_id,
            content,
        )
        .await;
    match sent {
        Ok(ack) if !ack.duplicate => {
            link(chat, &id, &ack).await;
            tracing::info!(
                user.id = auth.user.0,
                conv.id = ack.conversation_id.0,
                attachment.id = %id,
                kind = kind.as_str(),
                size_bytes = attachment.size,
                "upload stored"
            );
            Ok(UploadReply {
                ack: ack.into(),
                attachment: Some(attachment),
            })
        }
        Ok(ack) => {
            // A retry of an upload whose message exists: the first one stands.
            forget(chat, uploads, &id).await;
            let first = original_attachment(chat, &ack).await;
            Ok(UploadReply {
                ack: ack.into(),
                attachment: first,
            })
        }
        Err(err) => {
            forget(chat, uploads, &id).await;
            Err(err.into())
        }
    }
}

/// The attachment as messages describe it, and the thumbnail to keep with it. Pictures are
/// checked by their bytes and decoded (off the runtime, a few at a time).
async fn describe(
    uploads: &Uploads,
    id: &str,
    kind: Kind,
    received: &Received,
) -> Result<(Attachment, Option<Vec<u8>>), ApiError> {
    let mut attachment = Attachment {
        attachment_id: id.to_owned(),
        name: String::new(),
        mime: String::new(),
        size: received.size,
        sha256: received.sha256.clone(),
        width: None,
        height: None,
        thumbnail: false,
    };
    if kind == Kind::File {
        attachment.name = media::clean_file_name(received.file_name.as_deref(), "file");
        attachment.mime = media::clean_declared_type(received.declared_type.as_deref());
        return Ok((attachment, None));
    }
    let picture = media::sniff(&received.head).ok_or_else(not_a_picture)?;
    let inspected = inspect(uploads, received.temp.path().to_path_buf(), picture).await?;
    attachment.name = media::clean_file_name(received.file_name.as_deref(), "picture");
    attachment.mime = picture.mime().to_owned();
    attachment.width = Some(inspected.width);
    attachment.height = Some(inspected.height);
    attachment.thumbnail = true;
    Ok((attachment, Some(inspected.thumbnail)))
}

async fn inspect(
    uploads: &Uploads,
    path: std::path::PathBuf,
    picture: Picture,
) -> Result<media::Inspected, ApiError> {
    let _slot = uploads
        .decoding
        .acquire()
        .await
        .map_err(|_| ApiError(WireError::new(ErrorCode::Unavailable, "shutting down")))?;
    let max_pixels = uploads.files.max_image_pixels;
    let outcome = tokio::task::spawn_blocking(move || media::inspect(&path, picture, max_pixels))
        .await
        .map_err(|err| internal(format!("picture decoding stopped: {err}")))?;
    outcome.map_err(|err| match err {
        PictureError::TooManyPixels { .. } => too_large(err.to_string()),
        PictureError::Undecodable(_) => {
            ApiError(WireError::new(ErrorCode::UnsupportedMedia, err.to_string()))
        }
        PictureError::Io(io) => storage_failure(io),
    })
}

/// Moves the content into the attachment's folder with its thumbnail, durably: the files
/// and the folder entries are on disk before the message that points at them can commit.
async fn keep(
    files: &Files,
    id: &str,
    temp: TempFile,
    thumbnail: Option<Vec<u8>>,
) -> Result<(), ApiError> {
    let (Some(dir), Some(original), Some(thumb_path)) =
        (files.dir_of(id), files.original(id), files.thumbnail(id))
    else {
        return Err(internal("a new attachment id is malformed"));
    };
    let placed = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        std::fs::rename(temp.path(), &original)?;
        temp.keep();
        if let Some(bytes) = thumbnail {
            let mut file = std::fs::File::create(&thumb_path)?;
            std::io::Write::write_all(&mut file, &bytes)?;
            file.sync_all()?;
        }
        std::fs::File::open(&dir)?.sync_all()?;
        if let Some(parent) = dir.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    })
    .await
    .map_err(|err| internal(format!("storing the upload stopped: {err}")))?;
    if let Err(err) = placed {
        files.remove(id).await;
        return Err(storage_failure(err));
    }
    Ok(())
}

/// Records the message's seq on the row. A failure here is logged, not returned: the
/// message is committed, and a download finds the seq from the message side instead.
async fn link(chat: &Chat, id: &str, ack: &Ack) {
    let (lookup, seq) = (id.to_owned(), i64::try_from(ack.seq).unwrap_or(i64::MAX));
    if let Err(err) = chat
        .blocking(move |conn| Ok(attachments::set_seq(conn, &lookup, seq)?))
        .await
    {
        tracing::warn!(error = %err, attachment.id = id, "could not link an attachment to its message");
    }
}

/// Deletes an attachment whose message was refused or already existed.
async fn forget(chat: &Chat, uploads: &Uploads, id: &str) {
    let lookup = id.to_owned();
    if let Err(err) = chat
        .blocking(move |conn| Ok(attachments::delete(conn, &lookup)?))
        .await
    {
        tracing::warn!(error = %err, attachment.id = id, "could not delete an unused attachment row");
    }
    uploads.files.remove(id).await;
}

/// The attachment of the message a retried upload's ack points to.
async fn original_attachment(chat: &Chat, ack: &Ack) -> Option<Attachment> {
    let (conversation, seq) = (
        ack.conversation_id,
        i64::try_from(ack.seq).unwrap_or(i64::MAX),
    );
    let row = chat
        .blocking(move |conn| Ok(tern_storage::messages::find(conn, conversation, seq)?))
        .await
        .ok()
        .flatten()?;
    match tern_chat::views::message_view(&row).content {
        Content::Image { attachment } | Content::File { attachment } => Some(attachment),
        _ => None,
    }
}

/// Reads what is left of a refused request, up to a budget, discarding it.
struct Drain {
    budget: u64,
}

impl Drain {
    async fn stream<S, B>(&mut self, mut stream: std::pin::Pin<&mut S>)
    where
        S: futures_util::Stream<Item = Result<B, warp::Error>>,
        B: Buf,
    {
        while self.budget > 0 {
            match stream.next().await {
                Some(Ok(chunk)) => {
                    self.budget = self.budget.saturating_sub(chunk.remaining() as u64)
                }
                _ => return,
            }
        }
    }

    async fn part(&mut self, part: Part) {
        let stream = pin!(part.stream());
        self.stream(stream).await;
    }

    /// The parts after the current one. Stops when the budget is spent, since moving to
    /// the next part would skip the rest of the current one without counting it.
    async fn rest(&mut self, body: &mut FormData) {
        while self.budget > 0 {
            match body.next().await {
                Some(Ok(part)) => self.part(part).await,
                _ => return,
            }
        }
    }
}

async fn text(part: Part) -> Result<String, ApiError> {
    let name = part.name().to_owned();
    let mut value = Vec::new();
    let mut stream = pin!(part.stream());
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(malformed)?;
        if value.len() + chunk.remaining() > FIELD_MAX_BYTES {
            return Err(invalid_field(format!(
                "{name} is over {FIELD_MAX_BYTES} bytes"
            )));
        }
        while chunk.has_remaining() {
            let n = chunk.chunk().len();
            value.extend_from_slice(chunk.chunk());
            chunk.advance(n);
        }
    }
    String::from_utf8(value).map_err(|_| invalid_field(format!("{name} is not UTF-8")))
}

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), ApiError> {
    if slot.is_some() {
        return Err(invalid_field(format!("{name} is given twice")));
    }
    *slot = Some(value);
    Ok(())
}

fn parse_id(name: &str, value: &str) -> Result<i64, ApiError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid_field(format!("{name} must be an id")))
}

fn invalid_field(message: impl Into<String>) -> ApiError {
    ApiError(WireError::new(ErrorCode::InvalidField, message))
}

fn too_large(message: impl Into<String>) -> ApiError {
    ApiError(WireError::new(ErrorCode::FrameTooLarge, message))
}

fn not_a_picture() -> ApiError {
    ApiError(WireError::new(
        ErrorCode::UnsupportedMedia,
        "the file is not a PNG, JPEG, GIF or WebP picture",
    ))
}

fn malformed(err: warp::Error) -> ApiError {
    ApiError(WireError::new(
        ErrorCode::InvalidRequest,
        format!("malformed multipart body: {err}"),
    ))
}

fn internal(message: impl Into<String>) -> ApiError {
    ApiError::from(ChatError::Internal(message.into()))
}

fn storage_failure(err: std::io::Error) -> ApiError {
    internal(format!("upload storage: {err}"))
}
