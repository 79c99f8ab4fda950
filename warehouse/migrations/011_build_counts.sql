-- What each build left in the marts, per source: pairs per split and thumbs per label,
-- as JSON ({"pairs": [[source, split, n], ...], "feedback": [[source, label, n], ...]}).
-- An incremental build reports its counts from the last build's, less the rows it
-- deleted and plus the rows it inserted, instead of recounting every mart row (0.8 s a
-- night on a 10M warehouse). NULL for builds from before: the next build recounts.
ALTER TABLE binarize_builds ADD COLUMN counts JSON;
