"""OpenLineage events through the official client, received by a real HTTP server on
127.0.0.1 as Marquez would receive them: set OPENLINEAGE_URL and the events of an
ingest run (START, COMPLETE) and of a failed evaluate run (FAIL) arrive, in the
spec's shape, with datasets named by its naming rule; the local file keeps them too;
a consumer that is down costs a warning, not the run."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tasks.common.home import Home
from tasks.common.settings import PROJECT_ROOT, ThumbsError

DEMO_HH = PROJECT_ROOT / "demo_data/hh-rlhf/helpful-base.test.head200.jsonl.gz"


class Receiver(ThreadingHTTPServer):
    """Collects the JSON bodies POSTed to it, with their paths."""

    def __init__(self):
        self.received: list[tuple[str, dict]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler):  # noqa: N802, N805
                body = handler.rfile.read(int(handler.headers["Content-Length"]))
                self.received.append((handler.path, json.loads(body)))
                handler.send_response(201)
                handler.end_headers()

            def log_message(handler, *args):  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture()
def receiver(monkeypatch):
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{server.server_address[1]}")
    yield server
    server.shutdown()
    server.server_close()


def test_events_reach_a_consumer_over_http(receiver, home, prefect_harness):
    from flows.evaluate import evaluate_flow
    from flows.ingest import ingest_flow

    [loaded] = ingest_flow("hh", [str(DEMO_HH)], home=str(home))
    with pytest.raises(ThumbsError, match="no such checkpoint"):
        evaluate_flow("no-such-checkpoint", home=str(home))

    assert {path for path, _ in receiver.received} == {"/api/v1/lineage"}
    events = [event for _, event in receiver.received]
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("ingest", "START"), ("ingest", "COMPLETE"), ("evaluate", "FAIL")]
    assert all(e["schemaURL"].startswith("https://openlineage.io/spec/") for e in events)
    assert len({e["run"]["runId"] for e in events[:2]}) == 1

    start, complete, fail = events
    assert start["inputs"] == complete["inputs"]
    [source_file] = complete["inputs"]
    assert (source_file["namespace"], source_file["name"]) == ("file", str(DEMO_HH))
    outputs = {d["name"]: d for d in complete["outputs"]}
    assert set(outputs) == {"warehouse.raw.records", "warehouse.staging.stg_hh__pairs", "warehouse.main.quarantine"}
    assert {d["namespace"] for d in outputs.values()} == {f"duckdb://{socket.gethostname()}{Home.of(home).warehouse}"}
    written = {name: d["facets"]["thumbs"]["properties"]["rowsWritten"] for name, d in outputs.items()}
    assert written == {"warehouse.raw.records": loaded.rows_read,
                       "warehouse.staging.stg_hh__pairs": loaded.rows_loaded,
                       "warehouse.main.quarantine": loaded.rows_quarantined}
    assert start["run"]["facets"]["thumbs"]["config"]["source"] == "hh"
    assert "no such checkpoint" in fail["run"]["facets"]["errorMessage"]["message"]

    # the local file holds the same events, one per line
    kept = [json.loads(line) for line in Home.of(home).openlineage.read_text().splitlines()]
    assert [(e["run"]["runId"], e["eventType"]) for e in kept] == [(e["run"]["runId"], e["eventType"]) for e in events]


def test_a_consumer_that_is_down_costs_a_warning_not_the_run(home, prefect_harness, monkeypatch, capfd):
    from flows.ingest import ingest_flow

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # the client's own configuration through the environment: HTTP, no retries (its default
    # retries a refused connection for about 9 s per event)
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "http")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__RETRY__TOTAL", "0")
    [loaded] = ingest_flow("hh", [str(DEMO_HH)], home=str(home))
    assert loaded.status == "loaded"
    assert "thumbs: warning: OpenLineage event not sent" in capfd.readouterr().err
    assert len(Path(Home.of(home).openlineage).read_text().splitlines()) == 2
