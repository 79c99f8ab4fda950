-- What a source's parser computes in Python, for the rows staged in DuckDB
-- (warehouse/statements/load/hh_pairs.sql). tests/sql/test_hh_in_duckdb.py holds
-- them equal to tasks/sources/base.py on real rows.

-- content_key: sha256 over each text part as b"s" + its UTF-8 length as 8 bytes
-- little-endian + its UTF-8 bytes (texts under 4 GiB: the high 4 bytes are 0).
CREATE OR REPLACE TEMP MACRO thumbs_key_part(text) AS
    's'::BLOB
    || from_hex(printf('%02x%02x%02x%02x00000000', strlen(text) & 255, (strlen(text) >> 8) & 255,
                       (strlen(text) >> 16) & 255, (strlen(text) >> 24) & 255))
    || encode(text);

CREATE OR REPLACE TEMP MACRO thumbs_content_key(a, b, c) AS
    sha256(thumbs_key_part(a) || thumbs_key_part(b) || thumbs_key_part(c));

-- Python's str.strip(): every character str.isspace() accepts, at both ends. One regex
-- over the two ends: DuckDB's trim(text, characters) costs four times as much on long
-- replies (it was half of HH staging's CPU). RE2's ^ and $ are the text's ends.
CREATE OR REPLACE TEMP MACRO thumbs_python_strip(text) AS
    regexp_replace(text, '^[\x{09}-\x{0d}\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+|[\x{09}-\x{0d}\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+$', '', 'g');
