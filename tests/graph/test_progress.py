"""graph.progress: log lines with rate and ETA when stderr is not a terminal."""

from __future__ import annotations

import logging

from graph.progress import progress


def test_progress_off_a_terminal_logs_rate_and_eta(caplog, monkeypatch):
    import graph.progress as gp

    monkeypatch.setattr(gp, "_ENABLED", True)  # a CLI run earlier in the session may have turned it off (--no-progress)
    caplog.set_level(logging.INFO, logger="socialrec.progress")
    out = list(progress(range(4), "write-back User.x", unit="rows", every_s=0.0, weight=lambda _: 10, total=40))
    assert out == [0, 1, 2, 3]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("write-back User.x: 10/40 rows (25 %)") and "rows/s, ETA" in lines[0]
    assert lines[-1].endswith("(done)")


def test_progress_disabled_is_silent(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="socialrec.progress")
    import graph.progress as gp

    monkeypatch.setattr(gp, "_ENABLED", False)
    assert list(progress([1, 2], "x", every_s=0.0)) == [1, 2]
    assert not caplog.records
