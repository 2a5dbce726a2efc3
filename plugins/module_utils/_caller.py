# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Whether the controller that runs a module is still there, and stopping the module when not.

A module runs under the controller's ssh session (or its local worker) with its output on a pipe
the controller reads. When the controller's run is stopped (a signal, an abort timeout) or its
link dies, the session closes that pipe, but no signal reaches the module (there is no
terminal): it and what it started would run on for as long as their own work lasts. A closed
pipe is seen as POLLERR on our end of it.

Runs on StarlingX's Python 3.9 (standard library only).
"""

from __future__ import annotations

import os
import select
import signal
import threading

WATCH_INTERVAL = 1.0  # seconds between looks at the controller's connection


def caller_gone(fd=1):
    """Whether whoever reads fd (the module's stdout) has closed its end."""
    try:
        poller = select.poll()
        poller.register(fd, select.POLLERR | select.POLLHUP)
        return any(event & (select.POLLERR | select.POLLHUP) for _fd, event in poller.poll(0))
    except (OSError, ValueError):
        return False


def stop_with_caller(fd=1, interval=WATCH_INTERVAL):
    """Watch fd in a daemon thread; once its reader is gone, SIGTERM this process's group - the
    module, the sudo and shell that run it, and the commands it runs (run_command keeps them in
    the group) - and exit. Returns the thread."""

    def watch():
        stop = threading.Event()
        while not stop.wait(interval):
            if caller_gone(fd):
                break
        try:
            os.killpg(os.getpgrp(), signal.SIGTERM)
        finally:
            os._exit(143)

    thread = threading.Thread(target=watch, name="dcprestage-caller-watch", daemon=True)
    thread.start()
    return thread
