"""The shipped slices are what demo_data/ORIGIN.md says they are, and a test that
needs the fuller samples skips, where they are absent, naming what it needs."""
from __future__ import annotations

import gzip

import pytest

import samples


def lines(path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as text:
        return text.readlines()


def test_slices_are_the_listed_lines_of_the_full_files():
    shared = samples.shared_data("the full HH-RLHF and OASST files the slices were cut from")
    for name, numbers in samples.HH_QUIRK_LINES.items():
        full = lines(shared / "hh-rlhf" / f"{name}.test.jsonl.gz")
        assert lines(samples.hh_quirks(name)) == [full[n] for n in numbers], name
    flat = lines(shared / "oasst" / "oasst1-en-validation.jsonl")
    assert lines(samples.OASST_QUIRKS) == [flat[n] for n in samples.OASST_QUIRK_LINES]
    # Tests that take the first rows of a full file take them from the demo's copy.
    assert lines(samples.DEMO_HH_HELPFUL) == lines(shared / "hh-rlhf" / "helpful-base.test.jsonl.gz")[:200]
    assert lines(samples.DEMO_OASST_TREES) == lines(shared / "oasst" / "en_100_tree.jsonl")[:30]


def test_read_records_reads_plain_and_gzipped_lines():
    assert len(samples.read_records(samples.hh_quirks("harmless-base"))) == len(samples.HH_QUIRK_LINES["harmless-base"])
    assert len(samples.read_records(samples.OASST_QUIRKS)) == len(samples.OASST_QUIRK_LINES)


def test_missing_shared_data_skips_naming_the_need(tmp_path, monkeypatch):
    monkeypatch.setattr(samples, "SHARED_DATA", tmp_path / "absent")
    with pytest.raises(pytest.skip.Exception, match="needs SHP rows: only in .*absent"):
        samples.shared_data("SHP rows")
    monkeypatch.setattr(samples, "SHARED_DATA", tmp_path)
    assert samples.shared_data("SHP rows") == tmp_path


def test_shp_rows_skip_saying_they_are_not_shipped(tmp_path, monkeypatch):
    monkeypatch.setattr(samples, "SHARED_DATA", tmp_path / "absent")
    with pytest.raises(pytest.skip.Exception, match="needs SHP rows, which are not shipped"):
        samples.shared_shp()
    monkeypatch.setattr(samples, "SHARED_DATA", tmp_path)
    assert samples.shared_shp() == tmp_path / "shp"
