"""Keyed pseudonyms for the user ids in business logs.

Why keyed: user ids are usually guessable (emails, account numbers), so a plain
hash can be reversed by hashing candidates. An HMAC with a secret that never
enters the warehouse keeps the warehouse alone from re-identifying anyone, while
the same user still gets the same pseudonym across files and runs, so analysts
can count feedback per user.

The key comes from $THUMBS_PSEUDONYM_KEY (for deployments that keep secrets in
their own store), else from <THUMBS_HOME>/secrets/pseudonym.key, created on
first use. Changing the key changes every pseudonym: keep it with your backups.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from tasks.common.home import Home
from tasks.common.settings import ThumbsError

KEY_ENV = "THUMBS_PSEUDONYM_KEY"
KEY_BYTES = 32
MIN_KEY_BYTES = 16  # below this an HMAC key can be brute-forced
PREFIX = "u_"
HEX_CHARS = 32  # 128 bits: collisions are out of reach for any realistic user count


def pseudonymize(user_id: str, key: bytes) -> str:
    """'u_' + the first 32 hex characters of HMAC-SHA256(key, user_id)."""
    digest = hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return PREFIX + digest[:HEX_CHARS]


def load_key(home: str | os.PathLike | None = None) -> bytes:
    """The pseudonym key: $THUMBS_PSEUDONYM_KEY, else the key file (created if absent).

    Error messages name where the key lives, never the key itself.
    """
    from_env = os.environ.get(KEY_ENV)
    if from_env is not None:
        # Stripped so a secret mounted with a trailing newline gives the same
        # pseudonyms as the same secret typed into a shell.
        key = from_env.strip().encode("utf-8")
        if len(key) < MIN_KEY_BYTES:
            raise ThumbsError(
                f"{KEY_ENV} is set but too short ({len(key)} bytes, need {MIN_KEY_BYTES}); "
                "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        return key
    path = Home.of(home).pseudonym_key
    try:
        if not path.exists():
            _create_key_file(path)
        key = path.read_bytes()
    except OSError as exc:
        raise ThumbsError(f"{path}: cannot read or create the pseudonym key ({exc.strerror})") from exc
    if len(key) < MIN_KEY_BYTES:
        raise ThumbsError(
            f"{path}: the pseudonym key is too short ({len(key)} bytes, need {MIN_KEY_BYTES}); "
            "restore it from a backup, or delete it to start new pseudonyms"
        )
    return key


def _create_key_file(path: Path) -> None:
    """Write 32 random bytes to `path` with mode 0600, atomically and without races.

    Two runs may start at once on a fresh home: each writes a private temp file
    and hard-links it into place; link fails for the loser, which then reads the
    winner's key, so both runs pseudonymize alike. (Not tasks.common.files.replaced_file:
    its rename would overwrite a key another run may already be using.)
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)  # mkdir's mode is cut by the umask and ignored if the dir existed
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)  # exactly 0600, whatever the umask
            out.write(secrets.token_bytes(KEY_BYTES))
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        except OSError:
            # Some filesystems have no hard links; a small race beats no key.
            if not path.exists():
                os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
