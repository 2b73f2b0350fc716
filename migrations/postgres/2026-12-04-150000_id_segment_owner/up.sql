-- One owner per conversation (crates/idgen): a node takes a conversation over by bumping
-- owner_epoch; its segment claims and its message commits check the epoch it got, so a node
-- that was taken over can neither claim nor commit.
ALTER TABLE id_segments ADD COLUMN owner_epoch BIGINT NOT NULL DEFAULT 0;
