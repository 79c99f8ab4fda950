-- One row per finished cell of a `thumbs compare` grid (flows/compare.py): which
-- checkpoint the cell trained, with which config, and its evaluation on the grid's shared
-- eval pairs. metrics holds every evaluation metric m, with m_low, m_high (95% interval)
-- and m_n where the evaluation reports them. A cell's row is written once, when it has
-- been trained and evaluated: a resumed comparison skips the cells that have one.
CREATE TABLE IF NOT EXISTS experiments (
    comparison_id     VARCHAR NOT NULL,
    cell              VARCHAR NOT NULL,
    line              VARCHAR NOT NULL,
    algo              VARCHAR NOT NULL,
    beta              DOUBLE NOT NULL,
    checkpoint_id     VARCHAR NOT NULL,
    checkpoint_path   VARCHAR NOT NULL,
    snapshot_id       VARCHAR NOT NULL,
    eval_snapshot_id  VARCHAR NOT NULL,
    run_id            VARCHAR,
    config            JSON NOT NULL,
    metrics           JSON NOT NULL,
    finished_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (comparison_id, cell)
);
