-- Friends: one row per side, so each user's list is one index range. `version` is the owner's
-- friend_version at the change, which makes incremental pulls a range scan too.
ALTER TABLE users ADD COLUMN friend_version BIGINT NOT NULL DEFAULT 0;

CREATE TABLE friendships (
    user_id BIGINT NOT NULL,
    other_id BIGINT NOT NULL,
    state VARCHAR(16) NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, other_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE INDEX friendships_by_version ON friendships (user_id, version);

-- Uploaded files. The content lives under the data folder, named by `id`; `seq` is the
-- message that carries it, set once that message is committed.
CREATE TABLE attachments (
    id VARCHAR(64) PRIMARY KEY NOT NULL,
    conversation_id BIGINT NOT NULL,
    uploader_id BIGINT NOT NULL,
    kind VARCHAR(8) NOT NULL,
    name VARCHAR(255) NOT NULL,
    mime VARCHAR(127) NOT NULL,
    size BIGINT NOT NULL,
    sha256 VARCHAR(64) NOT NULL,
    width BIGINT,
    height BIGINT,
    thumbnail BOOLEAN NOT NULL,
    seq BIGINT,
    created_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE INDEX attachments_by_conversation ON attachments (conversation_id, seq);
