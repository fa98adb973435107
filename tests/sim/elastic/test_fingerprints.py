"""Scheduler speed-ups change no decision: the fast cases of `benchmarks/sim/elastic_fingerprints.py`
(every plan of small LoongServe and static-SP runs, incl. pauses and migrations) against the JSON
recorded before the speed-ups. The full set: ``python benchmarks/sim/elastic_fingerprints.py check
benchmarks/sim/elastic_fingerprints.json``."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from foundry.sim.elastic.calibration import LWM7BA800

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "sim"


def _load():
    spec = importlib.util.spec_from_file_location("elastic_fingerprints", BENCH / "elastic_fingerprints.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # (dataclasses look their module up)
    spec.loader.exec_module(mod)
    return mod


FP = _load()
WANT = json.loads((BENCH / "elastic_fingerprints.json").read_text())


@pytest.fixture(scope="module")
def models():
    return LWM7BA800.fit()


def test_every_case_has_a_recorded_fingerprint():
    assert {c.key for c in FP.CASES} == set(WANT)


@pytest.mark.parametrize("case", [c for c in FP.CASES if c.fast], ids=lambda c: c.key)
def test_schedule_fingerprint_is_unchanged(case, models):
    got, _ = FP.fingerprint(case, models)
    assert got == WANT[case.key]
