"""Failed trials, named by their cause: the one check every sweep reader runs.

A study whose trials all failed used to stop later with a symptom ("results table lacks
columns ['test_acc']"): failed rows have no metrics. ``check_trials`` runs right after the
sweep, before anything reads metrics: if every trial failed it raises ``TrialsFailed``
(CLI exit 3; 2 when every cause is a ``UserError``, bad input) with the count and the
first error of each kind; if some failed it returns
that line, which the study puts first in its report and CLI output.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from transferlab.errors import TrialsFailed

MESSAGE_CHARS = 240  # of each cause's first line: enough for a torch error's gist
_KIND = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Failed|Warning)|"
                   r"diverged|source)\b")


@dataclass(frozen=True)
class Cause:
    """One kind of failure: ``kind`` (an exception name, ``diverged``, ``source`` for a
    source that failed to pretrain), the first line of its first error, how many trials."""

    kind: str
    message: str
    count: int


@dataclass(frozen=True)
class FailureReport:
    failed: int
    total: int
    causes: tuple[Cause, ...]

    def line(self) -> str:
        """``3 of 54 trials failed: RuntimeError: ... [3 trials]; ...`` (one line)."""
        parts = [f"{c.message} [{c.count} trial{'s' if c.count != 1 else ''}]"
                 for c in self.causes]
        return f"{self.failed} of {self.total} trials failed: " + "; ".join(parts)

    def error(self, what: str, fix: str = "fix the cause and rerun with --retry-failed "
              "(`transferlab results DB --failed` lists them)") -> TrialsFailed:
        """``TrialsFailed`` saying ``what: <line>; <fix>``; exit code 2 when every cause is
        a ``UserError`` (bad input found inside the trials), else 3."""
        bad_input = all(c.kind == "UserError" for c in self.causes)
        return TrialsFailed(f"{what}: {self.line()}; {fix}", exit_code=2 if bad_input else 3)

    @property
    def all_failed(self) -> bool:
        return self.total > 0 and self.failed == self.total


def _first_line(error) -> str:
    text = "" if error is None or (isinstance(error, float) and error != error) else str(error)
    lines = [s.strip() for s in text.splitlines() if s.strip()]
    first = lines[0] if lines else "unknown error (none stored)"
    return first if len(first) <= MESSAGE_CHARS else first[:MESSAGE_CHARS - 3] + "..."


def _kind(first: str) -> str:
    m = _KIND.match(first)
    return m.group(1) if m else "error"


def summarize_failures(df: pd.DataFrame) -> FailureReport | None:
    """The failed trials of a results table (``status``, ``error`` columns), grouped by
    kind in order of first appearance; None if none failed (or the table is empty)."""
    if df is None or len(df) == 0 or "status" not in df.columns:
        return None
    failed = df[df["status"] == "failed"]
    if failed.empty:
        return None
    errors = failed["error"] if "error" in failed.columns else [None] * len(failed)
    counts: dict[str, list] = {}
    for error in errors:
        first = _first_line(error)
        entry = counts.setdefault(_kind(first), [first, 0])
        entry[1] += 1
    causes = tuple(Cause(k, m, n) for k, (m, n) in counts.items())
    return FailureReport(len(failed), len(df), causes)


def check_trials(frames: pd.DataFrame | Iterable[pd.DataFrame], what: str) -> str | None:
    """Raise ``TrialsFailed`` if every trial in ``frames`` failed; else the one-line
    failure report when some did (None when none did). ``what`` names the caller in the
    error ("study fewshot", "sweep runs/x.sqlite")."""
    if not isinstance(frames, pd.DataFrame):
        frames = [f for f in frames if f is not None and len(f)]
        frames = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    report = summarize_failures(frames)
    if report is None:
        return None
    if report.all_failed:
        raise report.error(what)
    return report.line()
