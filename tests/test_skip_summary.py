"""The one line every test run ends with: what skipped here and why (tests/conftest.py)."""

from __future__ import annotations


def test_skip_summary_groups_machine_reasons() -> None:
    """The one line ``make test`` ends with (tests/conftest.py)."""
    from conftest import skip_summary

    line = skip_summary(["Skipped: needs Debian's chromium and chromium-driver at /usr/bin"] * 2
                        + ["gpu lane: no CUDA device here"] * 3 + ["root can write anywhere"])
    assert line == ("skipped: 3 gpu lane (no CUDA), 2 browser check(s) (no chromium), "
                    "1 root can write anywhere")
