"""Run one measured command in a child process: wall time, CPU time of it and
everything it waited for (``wait4``), and optionally its memory, sampled from
/proc for the whole process tree (the command and its worker processes)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Memory:
    parent_peak_rss: int = 0  # bytes
    children_peak_rss: int = 0  # largest sampled sum over the descendants
    tree_peak_rss: int = 0  # largest sampled sum over parent + descendants
    tree_peak_pss: int = 0  # the same in PSS (shared pages split between sharers)
    max_processes: int = 0
    samples: int = 0


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    returncode: int
    stdout: str
    stderr: str
    max_rss_single: int  # ru_maxrss of wait4: the largest single process, bytes
    memory: Memory | None = field(default=None)


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ')'.
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _children(pid: int) -> list[int] | None:
    """Children from /proc/PID/task/*/children (cheap); None if unsupported."""
    found: list[int] = []
    try:
        for task in os.scandir(f"/proc/{pid}/task"):
            found += [int(c) for c in Path(f"{task.path}/children").read_text().split()]
    except FileNotFoundError:
        return [] if not Path(f"/proc/{pid}").exists() else None
    except OSError:
        return []
    return found


def _descendants(pid: int) -> list[int]:
    first = _children(pid)
    if first is None:  # a kernel without /proc/PID/task/*/children: scan /proc
        tree = _children_map()
        found, stack = [], list(tree.get(pid, ()))
        while stack:
            child = stack.pop()
            found.append(child)
            stack.extend(tree.get(child, ()))
        return found
    found, stack = [], first
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(_children(child) or ())
    return found


def _rss_pss(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss, pss


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _sample(pid: int, memory: Memory, stop: threading.Event, interval: float) -> None:
    # RSS from statm is cheap; PSS needs smaps_rollup, which walks the page
    # tables, so it is read every tenth sample only, to keep the sampler
    # from taking CPU away from the program it measures.
    while not stop.is_set():
        children = _descendants(pid)
        parent_rss = _rss(pid)
        child_rss = sum(_rss(child) for child in children)
        if memory.samples % 10 == 0:
            pss = _rss_pss(pid)[1] + sum(_rss_pss(child)[1] for child in children)
            memory.tree_peak_pss = max(memory.tree_peak_pss, pss)
        memory.samples += 1
        memory.parent_peak_rss = max(memory.parent_peak_rss, parent_rss)
        memory.children_peak_rss = max(memory.children_peak_rss, child_rss)
        memory.tree_peak_rss = max(memory.tree_peak_rss, parent_rss + child_rss)
        memory.max_processes = max(memory.max_processes, 1 + len(children))
        stop.wait(interval)


def run(
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    sample_memory: bool = False,
    timeout: float = 1800,
) -> Run:
    if env is None:
        # Installed programs start from cached bytecode; a shell that sets
        # PYTHONDONTWRITEBYTECODE would make every run recompile its sources.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    memory = Memory() if sample_memory else None
    stop = threading.Event()
    sampler = None
    if memory is not None:
        sampler = threading.Thread(
            target=_sample, args=(process.pid, memory, stop, 0.02), daemon=True
        )
        sampler.start()
    # Read the pipes in threads so wait4 (which gives this child's rusage) does the reaping.
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda: out.append(process.stdout.read()), daemon=True),  # type: ignore[union-attr]
        threading.Thread(target=lambda: err.append(process.stderr.read()), daemon=True),  # type: ignore[union-attr]
    ]
    for reader in readers:
        reader.start()
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    _, status, usage = os.wait4(process.pid, 0)
    killer.cancel()
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    if sampler is not None:
        sampler.join()
    for reader in readers:
        reader.join()
    return Run(
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        returncode=process.returncode,
        stdout=out[0] if out else "",
        stderr=err[0] if err else "",
        max_rss_single=usage.ru_maxrss * 1024,
        memory=memory,
    )
