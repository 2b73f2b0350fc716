//! Pictures and files through the real server: multipart uploads, the message they create,
//! downloads with ranges and safe headers, and what is refused, on every backend.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::*;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tern_client::{FilePart, FormPart, RawResponse};
use tern_protocol::frames::{Attachment, Content};
use tern_protocol::{ConversationId, ErrorCode, MessageId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The answer to an upload: the ack and the attachment.
#[derive(Debug, Deserialize)]
struct UploadAck {
    client_msg_id: String,
    message_id: MessageId,
    conversation_id: ConversationId,
    seq: u64,
    duplicate: bool,
    attachment: Attachment,
}

fn ack_of(response: &RawResponse) -> UploadAck {
    assert_eq!(
        response.status,
        200,
        "upload failed: {:?}",
        String::from_utf8_lossy(&response.body)
    );
    serde_json::from_slice(&response.body).expect("an upload ack")
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    picture
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("png encodes");
    out.into_inner()
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, 40, (y % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    picture
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("jpeg encodes");
    out.into_inner()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A picture to `to`, the fields after the file part.
fn picture_form(
    to: tern_protocol::UserId,
    client_msg_id: &str,
    name: &str,
    bytes: Vec<u8>,
) -> Vec<FormPart> {
    vec![
        FormPart::File(FilePart::bytes(name, "image/png", bytes)),
        FormPart::text("kind", "image"),
        FormPart::text("to_user", to),
        FormPart::text("client_msg_id", client_msg_id),
    ]
}

/// A file to `to`, the fields before the file part.
fn file_form(to: tern_protocol::UserId, client_msg_id: &str, file: FilePart) -> Vec<FormPart> {
    vec![
        FormPart::text("client_msg_id", client_msg_id),
        FormPart::text("to_user", to),
        FormPart::text("kind", "file"),
        FormPart::File(file),
    ]
}

fn uploads_dir(server: &TestServer) -> std::path::PathBuf {
    server.data.path().join("uploads")
}

/// The attachment folders on disk.
fn stored(server: &TestServer) -> Vec<String> {
    let mut names: Vec<String> = entries(&uploads_dir(server))
        .into_iter()
        .filter(|n| n != "tmp")
        .collect();
    names.sort();
    names
}

/// What the temporary folder holds.
fn leftovers(server: &TestServer) -> Vec<String> {
    entries(&uploads_dir(server).join("tmp"))
}

fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(read) => read
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn download_path(attachment: &Attachment) -> String {
    format!("/api/v1/attachments/{}", attachment.attachment_id)
}

fn assert_refused(response: &RawResponse, status: u16, code: ErrorCode) {
    assert_eq!(
        response.status,
        status,
        "{:?}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.error().map(|e| e.code), Some(code));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_picture_upload_reaches_the_recipient_with_its_dimensions_and_thumbnail() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let mut b = server.connect(&bob, "laptop").await;
        read_replay(&mut b).await;

        let picture = png(640, 400);
        let response = server
            .http
            .upload(
                &alice.token,
                picture_form(bob.id, "pic-1", "../cat.png", picture.clone()),
            )
            .await?;
        let ack = ack_of(&response);
        assert_eq!(
            (ack.client_msg_id.as_str(), ack.duplicate),
            ("pic-1", false)
        );
        let sent = &ack.attachment;
        assert_eq!(
            (sent.width, sent.height, sent.thumbnail),
            (Some(640), Some(400), true)
        );
        assert_eq!(
            (sent.name.as_str(), sent.mime.as_str()),
            ("cat.png", "image/png")
        );
        assert_eq!(
            (sent.size, sent.sha256.clone()),
            (picture.len() as u64, sha256(&picture))
        );

        let got = next_message(&mut b).await;
        assert_eq!(
            (got.message_id, got.seq, got.sender_id),
            (ack.message_id, ack.seq, alice.id)
        );
        match &got.content {
            Content::Image { attachment } => assert_eq!(attachment, sent),
            other => panic!("expected a picture, got {other:?}"),
        }

        let thumb = server
            .http
            .get(
                &format!("{}/thumbnail", download_path(sent)),
                Some(&bob.token),
                &[],
            )
            .await?;
        assert_eq!(
            (thumb.status, thumb.header("content-type")),
            (200, Some("image/png"))
        );
        let small = image::load_from_memory(&thumb.body)?;
        assert_eq!(
            (small.width(), small.height()),
            (256, 160),
            "the long side is 256 px"
        );

        let original = server
            .http
            .get(&download_path(sent), Some(&bob.token), &[])
            .await?;
        assert_eq!(
            (original.status, original.header("content-type")),
            (200, Some("image/png"))
        );
        assert_eq!(original.body.as_ref(), picture.as_slice());
        assert_eq!(sha256(&original.body), sent.sha256);

        // A photo keeps a JPEG thumbnail; a tall one is limited by its height.
        let photo = jpeg(300, 900);
        let form = picture_form(bob.id, "pic-2", "tall.jpg", photo.clone());
        let ack = ack_of(&server.http.upload(&alice.token, form).await?);
        assert_eq!(
            (
                ack.attachment.mime.as_str(),
                ack.attachment.width,
                ack.attachment.height
            ),
            ("image/jpeg", Some(300), Some(900))
        );
        let thumb = server
            .http
            .get(
                &format!("{}/thumbnail", download_path(&ack.attachment)),
                Some(&alice.token),
                &[],
            )
            .await?;
        assert_eq!(
            (thumb.status, thumb.header("content-type")),
            (200, Some("image/jpeg"))
        );
        let small = image::load_from_memory(&thumb.body)?;
        assert_eq!(small.height(), 256);
        assert!(small.width() <= 256);
        assert!(leftovers(&server).is_empty());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_picture_that_is_not_one_is_refused_and_nothing_is_stored() -> TestResult {
    for backend in tern_testkit::backends() {
        let server =
            TestServer::start_with(backend, |c| c.storage.max_image_pixels = 1_000_000).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let mut b = server.connect(&bob, "laptop").await;
        read_replay(&mut b).await;

        // Text named and declared as a PNG, the kind given before and after the file.
        let text = b"this is plain text pretending to be a picture\n".repeat(20);
        let response = server
            .http
            .upload(
                &alice.token,
                picture_form(bob.id, "fake-1", "cat.png", text.clone()),
            )
            .await?;
        assert_refused(&response, 415, ErrorCode::UnsupportedMedia);
        let form = vec![
            FormPart::text("client_msg_id", "fake-2"),
            FormPart::text("to_user", bob.id),
            FormPart::text("kind", "image"),
            FormPart::File(FilePart::bytes("cat.png", "image/png", text)),
        ];
        assert_refused(
            &server.http.upload(&alice.token, form).await?,
            415,
            ErrorCode::UnsupportedMedia,
        );

        // The right magic number in front of bytes that do not decode.
        let mut broken = png(64, 64);
        broken.truncate(40);
        broken.extend_from_slice(&[0x42; 300]);
        let response = server
            .http
            .upload(
                &alice.token,
                picture_form(bob.id, "broken", "b.png", broken),
            )
            .await?;
        assert_refused(&response, 415, ErrorCode::UnsupportedMedia);

        // Over the pixel limit: refused from the header, before decoding.
        let response = server
            .http
            .upload(
                &alice.token,
                picture_form(bob.id, "huge", "h.png", png(2000, 1000)),
            )
            .await?;
        assert_refused(&response, 413, ErrorCode::FrameTooLarge);

        assert!(
            stored(&server).is_empty(),
            "nothing kept: {:?}",
            stored(&server)
        );
        assert!(
            leftovers(&server).is_empty(),
            "no temporary files: {:?}",
            leftovers(&server)
        );
        assert_no_message(&mut b).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_download_and_ids_cannot_name_other_files() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob, carol) = (
            server.user("alice").await,
            server.user("bob").await,
            server.user("carol").await,
        );
        let ack = ack_of(
            &server
                .http
                .upload(
                    &alice.token,
                    picture_form(bob.id, "p", "p.png", png(32, 32)),
                )
                .await?,
        );
        let path = download_path(&ack.attachment);

        for reader in [&alice, &bob] {
            assert_eq!(
                server
                    .http
                    .get(&path, Some(&reader.token), &[])
                    .await?
                    .status,
                200
            );
        }
        assert_refused(
            &server.http.get(&path, Some(&carol.token), &[]).await?,
            403,
            ErrorCode::NotMember,
        );
        let thumbnail = format!("{path}/thumbnail");
        assert_refused(
            &server.http.get(&thumbnail, Some(&carol.token), &[]).await?,
            403,
            ErrorCode::NotMember,
        );
        assert_refused(
            &server.http.get(&path, None, &[]).await?,
            401,
            ErrorCode::Unauthorized,
        );

        let unknown = format!("/api/v1/attachments/{}", "ab".repeat(16));
        assert_refused(
            &server.http.get(&unknown, Some(&bob.token), &[]).await?,
            404,
            ErrorCode::NotFound,
        );
        let id = &ack.attachment.attachment_id;
        for bad in [
            "/api/v1/attachments/..%2F..%2Ftern.db".to_owned(),
            "/api/v1/attachments/tmp".to_owned(),
            format!("/api/v1/attachments/{}", id.to_uppercase()),
            format!("/api/v1/attachments/{id}%2F..%2F..%2Ftern.db"),
        ] {
            assert_refused(
                &server.http.get(&bad, Some(&bob.token), &[]).await?,
                404,
                ErrorCode::NotFound,
            );
        }

        // A recalled message takes its attachment with it.
        let recall = format!(
            "/api/v1/conversations/{}/messages/{}",
            ack.conversation_id, ack.seq
        );
        assert_eq!(
            server
                .http
                .raw("DELETE", &recall, Some(&alice.token), None)
                .await?
                .status,
            204
        );
        assert_refused(
            &server.http.get(&path, Some(&bob.token), &[]).await?,
            404,
            ErrorCode::NotFound,
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_serve_byte_ranges_with_safe_headers() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let content = Bytes::from_static(b"0123456789abcdefghij");
        let page = FilePart::bytes("résumé final.html", "text/html", content.clone());
        let ack = ack_of(
            &server
                .http
                .upload(&alice.token, file_form(bob.id, "f1", page))
                .await?,
        );
        assert_eq!(
            (ack.attachment.name.as_str(), ack.attachment.mime.as_str()),
            ("résumé final.html", "text/html")
        );
        let path = download_path(&ack.attachment);

        let whole = server.http.get(&path, Some(&bob.token), &[]).await?;
        assert_eq!(whole.status, 200);
        assert_eq!(whole.body, content);
        for (name, value) in [
            ("content-type", "application/octet-stream"),
            ("content-length", "20"),
            ("accept-ranges", "bytes"),
            ("x-content-type-options", "nosniff"),
            ("content-security-policy", "sandbox"),
            ("cache-control", "private"),
            (
                "content-disposition",
                "attachment; filename=\"r_sum_ final.html\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20final.html",
            ),
        ] {
            assert_eq!(whole.header(name), Some(value), "{name}");
        }

        for (range, body, content_range) in [
            ("bytes=2-5", "2345", "bytes 2-5/20"),
            ("bytes=15-", "fghij", "bytes 15-19/20"),
            ("bytes=-3", "hij", "bytes 17-19/20"),
            ("bytes=18-400", "ij", "bytes 18-19/20"),
        ] {
            let part = server
                .http
                .get(&path, Some(&bob.token), &[("range", range)])
                .await?;
            assert_eq!(part.status, 206, "{range}");
            assert_eq!(part.body.as_ref(), body.as_bytes(), "{range}");
            assert_eq!(part.header("content-range"), Some(content_range), "{range}");
            assert_eq!(part.header("x-content-type-options"), Some("nosniff"));
        }
        let outside = server
            .http
            .get(&path, Some(&bob.token), &[("range", "bytes=20-")])
            .await?;
        assert_eq!(outside.status, 416);
        assert_eq!(outside.header("content-range"), Some("bytes */20"));
        assert!(outside.error().is_some(), "the JSON error format");
        let several = server
            .http
            .get(&path, Some(&bob.token), &[("range", "bytes=0-1,4-5")])
            .await?;
        assert_eq!(
            (several.status, several.body.len()),
            (200, 20),
            "several ranges get the whole file"
        );

        // A type on the safe list is served as declared; SVG never is.
        let video = FilePart::bytes(
            "clip.mp4",
            "video/mp4",
            Bytes::from_static(b"not really a video"),
        );
        let ack = ack_of(
            &server
                .http
                .upload(&alice.token, file_form(bob.id, "f2", video))
                .await?,
        );
        let got = server
            .http
            .get(&download_path(&ack.attachment), Some(&bob.token), &[])
            .await?;
        assert_eq!(got.header("content-type"), Some("video/mp4"));
        let svg = FilePart::bytes(
            "x.svg",
            "image/svg+xml",
            Bytes::from_static(b"<svg onload='alert(1)'/>"),
        );
        let ack = ack_of(
            &server
                .http
                .upload(&alice.token, file_form(bob.id, "f3", svg))
                .await?,
        );
        let got = server
            .http
            .get(&download_path(&ack.attachment), Some(&bob.token), &[])
            .await?;
        assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    }
    Ok(())
}

/// Deterministic, incompressible-looking content, produced a chunk at a time.
fn chunk(index: u64, len: usize) -> Bytes {
    let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

const CHUNK: usize = 64 * 1024;

fn streamed_file(name: &str, len: u64) -> FilePart {
    let chunks = (len as usize).div_ceil(CHUNK) as u64;
    let stream = futures_util::stream::iter(0..chunks).map(move |i| {
        let size = (len - i * CHUNK as u64).min(CHUNK as u64) as usize;
        chunk(i, size)
    });
    FilePart {
        field: "file".into(),
        file_name: name.into(),
        content_type: "video/mp4".into(),
        len,
        chunks: Box::pin(stream),
    }
}

fn streamed_sha256(len: u64) -> String {
    let mut hasher = Sha256::new();
    let mut i = 0;
    let mut left = len;
    while left > 0 {
        let size = left.min(CHUNK as u64);
        hasher.update(chunk(i, size as usize));
        left -= size;
        i += 1;
    }
    hex::encode(hasher.finalize())
}

use futures_util::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_is_streamed_to_disk_with_its_size_and_checksum() -> TestResult {
    // Several MiB: far above the upload's write buffer (256 KiB) and warp's 2 MB default.
    const LEN: u64 = 9 * 1024 * 1024 + 321;
    for backend in tern_testkit::backends() {
        let server =
            TestServer::start_with(backend, |c| c.storage.max_upload_bytes = 16 * 1024 * 1024)
                .await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let mut b = server.connect(&bob, "laptop").await;
        read_replay(&mut b).await;

        let response = server
            .http
            .upload(
                &alice.token,
                file_form(bob.id, "big", streamed_file("holiday.mp4", LEN)),
            )
            .await?;
        let ack = ack_of(&response);
        let expected = streamed_sha256(LEN);
        assert_eq!(
            (ack.attachment.size, ack.attachment.sha256.as_str()),
            (LEN, expected.as_str())
        );
        let on_disk = uploads_dir(&server)
            .join(&ack.attachment.attachment_id)
            .join("original");
        assert_eq!(std::fs::metadata(&on_disk)?.len(), LEN);

        let got = next_message(&mut b).await;
        assert!(
            matches!(&got.content, Content::File { attachment } if *attachment == ack.attachment)
        );
        let download = server
            .http
            .get(&download_path(&ack.attachment), Some(&bob.token), &[])
            .await?;
        assert_eq!((download.status, download.body.len() as u64), (200, LEN));
        assert_eq!(sha256(&download.body), expected);
        assert!(leftovers(&server).is_empty());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_cap_is_refused_with_413_and_leaves_nothing_behind() -> TestResult {
    const CAP: u64 = 1024 * 1024;
    for backend in tern_testkit::backends() {
        let server = TestServer::start_with(backend, |c| {
            c.storage.max_upload_bytes = CAP;
            c.storage.max_image_bytes = CAP;
        })
        .await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let mut b = server.connect(&bob, "laptop").await;
        read_replay(&mut b).await;

        // Within the body limit, so it is the streaming copy that stops at the cap.
        let form = file_form(bob.id, "over", streamed_file("over.bin", CAP + 16 * 1024));
        assert_refused(
            &server.http.upload(&alice.token, form).await?,
            413,
            ErrorCode::FrameTooLarge,
        );
        let mut form = file_form(bob.id, "over-kind-last", streamed_file("over.bin", CAP + 1));
        form.rotate_left(3);
        assert_refused(
            &server.http.upload(&alice.token, form).await?,
            413,
            ErrorCode::FrameTooLarge,
        );

        // A body declared larger than any upload is refused before it is read.
        let answer = declared_upload(&server, &alice.token, 50 * CAP).await?;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

        assert!(stored(&server).is_empty(), "{:?}", stored(&server));
        assert!(leftovers(&server).is_empty(), "{:?}", leftovers(&server));
        assert_no_message(&mut b).await;

        // Exactly at the cap is fine.
        let ack = ack_of(
            &server
                .http
                .upload(
                    &alice.token,
                    file_form(bob.id, "at-cap", streamed_file("at.bin", CAP)),
                )
                .await?,
        );
        assert_eq!(ack.attachment.size, CAP);
    }
    Ok(())
}

/// Sends only the head of an upload that declares `len` bytes and waits for the 100-continue
/// it asks for; returns the first line of what the server answers instead.
async fn declared_upload(
    server: &TestServer,
    token: &str,
    len: u64,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut socket = tokio::net::TcpStream::connect(server.host()).await?;
    let head = format!(
        "POST /api/v1/uploads HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {len}\r\n\
         Expect: 100-continue\r\n\r\n",
        server.host()
    );
    socket.write_all(head.as_bytes()).await?;
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(WAIT, socket.read(&mut answer)).await??;
    Ok(String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_upload_returns_the_first_ack_and_keeps_one_copy() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let mut b = server.connect(&bob, "laptop").await;
        read_replay(&mut b).await;

        let picture = png(100, 80);
        let first = ack_of(
            &server
                .http
                .upload(
                    &alice.token,
                    picture_form(bob.id, "same", "a.png", picture.clone()),
                )
                .await?,
        );
        let retry = ack_of(
            &server
                .http
                .upload(&alice.token, picture_form(bob.id, "same", "a.png", picture))
                .await?,
        );
        assert!(!first.duplicate && retry.duplicate);
        assert_eq!((retry.message_id, retry.seq), (first.message_id, first.seq));
        assert_eq!(
            retry.attachment, first.attachment,
            "the retry is told about the first upload"
        );

        assert_eq!(
            stored(&server),
            vec![first.attachment.attachment_id.clone()],
            "the retry's copy is deleted"
        );
        assert!(leftovers(&server).is_empty());
        next_message(&mut b).await;
        assert_no_message(&mut b).await;
        let page = server
            .http
            .history(&bob.token, first.conversation_id, "limit=50")
            .await?;
        assert_eq!(page.messages.len(), 1, "one message");
        let download = server
            .http
            .get(&download_path(&first.attachment), Some(&bob.token), &[])
            .await?;
        assert_eq!(download.status, 200);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_refused_to_outsiders_and_for_missing_fields() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob, carol) = (
            server.user("alice").await,
            server.user("bob").await,
            server.user("carol").await,
        );
        let ack = ack_of(
            &server
                .http
                .upload(&alice.token, picture_form(bob.id, "p", "p.png", png(8, 8)))
                .await?,
        );

        // Carol is not in Alice and Bob's conversation.
        let form = vec![
            FormPart::text("conversation_id", ack.conversation_id),
            FormPart::text("client_msg_id", "intruder"),
            FormPart::text("kind", "file"),
            FormPart::File(FilePart::bytes(
                "x.txt",
                "text/plain",
                Bytes::from_static(b"hello"),
            )),
        ];
        assert_refused(
            &server.http.upload(&carol.token, form).await?,
            403,
            ErrorCode::NotMember,
        );

        let no_kind = vec![
            FormPart::text("to_user", bob.id),
            FormPart::text("client_msg_id", "no-kind"),
            FormPart::File(FilePart::bytes(
                "x.txt",
                "text/plain",
                Bytes::from_static(b"hello"),
            )),
        ];
        assert_refused(
            &server.http.upload(&alice.token, no_kind).await?,
            400,
            ErrorCode::InvalidField,
        );
        let no_file = vec![
            FormPart::text("to_user", bob.id),
            FormPart::text("client_msg_id", "x"),
            FormPart::text("kind", "file"),
        ];
        assert_refused(
            &server.http.upload(&alice.token, no_file).await?,
            400,
            ErrorCode::InvalidField,
        );
        let not_a_form = server
            .http
            .raw(
                "POST",
                "/api/v1/uploads",
                Some(&alice.token),
                Some(Bytes::from_static(b"{}")),
            )
            .await?;
        assert_refused(&not_a_form, 400, ErrorCode::InvalidRequest);

        assert_eq!(stored(&server), vec![ack.attachment.attachment_id.clone()]);
        assert!(leftovers(&server).is_empty());
    }
    Ok(())
}

/// Runs SQL on the test's database, as an operator or a crash would leave it.
async fn run_sql(server: &TestServer, sql: String) {
    let url = server.db.url.clone();
    tokio::task::spawn_blocking(move || {
        use diesel::connection::SimpleConnection;
        let pool = tern_db::connect(&url, &tern_db::PoolSettings::default()).expect("database");
        pool.get()
            .expect("a connection")
            .batch_execute(&sql)
            .expect("the statement runs");
    })
    .await
    .expect("sql task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_is_served_only_once_its_message_is_committed() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob, carol) = (
            server.user("alice").await,
            server.user("bob").await,
            server.user("carol").await,
        );
        let ack = ack_of(
            &server
                .http
                .upload(
                    &alice.token,
                    picture_form(bob.id, "p", "p.png", png(16, 16)),
                )
                .await?,
        );
        let id = ack.attachment.attachment_id.clone();

        // The server stopped between the message's commit and linking the row to it: the
        // message side still finds it, and the membership check still applies.
        run_sql(
            &server,
            format!("UPDATE attachments SET seq = NULL WHERE id = '{id}'"),
        )
        .await;
        assert_eq!(
            server
                .http
                .get(&download_path(&ack.attachment), Some(&bob.token), &[])
                .await?
                .status,
            200
        );
        run_sql(
            &server,
            format!("UPDATE attachments SET seq = NULL WHERE id = '{id}'"),
        )
        .await;
        let outsider = server
            .http
            .get(&download_path(&ack.attachment), Some(&carol.token), &[])
            .await?;
        assert_refused(&outsider, 403, ErrorCode::NotMember);

        // A row whose message never committed, with content on disk, is not served.
        let orphan = "0f".repeat(16);
        let copy = uploads_dir(&server).join(&orphan);
        std::fs::create_dir_all(&copy)?;
        std::fs::copy(
            uploads_dir(&server).join(&id).join("original"),
            copy.join("original"),
        )?;
        run_sql(
            &server,
            format!(
                "INSERT INTO attachments (id, conversation_id, uploader_id, kind, name, mime, size, sha256, \
                 thumbnail, created_at) SELECT '{orphan}', conversation_id, uploader_id, kind, name, mime, size, \
                 sha256, thumbnail, created_at FROM attachments WHERE id = '{id}'"
            ),
        )
        .await;
        let path = format!("/api/v1/attachments/{orphan}");
        assert_refused(
            &server.http.get(&path, Some(&bob.token), &[]).await?,
            404,
            ErrorCode::NotFound,
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_left_downloads_what_came_before_and_nothing_after() -> TestResult {
    for backend in tern_testkit::backends() {
        let server = TestServer::start(backend).await;
        let (alice, bob) = (server.user("alice").await, server.user("bob").await);
        let group = serde_json::json!({"title": "team", "members": [bob.id.to_string()]});
        let created: serde_json::Value = server
            .http
            .json("POST", "/api/v1/groups", Some(&alice.token), Some(&group))
            .await?;
        let conversation = created["conversation_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let share = |id: &str, name: &str| {
            vec![
                FormPart::text("conversation_id", &conversation),
                FormPart::text("client_msg_id", id),
                FormPart::text("kind", "file"),
                FormPart::File(FilePart::bytes(
                    name,
                    "text/plain",
                    Bytes::from_static(b"minutes"),
                )),
            ]
        };
        let before = ack_of(
            &server
                .http
                .upload(&alice.token, share("before", "before.txt"))
                .await?,
        );
        let leave = format!("/api/v1/groups/{conversation}/members/{}", bob.id);
        assert_eq!(
            server
                .http
                .raw("DELETE", &leave, Some(&bob.token), None)
                .await?
                .status,
            200
        );
        let after = ack_of(
            &server
                .http
                .upload(&alice.token, share("after", "after.txt"))
                .await?,
        );

        assert_eq!(
            server
                .http
                .get(&download_path(&before.attachment), Some(&bob.token), &[])
                .await?
                .status,
            200
        );
        let refused = server
            .http
            .get(&download_path(&after.attachment), Some(&bob.token), &[])
            .await?;
        assert_refused(&refused, 403, ErrorCode::NotMember);
        // And he can no longer upload into the group.
        assert_refused(
            &server
                .http
                .upload(&bob.token, share("late", "late.txt"))
                .await?,
            403,
            ErrorCode::NotMember,
        );
    }
    Ok(())
}
