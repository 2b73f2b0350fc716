ALTER TABLE id_segments DROP COLUMN owner_epoch;
