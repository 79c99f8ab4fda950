"""Keyed pseudonyms: stable per key, different across keys, and a key file only
its owner can read."""
from __future__ import annotations

import os
import re
import stat

import pytest

from tasks.sources.pseudonym import KEY_ENV, load_key, pseudonymize
from tasks.common.settings import ThumbsError

KEY_A = b"a" * 32
KEY_B = b"b" * 32


@pytest.fixture(autouse=True)
def no_key_in_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(KEY_ENV, raising=False)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_pseudonym_is_stable_for_the_same_key():
    assert pseudonymize("maria.silva@example.com", KEY_A) == pseudonymize("maria.silva@example.com", KEY_A)
    assert re.fullmatch(r"u_[0-9a-f]{32}", pseudonymize("maria.silva@example.com", KEY_A))


def test_pseudonym_differs_across_keys_and_users():
    assert pseudonymize("maria.silva@example.com", KEY_A) != pseudonymize("maria.silva@example.com", KEY_B)
    assert pseudonymize("maria.silva@example.com", KEY_A) != pseudonymize("maria.silva@example.org", KEY_A)


def test_pseudonym_is_not_a_plain_hash():
    import hashlib

    plain = hashlib.sha256(b"maria.silva@example.com").hexdigest()[:32]
    assert pseudonymize("maria.silva@example.com", KEY_A) != "u_" + plain


def test_key_file_is_created_once_with_mode_0600(home):
    key = load_key(home)
    path = home / "secrets" / "pseudonym.key"
    assert len(key) == 32 and path.read_bytes() == key
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert load_key(home) == key  # reused, not regenerated
    assert [p.name for p in path.parent.iterdir()] == ["pseudonym.key"]  # no temp files left


def test_key_file_mode_ignores_a_permissive_umask(home):
    old = os.umask(0)
    try:
        load_key(home)
    finally:
        os.umask(old)
    assert mode(home / "secrets" / "pseudonym.key") == 0o600
    assert mode(home / "secrets") == 0o700


def test_each_home_gets_its_own_key(tmp_path):
    assert load_key(tmp_path / "one") != load_key(tmp_path / "two")


def test_env_overrides_the_key_file(home, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "a-deployment-secret-from-vault\n")
    assert load_key(home) == b"a-deployment-secret-from-vault"
    assert not (home / "secrets" / "pseudonym.key").exists()


def test_short_env_key_is_refused_without_echoing_it(home, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "hunter2")
    with pytest.raises(ThumbsError) as caught:
        load_key(home)
    assert KEY_ENV in str(caught.value) and "hunter2" not in str(caught.value)


def test_truncated_key_file_is_refused(home):
    path = home / "secrets" / "pseudonym.key"
    path.parent.mkdir(mode=0o700)
    path.write_bytes(b"short")
    with pytest.raises(ThumbsError, match="pseudonym.key: the pseudonym key is too short"):
        load_key(home)
