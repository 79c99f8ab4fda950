-- The watermark moves: the marts now include the new batches.
INSERT INTO binarize_batches
SELECT batch_id, $build_id FROM binarize_new_batches
