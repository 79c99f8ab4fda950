"""Security: analysts' queries cannot write or reach files, the pseudonym key and
raw user ids never leave the places they belong, files are written only under
THUMBS_HOME, and no SQL is built by string formatting.

test_cli.py already refuses INSERT/UPDATE/DELETE/CREATE TABLE/DROP/ATTACH/COPY TO/
INSTALL/SET/PRAGMA/read_csv; this goes through the rest of DuckDB's ways to write,
load code, change settings or touch the file system.
"""
from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from flows.cli import main
from samples import DEMO_HH_HELPFUL
from tasks.ingest.load import ingest_file
from tasks.warehouse.publish import publish
from tasks.common.settings import PROJECT_ROOT
from tasks.sources import bind_source
from tasks.warehouse.connection import connect

from . import ledger
from .corpus import EXAMPLES
from .harness import sha256_file, subprocess_env
from .sqlscan import scan_source, scan_tree

# --- thumbs query cannot write ---------------------------------------------------------

REFUSED = [
    "copy (select * from feedback) to '{out}/feedback.parquet' (format parquet)",
    "copy quarantine to '{out}/q.csv'",
    "export database '{out}/export'",
    "load '{out}/evil.duckdb_extension'",
    "load httpfs",
    "force install json",
    "install parquet from '{out}'",
    "create view leak as select 1",
    "create macro m(x) as x",
    "create sequence s",
    "create schema scratch",
    "create type mood as enum ('up', 'down')",
    "create index i on quarantine(source)",
    "create or replace table feedback as select 1 as x",
    "create secret (type s3, key_id 'a', secret 'b')",
    "alter table feedback add column x int",
    "alter table feedback rename to fb",
    "comment on table feedback is 'x'",
    "truncate quarantine",
    "insert into quarantine select * from quarantine returning 1",
    "update ingest_runs set rows_read = 0 where true",
    "select 1; delete from quarantine",
    "attach ':memory:' as scratch",
    "attach '{out}/new.duckdb' as other",
    "detach warehouse",
    "set lock_configuration = false",
    "reset lock_configuration",
    "set global enable_external_access = true",
    "set allow_unsigned_extensions = true",
    "set temp_directory = '{out}'",
    "pragma memory_limit = '1GB'",
    "pragma threads = 1",
    "pragma disable_optimizer",
    "pragma enable_checkpoint_on_shutdown",
    "select * from read_text('/etc/hostname')",
    "select * from read_blob('{home}/warehouse.duckdb')",  # the live warehouse, raw bytes
    "select * from read_blob('{home}/published/../warehouse.duckdb')",
    "attach '{home}/warehouse.duckdb' as live (read_only)",
    "select * from glob('{home}/*')",
    "select * from read_parquet('{home}/**/*.parquet')",
    "select * from read_json('{home}/lineage/openlineage.jsonl')",
    "select * from sniff_csv('/etc/passwd')",
    "select * from '{home}/secrets/pseudonym.key'",
]
# Session-local or no-ops on a read-only file, yet not reads: refused all the same,
# so "only reads run" stays a rule a person can state in one line.
REFUSED += [
    "checkpoint", "vacuum", "analyze", "begin transaction", "load json", "load parquet",
    "create temp table scratch as select * from feedback; select count(*) from scratch",
    "create temp view v as select 1",
    "select 1; create temp table t as select 1",
]
READS = ["select count(*) from feedback", "describe feedback", "show tables", "summarize quarantine",
         "explain select * from preference_pairs", "with t as (select 1 as a) select a from t; select 2"]


@pytest.fixture(scope="module")
def analyst_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("analyst-home")
    with connect(home) as con:
        ingest_file(con, bind_source("hh"), DEMO_HH_HELPFUL, "seed")
        publish(con, home)
    (home / "lineage").mkdir(exist_ok=True)
    (home / "lineage" / "openlineage.jsonl").write_text('{"eventType": "START"}\n')
    return home


def ask(home: Path, sql: str, capsys) -> tuple[int, str, str]:
    code = main(["--home", str(home), "query", sql])
    out, err = capsys.readouterr()
    return code, out, err


