"""Child processes the benchmark starts, and what /proc says about a process tree.

Every child gets its own session (so Ctrl-C in the terminal reaches only the bench, which
then stops them in order) and is stopped as a whole process group: SIGTERM, then SIGKILL.
"""

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Child:
    def __init__(self, name: str, argv: Sequence[str], log: Path,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None,
                 stdout_pipe: bool = False) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(argv), env=dict(env) if env is not None else None, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if stdout_pipe else out,
                stderr=out, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    return raw[raw.rindex(")") + 2:].split()  # fields from 3 (state) on


def tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


@dataclass(frozen=True)
class Usage:
    """One reading of a process tree."""

    cpu_secs: float     # user + system of the live tree, plus its reaped children
    rss: int            # bytes, the root process now
    peak_rss: int       # bytes, the root process's high-water mark (VmHWM)
    tree_peak_rss: int  # bytes, the high-water marks of every process in the tree, summed
    processes: int
    at: float


def usage(root: int, whole_tree: bool = True) -> Usage:
    cpu = 0
    peak = 0
    pids = tree(root) if whole_tree else [root]
    for pid in pids:
        fields = _stat(pid)
        if fields is None:
            continue
        # utime, stime, cutime, cstime are fields 14-17 of stat (index 11-14 here); the
        # reaped children's share only counts when the tree is what is measured.
        cpu += sum(int(f) for f in fields[11:15 if whole_tree else 13])
        peak += _status_kb(pid, "VmHWM")
    return Usage(cpu / CLK_TCK, _status_kb(root, "VmRSS") * 1024,
                 _status_kb(root, "VmHWM") * 1024, peak * 1024, len(pids), time.monotonic())


# Roots read without their descendants: the bench's own process is the parent of all.
ALONE = "bench client"


def usages(roots: Mapping[str, int]) -> dict[str, Usage]:
    return {name: usage(pid, name != ALONE) for name, pid in roots.items()}


def cpu_between(before: Mapping[str, Usage], after: Mapping[str, Usage]) -> dict[str, float]:
    return {name: after[name].cpu_secs - before[name].cpu_secs
            for name in before if name in after}


def mib(n: float) -> float:
    return n / (1024 * 1024)
