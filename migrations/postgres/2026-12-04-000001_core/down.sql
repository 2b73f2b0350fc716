DROP TABLE id_segments;
DROP TABLE device_cursors;
DROP TABLE messages;
DROP TABLE members;
DROP TABLE conversations;
DROP TABLE tokens;
DROP TABLE users;
