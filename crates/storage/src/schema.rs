// Diesel's view of the tables created by `migrations/`. Kept by hand, column for column.

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        created_at -> BigInt,
        friend_version -> BigInt,
    }
}

diesel::table! {
    tokens (token_hash) {
        token_hash -> Text,
        user_id -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    conversations (id) {
        id -> BigInt,
        kind -> Text,
        direct_key -> Nullable<Text>,
        title -> Nullable<Text>,
        created_by -> BigInt,
        created_at -> BigInt,
        last_seq -> BigInt,
        last_activity_at -> BigInt,
    }
}

diesel::table! {
    members (conversation_id, user_id) {
        conversation_id -> BigInt,
        user_id -> BigInt,
        joined_at -> BigInt,
        joined_seq -> BigInt,
        left_seq -> Nullable<BigInt>,
        delivered_seq -> BigInt,
        read_seq -> BigInt,
    }
}

diesel::table! {
    messages (conversation_id, seq) {
        conversation_id -> BigInt,
        seq -> BigInt,
        prev_seq -> BigInt,
        sender_id -> BigInt,
        client_msg_id -> Text,
        kind -> Text,
        body -> Text,
        meta -> Nullable<Text>,
        created_at -> BigInt,
        recalled_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    device_cursors (user_id, device_id, conversation_id) {
        user_id -> BigInt,
        device_id -> Text,
        conversation_id -> BigInt,
        seq -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    users,
    tokens,
    conversations,
    members,
    messages,
    device_cursors,
    friendships,
    attachments
);
diesel::joinable!(friendships -> users (other_id));
diesel::joinable!(members -> conversations (conversation_id));

diesel::table! {
    friendships (user_id, other_id) {
        user_id -> BigInt,
        other_id -> BigInt,
        state -> Text,
        version -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    attachments (id) {
        id -> Text,
        conversation_id -> BigInt,
        uploader_id -> BigInt,
        kind -> Text,
        name -> Text,
        mime -> Text,
        size -> BigInt,
        sha256 -> Text,
        width -> Nullable<BigInt>,
        height -> Nullable<BigInt>,
        thumbnail -> Bool,
        seq -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}
