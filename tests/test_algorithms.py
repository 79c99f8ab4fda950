"""The loss registry (tasks/train/algorithms.py) is the one list of algorithms:
the CLI and TrainConfig offer exactly its names, and listing them needs no torch."""
from __future__ import annotations

import argparse
import subprocess
import sys
import typing

from flows.cli import build_parser
from schemas.train import TrainConfig
from tasks.common.settings import PROJECT_ROOT
from tasks.sources import SOURCES
from tasks.train.algorithms import LOSSES


def choices(verb: str, dest: str) -> list[str]:
    verbs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(next(a for a in verbs.choices[verb]._actions if a.dest == dest).choices)


def test_cli_and_config_offer_exactly_the_registered_names():
    assert choices("train", "algo") == choices("nightly", "algo") == list(LOSSES)
    assert list(typing.get_args(TrainConfig.model_fields["algo"].annotation)) == list(LOSSES)
    assert choices("ingest", "source") == list(SOURCES)


def test_the_cli_lists_algorithms_and_sources_without_importing_torch():
    code = ("import sys; from flows.cli import build_parser; import schemas.train, schemas.nightly; build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
