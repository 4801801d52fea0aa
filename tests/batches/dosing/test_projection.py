"""Projection of viable cells at harvest from in-process counts, and its error on completed batches."""
from __future__ import annotations

import math

import pytest

from batches.dosing.projection import backtest, backtest_summary, fit_log_linear, project_batch


def test_log_linear_fit_recovers_exponential_growth_and_its_uncertainty():
    exact = [(d, 5e7 * math.exp(0.4 * d)) for d in (0, 3, 7, 11)]
    fit = fit_log_linear(exact, 14)
    assert fit.slope == pytest.approx(0.4) and math.exp(fit.intercept) == pytest.approx(5e7)
    assert fit.log_se == pytest.approx(0.05)  # the floor: a perfect fit still has a range
    noisy = [(0, 5e7), (3, 2.5e8), (7, 6e8), (11, 5e9)]
    assert fit_log_linear(noisy, 14).log_se > 0.2
    assert fit_log_linear([(3, 1e8)], 14) is None
    two = fit_log_linear([(0, 5e7), (3, 1.5e8)], 14)
    assert not two.from_fit and two.log_se > 0.35


def test_backtest_on_completed_batches_reports_the_error(db_session, completed_batch, seed_specs):
    batch = completed_batch("MSNK")
    [row] = backtest(db_session, "MsNK")
    assert row.lot_number == batch.lot_number
    assert row.actual > 0 and row.projected > 0
    assert row.error_pct == pytest.approx(100 * (row.projected - row.actual) / row.actual)
    summary = backtest_summary([row])
    assert summary["batches"] == 1 and summary["median_abs_error_pct"] == pytest.approx(abs(row.error_pct))
    # a batch stopped before harvest projects from its counts so far
    running = completed_batch("MSNK", stop_before="harvest")
    p = project_batch(db_session, running)
    assert p is not None and p.low < p.viable_cells < p.high
    assert p.harvest_at > running.started_at
