-- One definition of each identity and of the split, shared by every model.

-- Stable content hashes (128 bits of sha256 over canonical JSON).
CREATE OR REPLACE MACRO thumbs_pair_id(source, prompt, chosen, rejected) AS
    left(sha256(to_json({'source': source, 'prompt': prompt, 'chosen': chosen, 'rejected': rejected})), 32);

CREATE OR REPLACE MACRO thumbs_feedback_id(source, prompt, completion, label) AS
    left(sha256(to_json({'source': source, 'prompt': prompt, 'completion': completion, 'label': label})), 32);

-- train/eval by a hash of the prompt alone (not the source), so one prompt never
-- sits in both splits, whichever sources it came from.
CREATE OR REPLACE MACRO thumbs_split(prompt, eval_fraction) AS
    CASE WHEN (md5_number(to_json(prompt)) % 1000000) / 1000000.0 < eval_fraction
         THEN 'eval' ELSE 'train' END;
