"""The max-rate search finds the crossing of a known score curve; per-token and Zipf SLO scores."""

import math

import pytest

from foundry.serve.bench.report import RequestRecord
from foundry.sim.elastic.calibration import LWM7BA800
from foundry.sim.elastic.slo import find_max_rate, per_token_score, zipf_attainment


def test_search_interpolates_the_crossing_of_a_linear_score():
    res = find_max_rate(lambda r: r / 3.0, start=1.0)  # crosses 1 at 3 req/s
    assert res.bracketed and res.rate == pytest.approx(3.0, rel=1e-9)
    down = find_max_rate(lambda r: r / 0.3, start=5.0)
    assert down.bracketed and down.rate == pytest.approx(0.3, rel=1e-9)
    assert all(r > 0 for r, _ in down.points)


def test_search_reports_an_unbracketed_bound_and_an_infinite_score():
    never = find_max_rate(lambda r: 0.1, start=1.0, max_evals=4)
    assert not never.bracketed and never.rate == 8.0
    step = find_max_rate(lambda r: 0.5 if r < 2.5 else math.inf, start=1.0)
    assert step.bracketed and 2.0 <= step.rate < 2.5


def _rec(prompt, out, send, first, finish):
    return RequestRecord(prompt, out, send, first, finish, out)


def test_per_token_score_and_zipf_attainment():
    recs = [_rec(90, 10, 0.0, 0.1, 0.5), _rec(190, 10, 0.0, 0.2, 1.0)]  # 5 ms/token each
    assert per_token_score(recs, "leval") == pytest.approx(0.005 / 0.0035)
    assert per_token_score([*recs, RequestRecord(5, 5, 0.0)], "leval") == math.inf
    sp4 = LWM7BA800.fit().sp4_tp2
    ok = _rec(1000, 11, 0.0, 14.0, 14.4)  # TTFT under the 15 s floor, TPOT 40 ms
    slow_ttft = _rec(1000, 11, 0.0, 16.0, 16.4)
    slow_tpot = _rec(1000, 11, 0.0, 1.0, 1.6)  # 60 ms per token
    one = _rec(1000, 1, 0.0, 3.0, 3.0)  # no TPOT: TTFT alone
    assert zipf_attainment([ok, slow_ttft, slow_tpot, one], sp4) == 0.5
