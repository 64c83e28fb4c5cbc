"""Processes that end with the process that started them.

Dagster starts a run worker as a multiprocessing child of the code server, and each step of the
multiprocess executor as a child of its run worker. When a parent is killed (SIGKILL, an OOM
kill), its children are reparented and go on: a step kept fetching under a run already marked
failed, racing the retry run, and held its pool slot for good. Dagster has no setting for this,
so every such child asks the kernel to kill it when its parent dies (Linux ``PR_SET_PDEATHSIG``),
as a container's processes end with the container.

Commands that start long-running services (`coinpilot ui`) start each in its own session and
stop the whole session, so no webserver, daemon, code server or run worker is left behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent() -> bool:
    """In a multiprocessing child, arrange to be killed with the parent; True if armed.

    A child is known by its own command line (`sys.orig_argv`: multiprocessing hands it the
    parent's `sys.argv`), since it imports the code location before multiprocessing has recorded
    its parent.
    """
    if "--multiprocessing-fork" not in sys.orig_argv or not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return False
    if parent == 1 or os.getppid() != parent:  # the parent died before the request was in place
        os._exit(1)
    return True


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived: stop what this process started."""


def stop_on_signals() -> None:
    """Turn SIGINT and SIGTERM into `StopRequested`, whatever this process inherited.

    A shell that runs a command in the background starts it with SIGINT ignored, and its children
    would inherit that; a handler of our own is reset to the default in each child it starts.
    """
    def request_stop(signum: int, _frame: object) -> None:
        raise StopRequested(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)


def start_session(argv: list[str], **popen: object) -> subprocess.Popen:
    """Start ``argv`` as the leader of a new session, so it can be stopped with all it starts."""
    return subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL, **popen)


def stop_sessions(processes: list[subprocess.Popen], grace_s: float = 4.0) -> None:
    """Stop every session: SIGINT (Dagster's own shutdown signal), SIGTERM to what is left after
    ``grace_s`` (the MLflow server's workers wait for it), SIGKILL after twice that."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        for process in processes:
            if _group_alive(process):
                _signal_group(process, signum)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(_group_alive(p) for p in processes):
            for process in processes:
                process.poll()  # reap our own child, so its session can empty
            time.sleep(0.2)
    for process in processes:
        _signal_group(process, signal.SIGKILL)
        process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def _group_alive(process: subprocess.Popen) -> bool:
    """Whether a process of the session is still running. Zombies do not count: their parent is gone
    and init reaps them when it gets to it, which can take longer than the grace period."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _parent, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue
        if int(group) == process.pid and state != "Z":
            return True
    return False
