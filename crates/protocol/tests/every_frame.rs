//! Every frame kind survives both encodings, and the decoders never panic on garbage.

use tern_protocol::codec::{
    decode_client_binary, decode_client_text, decode_server_binary, decode_server_text, encode_binary, encode_text,
};
use tern_protocol::frames::{
    Attachment, Content, FriendEntry, FriendState, MessageView, Position, SyncState, SystemEvent,
};
use tern_protocol::{ClientFrame, ConversationId, ErrorCode, MessageId, ServerFrame, UserId, WireError};

fn attachment() -> Attachment {
    Attachment {
        attachment_id: "9f2c".into(),
        name: "cat.png".into(),
        mime: "image/png".into(),
        size: 1234,
        sha256: "ab".repeat(32),
        width: Some(640),
        height: Some(480),
        thumbnail: true,
    }
}

fn contents() -> Vec<Content> {
    vec![
        Content::Text { text: "hello ✓".into() },
        Content::Image { attachment: attachment() },
        Content::File { attachment: Attachment { width: None, height: None, thumbnail: false, ..attachment() } },
        Content::Custom { custom_type: "app.poll/v1".into(), payload: "{\"q\":1}".into() },
        Content::System { event: SystemEvent::GroupCreated { title: "team".into(), by: UserId(1) } },
        Content::System { event: SystemEvent::MemberJoined { user_id: UserId(2), by: UserId(1) } },
        Content::System { event: SystemEvent::MemberLeft { user_id: UserId(2), by: UserId(2) } },
        Content::System { event: SystemEvent::MessageRecalled { seq: 7, by: UserId(1) } },
        Content::Recalled {},
    ]
}

fn client_frames() -> Vec<ClientFrame> {
    let conversation = ConversationId(3);
    let mut frames = vec![
        ClientFrame::Connect {
            token: "t".into(),
            device_id: "d".into(),
            client_version: Some("x/1".into()),
            positions: vec![Position { conversation_id: conversation, seq: 5 }],
        },
        ClientFrame::Receipt { conversation_id: conversation, seq: 9 },
        ClientFrame::Read { conversation_id: conversation, seq: 9 },
        ClientFrame::Recall { conversation_id: conversation, seq: 9 },
        ClientFrame::Typing { conversation_id: conversation },
        ClientFrame::FriendPull { since_version: 4 },
        ClientFrame::Ping { nonce: Some("n".into()) },
        ClientFrame::Ping { nonce: None },
    ];
    for (i, content) in contents().into_iter().enumerate() {
        frames.push(ClientFrame::Send {
            client_msg_id: format!("c{i}"),
            to_user: (i % 2 == 0).then_some(UserId(2)),
            conversation_id: (i % 2 == 1).then_some(conversation),
            content,
        });
    }
    frames
}

fn server_frames() -> Vec<ServerFrame> {
    let conversation = ConversationId(3);
    let mut frames = vec![
        ServerFrame::Session {
            user_id: UserId(1),
            device_id: "d".into(),
            protocol_version: 1,
            heartbeat_ms: 30_000,
            idle_timeout_ms: 75_000,
            server_time: 1,
        },
        ServerFrame::SyncDone { conversations: vec![SyncState { conversation_id: conversation, last_seq: 9, truncated: true }] },
        ServerFrame::Ack {
            client_msg_id: "c".into(),
            message_id: MessageId(u64::MAX),
            conversation_id: conversation,
            seq: 9,
            server_time: 2,
            duplicate: true,
        },
        ServerFrame::Delivered { conversation_id: conversation, user_id: UserId(2), seq: 9 },
        ServerFrame::Read { conversation_id: conversation, user_id: UserId(2), seq: 9 },
        ServerFrame::Typing { conversation_id: conversation, user_id: UserId(2) },
        ServerFrame::Friends {
            version: 6,
            entries: [FriendState::Friend, FriendState::Incoming, FriendState::Outgoing, FriendState::Blocked, FriendState::None]
                .into_iter()
                .map(|state| FriendEntry { user_id: UserId(2), username: "bob".into(), state, version: 6 })
                .collect(),
        },
        ServerFrame::Pong { nonce: Some("n".into()) },
        ServerFrame::Error(WireError::new(ErrorCode::NotMember, "no").answering(Some("c".into()))),
        ServerFrame::Kicked { reason: "logged out".into() },
        ServerFrame::GoingAway { reconnect_after_ms: 1000 },
    ];
    for event in [
        SystemEvent::FriendRequested { user_id: UserId(2) },
        SystemEvent::FriendAccepted { user_id: UserId(2) },
        SystemEvent::FriendRejected { user_id: UserId(2) },
        SystemEvent::FriendRemoved { user_id: UserId(2) },
    ] {
        frames.push(ServerFrame::Notice { event });
    }
    for (i, content) in contents().into_iter().enumerate() {
        frames.push(ServerFrame::Message(MessageView {
            message_id: MessageId((3 << 32) | i as u64),
            conversation_id: conversation,
            seq: i as u64 + 1,
            prev_seq: i as u64,
            sender_id: UserId(1),
            client_msg_id: format!("c{i}"),
            content,
            created_at: 1_764_856_800_000,
            recalled_at: (i == 8).then_some(1_764_856_800_500),
        }));
    }
    frames
}

#[test]
fn every_client_frame_round_trips_in_json_and_messagepack() {
    for frame in client_frames() {
        assert_eq!(decode_client_text(&encode_text(&frame)).as_ref(), Ok(&frame), "json {frame:?}");
        assert_eq!(decode_client_binary(&encode_binary(&frame)).as_ref(), Ok(&frame), "msgpack {frame:?}");
    }
}

#[test]
fn every_server_frame_round_trips_in_json_and_messagepack() {
    for frame in server_frames() {
        assert_eq!(decode_server_text(&encode_text(&frame)).as_ref(), Ok(&frame), "json {frame:?}");
        assert_eq!(decode_server_binary(&encode_binary(&frame)).as_ref(), Ok(&frame), "msgpack {frame:?}");
    }
}

#[test]
fn the_binary_form_is_smaller_than_the_text_form() {
    let frames = server_frames();
    let text: usize = frames.iter().map(|f| encode_text(f).len()).sum();
    let binary: usize = frames.iter().map(|f| encode_binary(f).len()).sum();
    assert!(binary < text, "msgpack {binary} bytes vs json {text}");
}

/// A small deterministic generator, so a failure reproduces from its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn the_decoders_survive_mutated_and_random_input() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let seeds: Vec<Vec<u8>> = client_frames()
        .iter()
        .flat_map(|f| [encode_text(f).into_bytes(), encode_binary(f)])
        .collect();
    for round in 0..20_000 {
        let mut input = seeds[round % seeds.len()].clone();
        let edits = 1 + rng.next() % 8;
        for _ in 0..edits {
            let at = (rng.next() as usize) % (input.len() + 1);
            match rng.next() % 3 {
                0 if at < input.len() => input[at] = rng.next() as u8,
                1 => input.insert(at, rng.next() as u8),
                _ if at < input.len() => drop(input.remove(at)),
                _ => {}
            }
        }
        // Only "no panic" is asserted: any outcome, frame or typed error, is acceptable.
        let _ = decode_client_binary(&input);
        if let Ok(text) = std::str::from_utf8(&input) {
            let _ = decode_client_text(text);
        }
        let random: Vec<u8> = (0..rng.next() % 64).map(|_| rng.next() as u8).collect();
        let _ = decode_client_binary(&random);
    }
}
