"""Worker processes that end with their parent.

Dagster starts a run worker as a multiprocessing child of the code server, and each step of the
multiprocess executor as a child of its run worker. When a parent is killed (SIGKILL, an OOM
kill), its children are reparented and go on: a step kept fetching under a run already marked
failed, racing the retry run, and held its pool slot for good. Dagster has no setting for this,
so every such child asks the kernel to kill it when its parent dies (Linux ``PR_SET_PDEATHSIG``),
as a container's processes end with the container.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

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
