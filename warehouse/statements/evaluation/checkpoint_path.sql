-- Where a recorded checkpoint lives, for `thumbs evaluate <checkpoint_id>`.
SELECT path FROM checkpoints WHERE checkpoint_id = $checkpoint_id
