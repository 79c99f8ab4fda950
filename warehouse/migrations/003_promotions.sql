-- Every promotion of a checkpoint to champion, and every gate decision against it.
-- The champion is the checkpoint of the latest promotion.
CREATE TABLE IF NOT EXISTS promotions (
    checkpoint_id      VARCHAR NOT NULL,
    decided_at         TIMESTAMP NOT NULL,
    run_id             VARCHAR,
    promoted           BOOLEAN NOT NULL,
    previous_champion  VARCHAR,
    reason             VARCHAR NOT NULL,
    evidence           JSON
);
