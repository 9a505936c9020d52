"""Progress of a long loop, for a person watching a terminal or reading a log.

On a terminal (stderr is a TTY) it is a tqdm bar. Under DVC, Dagster or CI, where stderr is a
pipe or a file, a bar would write thousands of carriage-return frames; there it is instead a plain
``logging`` record (logger ``ganops.core.progress``, INFO) every 5% of the work and at its end, e.g.

    train icgan: step 120/600 (20%) d_loss=1.234 g_loss=0.987 3.1 steps/s, eta 2m35s

Records rather than prints, so the CLI's logging configuration and Dagster's log capture show them.
The values shown are the latest the caller passed: the loop decides when it can afford to know them
(a GPU loss reaches the host only at log boundaries).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

logger = logging.getLogger(__name__)


class Progress:
    """``total`` units of work from ``initial`` (a resumed run's position).

    ``enabled``: None follows ``sys.stderr.isatty()`` (bar or log lines), True forces the bar, False
    shows nothing. ``section(label, total)`` splits the work into parts (epochs): on a terminal each
    part gets its own bar, which closes once full; in log lines the label replaces the unit count.
    """

    def __init__(self, desc: str, total: int, *, initial: int = 0, unit: str = "step",
                 enabled: bool | None = None, every: float = 0.05):
        self.desc, self.total, self.n, self.unit = desc, max(int(total), 1), int(initial), unit
        self.buckets = max(1, round(1 / every))
        self.values: dict[str, Any] = {}
        self.label: str | None = None
        self.section_left = 0
        self.t0, self.n0 = time.perf_counter(), self.n
        tty = sys.stderr.isatty() if enabled is None else enabled
        self.mode = "off" if enabled is False else "bar" if tty else "log"
        self.bar = self._bar(self.total, self.n, desc) if self.mode == "bar" else None

    def _bar(self, total: int, initial: int, desc: str, leave: bool = True):
        from tqdm.auto import tqdm
        return tqdm(total=total, initial=initial, desc=desc, unit=self.unit, leave=leave)

    def section(self, label: str, total: int) -> None:
        """Start a part of ``total`` units (it must be followed by exactly that many updates)."""
        self.label, self.section_left = label, int(total)
        if self.mode == "bar":
            if self.bar is not None:        # the whole-work bar, replaced by the parts' bars: erase it
                self.bar.leave = False
                self.bar.close()
            # leave=False: the caller's own per-part log line is what stays on screen
            self.bar = self._bar(total, 0, f"{self.desc} {label}", leave=False)

    def set_postfix(self, **values: Any) -> None:
        """The latest known values (losses); shown on the bar and in the next log line."""
        self.values.update(values)
        if self.bar is not None:
            self.bar.set_postfix({k: _fmt(v) for k, v in self.values.items()}, refresh=False)

    def update(self, n: int = 1, **values: Any) -> None:
        """``n`` more units done; ``values`` as in ``set_postfix``, set before this update is shown."""
        if values:
            self.set_postfix(**values)
        before, self.n = self.n, self.n + n
        if self.bar is not None:
            self.bar.update(n)
            if self.label is not None:
                self.section_left -= n
                if self.section_left <= 0:
                    self.bar.close()
                    self.bar = None
        elif self.mode == "log" and (self.n * self.buckets // self.total > before * self.buckets // self.total
                                     or self.n >= self.total):
            logger.info(self.line())

    def line(self) -> str:
        where = self.label if self.label is not None else f"{self.unit} {self.n}/{self.total}"
        parts = [f"{self.desc}: {where} ({100 * self.n // self.total}%)"]
        parts += [f"{k}={_fmt(v)}" for k, v in self.values.items()]
        elapsed, done = time.perf_counter() - self.t0, self.n - self.n0
        if done > 0 and elapsed > 0:
            rate = done / elapsed
            parts.append(f"{rate:.1f} {self.unit}s/s, eta {_duration((self.total - self.n) / rate)}")
        return " ".join(parts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _duration(seconds: float) -> str:
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
