"""A VM campaign's progress on the terminal, as harness/status.cpp draws a host run's.

On a terminal: one live line, repainted twice a second, with elapsed / planned time, cases done / total,
each VM's current case and phase, the race's ops/s (from the guest heartbeat's progress counter) and the
findings so far by class; the runner's own lines print above it without tearing it. Not a terminal
(stderr piped, TERM=dumb, FSRACE_PLAIN_PROGRESS set): only the runner's plain lines. Quiet: nothing.
"""
from __future__ import annotations

import os
import sys
import time

PAINT_EVERY_S = 0.5


def stderr_is_terminal(stream=None) -> bool:
    stream = stream or sys.stderr
    if os.environ.get("FSRACE_PLAIN_PROGRESS"):
        return False
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM", "") != "dumb"


def clock_text(s: float) -> str:
    s = max(0, int(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def rate_text(r: float) -> str:
    return f"{r / 1e6:.1f}M" if r >= 1e6 else f"{r / 1e3:.1f}k" if r >= 1e3 else f"{r:.0f}"


class VmStatus:
    """The state behind the line; render() is pure so the tests can read it."""

    def __init__(self, cases_total: int, planned_s: float, live: bool, stream=None, clock=time.monotonic):
        self.cases_total, self.planned_s, self.live = cases_total, planned_s, live
        self.stream = stream or sys.stderr
        self.clock = clock
        self.t0 = clock()
        self.vms: dict[int, dict] = {}      # vm index -> case, phase, ops/s, last progress sample
        self.done: set[tuple[int, str]] = set()
        self.findings: dict[str, int] = {}
        self.last_paint = 0.0
        self.shown = False

    def heartbeat(self, vm: int, case: str, phase: str, progress, guest_s):
        """One guest heartbeat (the runner reads heartbeat.json more often than the guest writes it: a
        repeated one, same guest uptime, changes nothing). The rate is ops per second of guest time."""
        v = self.vms.setdefault(vm, {"case": "", "phase": "", "rate": 0.0, "sample": None})
        if case != v["case"]:
            v["rate"], v["sample"] = 0.0, None
        v["case"], v["phase"] = case, phase
        if not isinstance(progress, int) or progress < 0 or not isinstance(guest_s, (int, float)):
            return
        s = v["sample"]
        if s and guest_s <= s[0]:
            return
        if s and progress >= s[1]:
            r = (progress - s[1]) / (guest_s - s[0])
            v["rate"] = r if not v["rate"] else 0.6 * v["rate"] + 0.4 * r
        v["sample"] = (guest_s, progress)

    def case_done(self, vm: int, case: str, by_class: dict):
        if (vm, case) in self.done:
            return
        self.done.add((vm, case))
        for k, n in by_class.items():
            if isinstance(n, int) and n > 0:
                self.findings[k] = self.findings.get(k, 0) + n

    def booting(self, vm: int):
        self.vms[vm] = {"case": "", "phase": "", "rate": 0.0, "sample": None}

    def vm_ended(self, vm: int):
        self.vms.pop(vm, None)

    def render(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        parts = []
        for i in sorted(self.vms):
            v = self.vms[i]
            if not v["case"]:
                parts.append(f"vm{i} booting")
                continue
            rate = f" {rate_text(v['rate'])} ops/s" if v["phase"] == "race" and v["sample"] and v["rate"] >= 0.5 else ""
            parts.append(f"vm{i} {v['case']} {v['phase']}{rate}")
        f = ", ".join(f"{k} {n}" for k, n in sorted(self.findings.items()))
        cases = f" cases {len(self.done)}/{self.cases_total}" if self.cases_total else ""  # explore: the guest picks rounds
        return (f"[fsrace {clock_text(now - self.t0)} / ~{clock_text(self.planned_s)}]{cases}"
                f"  {'; '.join(parts) or '-'}  findings: {f or 'none'}")

    # -- the terminal --
    def tick(self, now: float | None = None):
        now = self.clock() if now is None else now
        if self.live and now - self.last_paint >= PAINT_EVERY_S:
            self.last_paint = now
            self.paint(now)

    def paint(self, now: float | None = None):
        if not self.live:
            return
        cols = 200
        try:
            cols = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, AttributeError, ValueError):
            pass
        line = self.render(now)
        if cols >= 40 and len(line) > cols - 1:  # a pty without a size says 0 columns: then not cut
            line = line[:max(10, cols - 2)] + "…"
        self.stream.write("\r\033[K" + line)
        self.stream.flush()
        self.shown = True

    def line(self, text: str):
        """A plain line above the live one."""
        if self.live and self.shown:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()
        if self.live and self.shown:
            self.paint()

    def close(self):
        if self.live and self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False
