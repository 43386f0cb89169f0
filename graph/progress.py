"""Progress of long steps: a tqdm bar (rate, ETA) on a terminal, periodic log lines otherwise.

``for x in progress(items, "write-back User.als_embedding", unit="rows"): ...`` — on a terminal
(stderr is a TTY) a tqdm bar; in CI, cron or a pipe a log line every ``every_s`` seconds
(``<desc>: 1200/5000 rows (24 %), 310 rows/s, ETA 12 s``) and one at the end; nothing when
``enabled`` is False or after :func:`set_enabled(False) <set_enabled>` (the CLI's ``--no-progress``).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
log = logging.getLogger("socialrec.progress")
_ENABLED = True


def set_enabled(enabled: bool) -> None:
    """Turn every :func:`progress` of this process on or off (``socialrec ... --no-progress``)."""
    global _ENABLED
    _ENABLED = bool(enabled)


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it", enabled: bool = True,
             every_s: float = 30.0, weight=None) -> Iterator[T]:
    """Yield ``items`` while showing progress.

    Args:
        items: what to iterate.
        desc: what is being done (no personal data).
        total: number of steps (default ``len(items)`` when it has one).
        unit: unit of one step (``rows``, ``fits``, ...).
        enabled: False = no output at all.
        every_s: seconds between log lines when not on a terminal.
        weight: optional ``f(item) -> int`` steps an item counts for (e.g. rows of a batch).
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if not enabled or not _ENABLED:
        yield from items
        return
    if sys.stderr.isatty():
        from tqdm import tqdm

        with tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True) as bar:
            for item in items:
                yield item
                bar.update(weight(item) if weight else 1)
        return
    t0 = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += weight(item) if weight else 1
        now = time.monotonic()
        if now - last >= every_s:
            last = now
            log.info("%s", _line(desc, done, total, unit, now - t0))
    if time.monotonic() - t0 >= every_s:
        log.info("%s (done)", _line(desc, done, total, unit, time.monotonic() - t0))


def _line(desc: str, done: int, total: int | None, unit: str, elapsed: float) -> str:
    rate = done / elapsed if elapsed > 0 else 0.0
    if total:
        eta = (total - done) / rate if rate > 0 else float("nan")
        return f"{desc}: {done}/{total} {unit} ({100 * done / total:.0f} %), {rate:.1f} {unit}/s, ETA {eta:.0f} s"
    return f"{desc}: {done} {unit}, {rate:.1f} {unit}/s"
