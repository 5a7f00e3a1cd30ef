"""Progress of a long byte count (a dump downloaded, or a large local one hashed): a callback
called about every 1 %, and the reporter that turns it into log lines every 5 % and a bar on a
terminal, each saying which of the two it is."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

UNKNOWN_SIZE_STEP = 64 << 20

ProgressCallback = Callable[[int, int | None, str], None]
"""`progress(done_bytes, total_bytes_or_None, activity)`; `activity` says what the bytes are
for, as a past participle: "downloaded", "hashed"."""


def progress_reporter(
    log: Callable[[str], None],
    *,
    every_percent: int = 5,
    every_bytes: int = 1 << 30,
    bar: TextIO | None = None,
) -> ProgressCallback:
    """A progress callback logging a line every `every_percent` % (every `every_bytes` when the
    size is unknown) and, given a terminal stream as `bar`, redrawing a one-line text bar on it.
    """
    return _Reporter(log, every_percent, every_bytes, bar)


class Ticker:
    """Calls `progress` at most about every 1 % (or 64 MB), never twice for the same count, for
    bytes `activity` (see ProgressCallback)."""

    def __init__(self, progress: ProgressCallback | None, activity: str = "downloaded") -> None:
        self._progress = progress
        self._activity = activity
        self._next = 0
        self._last: int | None = None

    def __call__(self, done: int, total: int | None) -> None:
        if self._progress is None:
            return
        if self._last is not None and done < self._last:
            self._next = 0
        if done >= self._next or done == total:
            if done != self._last:
                self._progress(done, total, self._activity)
            self._last = done
            self._next = done + (max(total // 100, 1) if total else UNKNOWN_SIZE_STEP)

    def finish(self, size: int) -> None:
        if self._progress is not None and self._last != size:
            self._progress(size, size, self._activity)
            self._last = size


class _Reporter:
    """See `progress_reporter`."""

    WIDTH = 30

    def __init__(
        self, log: Callable[[str], None], every_percent: int, every_bytes: int, bar: TextIO | None
    ) -> None:
        self._log = log
        self._percent = max(every_percent, 1)
        self._bytes = max(every_bytes, 1)
        self._bar = bar
        self._next = 0

    def __call__(self, done: int, total: int | None, activity: str) -> None:
        if self._bar is not None:
            self._draw(done, total, activity)
        mark = done * 100 // total if total else done // self._bytes
        step = self._percent if total else 1
        if mark < self._next - step:
            self._next = 0
        if mark >= self._next or done == total:
            if total:
                self._log(f"dump: {activity} {mark} % ({human(done)} of {human(total)})")
            else:
                self._log(f"dump: {activity} {human(done)} so far (size unknown)")
            self._next = (mark // step + 1) * step

    def _draw(self, done: int, total: int | None, activity: str) -> None:
        if total:
            filled = min(done * self.WIDTH // total, self.WIDTH)
            line = (
                f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done * 100 // total:3d} % "
                f"{human(done)} / {human(total)}"
            )
        else:
            line = f"{human(done)} {activity}"
        end = "\n" if done == total else ""
        self._bar.write(f"\r{line:<60}{end}")
        self._bar.flush()


def human(size: int) -> str:
    """A byte count as a person reads it: 270.5 KB, 2.9 GB."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
