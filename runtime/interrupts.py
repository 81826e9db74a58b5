"""Holding Ctrl-C and SIGTERM back across a few lines that must not be cut in half."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_DEFERRED = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM inside the block; one that arrives is delivered when it ends.

    Python runs signal handlers between bytecodes, so a ``KeyboardInterrupt`` can land
    between taking a resource and recording that it was taken (a lock file created but
    not yet known to the code that removes it). Inside the block a recording handler
    stands in for each signal's own; at the end the handlers are put back and what
    arrived is raised again, at the first bytecode after the block, where the usual
    ``finally`` clean-up sees the resource. (Blocking with ``pthread_sigmask`` would not
    do: any other thread, a progress bar's for one, would take the signal instead.)
    Outside the main thread, where handlers cannot be set, this is a no-op; so is it
    for a signal that is ignored or whose handler was not set from Python. Keep the
    block short: Ctrl-C waits for it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def hold(signum, frame) -> None:
        arrived.append(signum)

    old = {}
    try:
        for sig in _DEFERRED:
            handler = signal.getsignal(sig)
            if handler is not None and handler != signal.SIG_IGN:  # an ignored signal stays ignored
                old[sig] = handler
                signal.signal(sig, hold)
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(arrived):
            signal.raise_signal(sig)
