DROP TABLE attachments;
DROP TABLE friendships;
ALTER TABLE users DROP COLUMN friend_version;
