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

-- Python's str.strip(): every character str.isspace() accepts, at both ends.
CREATE OR REPLACE TEMP MACRO thumbs_python_strip(text) AS
    trim(text, chr(9) || chr(10) || chr(11) || chr(12) || chr(13) || chr(28) || chr(29) || chr(30) || chr(31)
               || ' ' || chr(133) || chr(160) || chr(5760) || chr(8192) || chr(8193) || chr(8194) || chr(8195)
               || chr(8196) || chr(8197) || chr(8198) || chr(8199) || chr(8200) || chr(8201) || chr(8202)
               || chr(8232) || chr(8233) || chr(8239) || chr(8287) || chr(12288));