def files_under(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("statement", REFUSED)
def test_query_refuses(statement, analyst_home, tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    published = analyst_home / "published" / "warehouse.duckdb"
    sql = statement.format(out=out_dir, home=analyst_home, published=published)
    before = files_under(analyst_home)
    code, out, err = ask(analyst_home, sql, capsys)
    ledger.hostile_query()
    assert code == 1 and err.startswith("thumbs: error: query refused: ") and err.count("\n") == 1, (code, err)
    assert out == ""
    assert files_under(analyst_home) == before and list(out_dir.iterdir()) == []


@pytest.mark.parametrize("statement", READS)
def test_reads_run_and_leave_no_trace(statement, analyst_home, capsys):
    before = files_under(analyst_home)
    code, out, err = ask(analyst_home, statement, capsys)
    assert code == 0 and out, err
    assert files_under(analyst_home) == before


# --- the pseudonym key and raw user ids ----------------------------------------------------

KEY = "reliability-secret-" + hashlib.sha256(b"thumbs fault suite").hexdigest()[:24]


def hostile_logs(folder: Path) -> tuple[Path, Path, set[str]]:
    """support-bot and ab-test, plus rows whose user ids sit where a careless loader leaks them."""
    lines = (EXAMPLES / "support-bot.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    users = {r["user"] for r in records}
    extra_users = {"leaky.one@example.com", "leaky.two@example.com", "leaky.three@example.com",
                   "leaky.four@example.com", "  padded.user@example.com  "}
    base = dict(records[0], id="evt_leak_1")
    lines += [
        json.dumps(dict(base, user="leaky.one@example.com", feedback="meh")),  # quarantined: bad rating
        json.dumps(dict(base, id="evt_leak_2", user={"email": "leaky.two@example.com"})),  # quarantined: type
        json.dumps(dict(base, id="evt_leak_3", user="leaky.three@example.com"))[:-20],  # broken JSON
        json.dumps(dict(base, id="evt_leak_4", user="leaky.four@example.com", created_at="never")),
        json.dumps(dict(base, id="evt_leak_5", user="  padded.user@example.com  ")),  # loads, trimmed
    ]
    log = folder / "support-bot-hostile.jsonl"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    csv_text = (EXAMPLES / "ab-test.csv").read_text(encoding="utf-8")
    ab_users = {line.split(",")[3] for line in csv_text.splitlines()[1:]}
    first = csv_text.splitlines()[1].split(",")
    csv_text += ",".join(["ab-leak-1", first[1], first[2], "cust-leaky", *first[4:]]) + ",surplus\n"
    ab = folder / "ab-test-hostile.csv"
    ab.write_text(csv_text, encoding="utf-8")
    return log, ab, {u.strip() for u in users | extra_users | ab_users | {"cust-leaky"}}


def every_value(database: Path) -> str:
    """Every cell of every table and view of a DuckDB file, as text."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        columns = con.execute("SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                              "WHERE NOT internal AND database_name = current_database()").fetchall()
        parts = []
        for schema, table, column in columns:
            rows = con.execute(f'SELECT CAST("{column}" AS VARCHAR) FROM "{schema}"."{table}"').fetchall()
            parts += [row[0] for row in rows if row[0] is not None]
        return "\n".join(parts)
    finally:
        con.close()


def prefect_records() -> str:
    """Artifacts, flow-run parameters and logs the Prefect server holds."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        artifacts = [a.data for a in client.read_artifacts()]
        runs = [json.dumps(r.parameters, default=str) for r in client.read_flow_runs()]
        logs = [entry.message for entry in client.read_logs()]
    return "\n".join(str(x) for x in artifacts + runs + logs)


def leaks(haystack_text: str, haystack_bytes: bytes, needles: dict[str, bytes]) -> list[str]:
    return [name for name, needle in needles.items()
            if needle in haystack_bytes or needle.decode("utf-8", "replace") in haystack_text]


def test_pseudonym_key_and_raw_user_ids_never_leave_their_place(home, tmp_path, prefect_harness, monkeypatch,
                                                                 capsys):
    monkeypatch.setenv("THUMBS_PSEUDONYM_KEY", KEY)
    log, ab, users = hostile_logs(tmp_path)
    commands = [["ingest", "log", str(log), "--mapping", str(EXAMPLES / "support-bot.mapping.yaml")],
                ["ingest", "log", str(ab), "--mapping", str(EXAMPLES / "ab-test.mapping.yaml")],
                ["binarize"], ["query", "select * from feedback", "--format", "json"]]
    for argv in commands:
        assert main(["--home", str(home), *argv]) == 0, argv
    printed = "".join(capsys.readouterr())

    key = KEY.encode()
    needles = {"the key": key, "the key in hex": key.hex().encode(),
               **{f"user id {u!r}": u.encode() for u in users}}
    files = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    assert files, "nothing written?"
    found = {str(p.relative_to(home)): leaks("", data, needles) for p, data in files.items()}
    tables = {str(db.relative_to(home)): leaks(every_value(db), b"", needles)
              for db in (home / "warehouse.duckdb", home / "published" / "warehouse.duckdb")}
    elsewhere = {"terminal output": leaks(printed, printed.encode(), needles),
                 "Prefect artifacts, parameters and logs": leaks(prefect_records(), b"", needles)}
    assert {k: v for k, v in {**found, **tables, **elsewhere}.items() if v} == {}

    # Keyed, not a plain hash: the stored pseudonym is HMAC-SHA256(key, id).
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        stored = {p for (p,) in con.execute("SELECT user_pseudonym FROM staging.stg_log__ratings "
                                            "UNION SELECT user_pseudonym FROM staging.stg_log__pairs").fetchall()}
        withheld = con.execute("SELECT count(*) FROM quarantine WHERE raw LIKE '[row withheld%'").fetchone()[0]
    finally:
        con.close()
    expected = {"u_" + hmac.new(key, u.encode(), hashlib.sha256).hexdigest()[:32] for u in users}
    assert stored and stored <= expected
    assert not stored & {"u_" + hashlib.sha256(u.encode()).hexdigest()[:32] for u in users}
    assert withheld >= 2  # the broken JSON row and the CSV row with a surplus field


def test_key_file_never_leaves_secrets(home, tmp_path, prefect_harness, monkeypatch):
    monkeypatch.delenv("THUMBS_PSEUDONYM_KEY", raising=False)
    log, _, users = hostile_logs(tmp_path)
    assert main(["--home", str(home), "ingest", "log", str(log),
                 "--mapping", str(EXAMPLES / "support-bot.mapping.yaml")]) == 0
    key_file = home / "secrets" / "pseudonym.key"
    key = key_file.read_bytes()
    assert len(key) == 32 and (key_file.stat().st_mode & 0o777) == 0o600
    assert (key_file.parent.stat().st_mode & 0o777) == 0o700
    needles = {"the key": key, "the key in hex": key.hex().encode()}
    found = {str(p.relative_to(home)): leaks("", p.read_bytes(), needles)
             for p in home.rglob("*") if p.is_file() and p != key_file}
    found["tables"] = leaks(every_value(home / "warehouse.duckdb"), b"", needles)
    assert {k: v for k, v in found.items() if v} == {}


# --- files are written under THUMBS_HOME only ----------------------------------------------

WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")
CALL = re.compile(r'^\d+\s+(\w+)\((?:AT_FDCWD|-?\d+|\d+<[^>]*>), "([^"]*)"(?:, (?:AT_FDCWD|-?\d+), "([^"]*)")?([^)]*)\)'
                  r"\s+=\s+(-?\d+)")
MUTATING = {"mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir", "link",
            "linkat", "symlink", "symlinkat", "truncate", "chmod", "fchmodat", "creat"}


def snapshot(folders: list[Path]) -> dict[str, tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for folder in folders for p in folder.rglob("*")}


def test_files_are_written_only_under_thumbs_home(prefect_api_url, tmp_path):
    home, cwd, user_home, temp, prefect_home, data = (tmp_path / n for n in
                                                      ("thumbs-home", "cwd", "user-home", "tmp", "prefect", "data"))
    for folder in (cwd, user_home, temp, prefect_home, data):
        folder.mkdir()
    log, ab, _ = hostile_logs(data)
    hh = data / "hh.jsonl"
    hh.write_bytes(gzip.decompress(DEMO_HH_HELPFUL.read_bytes()))
    script = textwrap.dedent(f"""
        import sys
        from flows.cli import main
        home = {str(home)!r}
        for argv in ([\"ingest\", \"hh\", {str(hh)!r}],
                     [\"ingest\", \"log\", {str(log)!r}, \"--mapping\", {str(EXAMPLES / 'support-bot.mapping.yaml')!r}],
                     [\"ingest\", \"log\", {str(ab)!r}, \"--mapping\", {str(EXAMPLES / 'ab-test.mapping.yaml')!r}],
                     [\"binarize\"], [\"query\", \"select count(*) from feedback\"]):
            assert main([\"--home\", home, *argv]) == 0, argv
    """)
    env = subprocess_env(prefect_api_url, HOME=str(user_home), TMPDIR=str(temp), PREFECT_HOME=str(prefect_home))
    command = [sys.executable, "-c", script]
    trace = tmp_path / "strace.log"
    strace = shutil.which("strace")
    if strace:
        command = [strace, "-f", "-qq", "-o", str(trace), "-e",
                   "trace=open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir,"
                   "link,linkat,symlink,symlinkat,truncate,chmod,fchmodat", *command]
    watched = [cwd, user_home, temp, data, prefect_home]
    before = snapshot(watched)
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert snapshot(watched) == before, "files changed outside THUMBS_HOME"
    assert (home / "warehouse.duckdb").exists() and (home / "secrets" / "pseudonym.key").exists()
    if not strace:
        pytest.skip("strace not installed: only the watched folders were checked")
    allowed = (str(home) + "/", str(home), "/dev/", "/proc/self/")
    outside = set()
    for line in trace.read_text().splitlines():
        match = CALL.match(line)
        if not match or int(match.group(5)) < 0:
            continue
        call, path, second, rest = match.group(1), match.group(2), match.group(3), match.group(4)
        writes = call in MUTATING or (call in ("open", "openat") and WRITE_FLAGS.search(rest))
        for target in filter(None, (path, second if call.startswith(("rename", "link", "symlink")) else None)):
            absolute = os.path.normpath(target if target.startswith("/") else os.path.join(cwd, target))
            if writes and not absolute.startswith(allowed):
                outside.add(f"{call} {absolute}")
    assert any(p.startswith(str(home)) for p in written_paths(trace)), "the trace shows no write at all?"
    # The checkout's .git has a test of its own below (code_version runs git).
    assert sorted(o for o in outside if not o.split(" ", 1)[1].startswith(str(PROJECT_ROOT / ".git"))) == []


def written_paths(trace: Path) -> set[str]:
    """Paths a traced process opened for writing or created, attempts included."""
    paths = set()
    for line in trace.read_text().splitlines():
        match = CALL.match(line)
        if match and (match.group(1) in MUTATING or WRITE_FLAGS.search(match.group(4))):
            paths.add(match.group(2))
    return paths


def test_code_version_does_not_write_the_checkout(tmp_path):
    strace = shutil.which("strace")
    if not strace or not (PROJECT_ROOT / ".git").exists():
        pytest.skip("needs strace and a git checkout")
    trace = tmp_path / "strace.log"
    done = subprocess.run([strace, "-f", "-qq", "-o", str(trace), "-e", "trace=open,openat,creat,rename,unlink",
                           sys.executable, "-c", "from tasks.common.settings import code_version; print(code_version())"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p for p in written_paths(trace) if p.startswith(str(PROJECT_ROOT))) == []


# --- no SQL built by string formatting ------------------------------------------------------

def test_no_sql_is_built_by_string_formatting():
    violations, files = scan_tree(PROJECT_ROOT)
    assert files > 20
    assert [str(v) for v in violations] == []


def test_the_sql_scanner_catches_every_way_of_building_sql():
    caught = scan_source(textwrap.dedent('''
        def bad(con, name, rows):
            con.execute(f"SELECT * FROM {name}")
            con.execute("SELECT * FROM %s" % name)
            con.sql("SELECT * FROM {}".format(name))
            con.execute("SELECT * FROM " + name)
            query = f"DELETE FROM {name}"
            con.execute(query)
            text = "SELECT 1"
            text += name
            con.execute(text)
            duckdb.sql(", ".join(rows))
            con.execute(sql=f"SELECT {name}")
            con.table(f"{name}_x")
        def good(con, name):
            con.execute("SELECT * FROM t WHERE name = $name", {"name": name})
            con.execute("CREATE TABLE t ("
                        " a INT)")
            text = read_sql("x.sql")
            con.execute(text)
            run_sql(con, f"load/{name}.sql")
            con.execute(f"SELECT 1")
    '''), "example.py")
    assert [(v.line, v.how.split(" (")[0]) for v in caught] == [
        (3, "an f-string"), (4, "%-formatting"), (5, ".format()"), (6, "concatenation"), (8, "an f-string"),
        (11, "concatenation"), (12, "str.join"), (13, "an f-string"), (14, "an f-string")]
