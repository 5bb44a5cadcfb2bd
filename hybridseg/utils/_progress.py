"""A small text progress bar on stderr (no dependency): redrawn in place on a terminal, one
line per step elsewhere (CI logs, files)."""

from __future__ import annotations

import sys
import time

__all__ = ["ProgressBar"]


class ProgressBar:
    """Progress of ``total`` steps, as ``desc [#####.....] 3/7 00:12 note``.

    Parameters
    ----------
    total : int
        Number of steps.
    desc : str, default=""
        Label in front of the bar.
    file : file-like, optional
        Where to draw; ``sys.stderr`` by default.
    enabled : bool, default=True
        ``False`` draws nothing (for ``--quiet`` and ``verbose=0``).
    width : int, default=24
        Characters of the bar itself.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> with ProgressBar(2, "fit", file=out) as bar:
    ...     bar.update(note="first")
    ...     bar.update(note="second")
    >>> out.getvalue().splitlines()[-1].startswith("fit [########################] 2/2")
    True
    """

    def __init__(self, total, desc="", *, file=None, enabled=True, width=24):
        self.total = max(int(total), 0)
        self.desc = desc
        self.file = sys.stderr if file is None else file
        self.enabled = enabled
        self.width = width
        self.n = 0
        self.start = time.perf_counter()
        self._tty = bool(getattr(self.file, "isatty", lambda: False)())
        self._last_len = 0
        if self.enabled and self._tty:
            self._draw("")

    def _line(self, note):
        frac = self.n / self.total if self.total else 1.0
        done = round(frac * self.width)
        secs = int(time.perf_counter() - self.start)
        bar = "#" * done + "." * (self.width - done)
        line = f"{self.desc} [{bar}] {self.n}/{self.total} {secs // 60:02d}:{secs % 60:02d}"
        return f"{line} {note}" if note else line

    def _draw(self, note):
        line = self._line(note)
        if self._tty:
            pad = max(self._last_len - len(line), 0)
            self.file.write("\r" + line + " " * pad)
            self._last_len = len(line)
        else:
            self.file.write(line + "\n")
        self.file.flush()

    def update(self, n=1, note=""):
        """Advance by ``n`` steps and redraw, with an optional note after the bar."""
        self.n = min(self.n + n, self.total) if self.total else self.n + n
        if self.enabled:
            self._draw(note)

    def write(self, text):
        """Print a line of text above the bar (without breaking it on a terminal)."""
        if not self.enabled:
            return
        if self._tty:
            self.file.write("\r" + " " * self._last_len + "\r")
        self.file.write(text + "\n")
        if self._tty:
            self._draw("")
        self.file.flush()

    def close(self):
        """End the bar's line on a terminal."""
        if self.enabled and self._tty:
            self.file.write("\n")
            self.file.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
