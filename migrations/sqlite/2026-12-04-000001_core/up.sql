-- Times are milliseconds since the Unix epoch in BIGINT columns, the one time type that reads
-- the same on every backend.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username VARCHAR(64) NOT NULL UNIQUE,
    password_hash VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    token_hash VARCHAR(64) PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX tokens_by_user ON tokens (user_id);

CREATE TABLE conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind VARCHAR(8) NOT NULL,
    direct_key VARCHAR(64) UNIQUE,
    title VARCHAR(200),
    created_by BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0,
    last_activity_at BIGINT NOT NULL
);

CREATE TABLE members (
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    joined_at BIGINT NOT NULL,
    joined_seq BIGINT NOT NULL DEFAULT 0,
    left_seq BIGINT,
    delivered_seq BIGINT NOT NULL DEFAULT 0,
    read_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id);

CREATE TABLE messages (
    conversation_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    prev_seq BIGINT NOT NULL,
    sender_id BIGINT NOT NULL,
    client_msg_id VARCHAR(64) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    body TEXT NOT NULL,
    meta TEXT,
    created_at BIGINT NOT NULL,
    recalled_at BIGINT,
    PRIMARY KEY (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_by_client_id ON messages (sender_id, client_msg_id);

CREATE TABLE device_cursors (
    user_id BIGINT NOT NULL,
    device_id VARCHAR(64) NOT NULL,
    conversation_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, conversation_id)
);

-- The segment allocator's table (crates/idgen): one row per conversation.
CREATE TABLE id_segments (
    conversation_id BIGINT PRIMARY KEY NOT NULL,
    next_seq BIGINT NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
