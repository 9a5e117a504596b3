"""The per-request inspection budget: CPU time, with a wall-clock ceiling as the safety net."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Budget:
    """Per-request inspection budget; the engine stops early once it is spent.

    Two limits: ``cpu`` seconds of this thread's CPU time (``cpu_clock``, from ``cpu_start``)
    and the wall-clock ``deadline`` (``clock``), the safety net. CPU time, so that a loaded
    machine (threads waiting for a core, or for the GIL) does not cut inspection short: the
    work inspection does is what the budget bounds. ``cpu=None``: the deadline alone.

    The CPU clock is a system call (~0.4 µs), the wall clock a memory read: a thread's CPU
    time never runs ahead of the wall time it spends, so while the wall time spent is under
    the CPU budget the CPU clock is not read at all. Clocks are injectable so that tests
    can make time pass without sleeping. ``reason`` says which limit stopped inspection.
    """

    deadline: float
    exhausted: bool = False
    clock: Callable[[], float] = field(default=time.perf_counter)
    cpu: float | None = None
    cpu_start: float = 0.0
    wall_start: float = 0.0
    cpu_clock: Callable[[], float] = field(default=time.thread_time)
    reason: str = ""

    @classmethod
    def start(
        cls,
        cpu: float,
        wall: float,
        clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] = time.thread_time,
        wall_start: float | None = None,
        cpu_start: float | None = None,
    ) -> Budget:
        """A budget of ``cpu`` CPU seconds and ``wall`` wall seconds from now (or from the
        given start readings: time already spent on the request counts)."""
        now = clock() if wall_start is None else wall_start
        return cls(
            deadline=now + wall,
            clock=clock,
            cpu=cpu,
            cpu_start=cpu_clock() if cpu_start is None else cpu_start,
            wall_start=now,
            cpu_clock=cpu_clock,
        )

    def expired(self) -> bool:
        if self.exhausted:
            return True
        now = self.clock()
        if now > self.deadline:
            self.exhausted, self.reason = True, "wall"
        elif (
            self.cpu is not None
            and now - self.wall_start > self.cpu  # else the CPU time spent is under it too
            and self.cpu_clock() - self.cpu_start > self.cpu
        ):
            self.exhausted, self.reason = True, "cpu"
        return self.exhausted


__all__ = ["Budget"]
