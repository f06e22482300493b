"""The CPU priority of the server's helper processes (compaction, shadows)."""

from __future__ import annotations

import contextlib
import os


def lowest_priority() -> None:
    """``nice 19``: the operating system gives this process only the CPU the answers leave.
    (Not ``SCHED_IDLE``: it measured no better here, and on a saturated server it would
    never run, so the write-ahead files would grow without end.)"""
    with contextlib.suppress(OSError):  # a platform without nice: normal priority
        os.nice(19)
