"""CPU time of a process tree, read from /proc (Linux): what the local stack spends per image.

A sample sums, for the root process and every descendant, user + system time, plus the time
of children they have already reaped; the difference of two samples is the tree's CPU time in
between, split by role (the stack itself, its handler worker processes, the AWS emulator,
the API server). The machine's own idle time, from /proc/stat, says whether cores were left
unused or taken by other work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuSample:
    by_role: dict[str, float]  # role -> CPU seconds so far
    machine_busy: float  # seconds all CPUs of the machine were busy (any process)
    machine_total: float  # seconds of CPU time the machine had (busy + idle)

    def since(self, earlier: CpuSample) -> CpuSample:
        roles = {role: self.by_role.get(role, 0.0) - earlier.by_role.get(role, 0.0) for role in self.by_role}
        return CpuSample(roles, self.machine_busy - earlier.machine_busy, self.machine_total - earlier.machine_total)

    @property
    def total(self) -> float:
        return sum(self.by_role.values())


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command: state, ppid, ...; utime, stime, cutime, cstime are fields 14-17.
    return int(fields[1]), sum(int(value) for value in fields[11:15]) / _TICKS


def _role(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    text = b" ".join(argv).decode(errors="replace")
    if "moto.server" in text:
        return "emulator"
    if "multiprocessing" in text:
        return "workers"
    if "devstack api" in text:
        return "api"
    if "devstack run" in text:
        return "stack"
    return "other"  # make, the shell


def _machine() -> tuple[float, float]:
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # without guest time, which is counted in user already
    return (total - idle) / _TICKS, total / _TICKS


def sample(root: int) -> CpuSample:
    stats = {pid: stat for pid in _pids() if (stat := _stat(pid)) is not None}
    tree, frontier = {root}, {root}
    while frontier:
        frontier = {pid for pid, (parent, _) in stats.items() if parent in frontier} - tree
        tree |= frontier
    roles: dict[str, float] = {}
    for pid in tree:
        if pid in stats:
            roles[_role(pid)] = roles.get(_role(pid), 0.0) + stats[pid][1]
    busy, total = _machine()
    return CpuSample(roles, busy, total)


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
