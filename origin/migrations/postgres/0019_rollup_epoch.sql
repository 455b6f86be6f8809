-- Rollup epoch (postgres).
--
-- Ingestion skips merging a user's exposures into `exposure_users` when a
-- rollup row it committed earlier already covers them (an earlier or
-- equal first exposure, the variants within its range): such a merge
-- changes nothing but still locks the row and writes WAL (issue 16). That
-- memory is only valid while rollup rows only ever grow; rows shrink only
-- when they are deleted (a rebuild after exposures were deleted, the purge
-- of a deleted environment, a hand-made DELETE or TRUNCATE). Every such
-- statement bumps `epoch`; a writer reads it in each transaction (after
-- taking the table's ROW EXCLUSIVE lock, which a rebuild's SHARE ROW
-- EXCLUSIVE lock waits for) and forgets what it remembered when it moved.
-- A hand-made DELETE takes ROW EXCLUSIVE too and so does not wait for
-- writers: make it with ingestion stopped, or rebuild the rollup after it
-- (`Store::rebuild_exposure_users`), which restores every stored user.
CREATE TABLE rollup_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO rollup_epoch (id, epoch) VALUES (1, 0);
CREATE FUNCTION bunting_rollup_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE rollup_epoch SET epoch = epoch + 1 WHERE id = 1;
    RETURN NULL;
END $$;
CREATE TRIGGER exposure_users_shrunk AFTER DELETE OR TRUNCATE ON exposure_users
    FOR EACH STATEMENT EXECUTE FUNCTION bunting_rollup_epoch_bump();
