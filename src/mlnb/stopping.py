"""Stopping a long job between steps instead of in the middle of one.

Outside any block, ``mlnb`` turns SIGTERM into :class:`SignalExit` (a SystemExit)
wherever the process is, so cleanups run: right for a download, wrong for a
training step or a checkpoint write. A long loop therefore runs inside
:func:`cooperative_stop`::

    with cooperative_stop() as stop:
        for step in steps:
            train_one_step()
            if stop.requested:
                save_checkpoint()
                raise Stopped(stop.signal)

SIGTERM (Slurm, Snakemake), SIGINT (Ctrl-C) and SIGUSR1 (Slurm's ``--signal``
warning before the time limit) then only set ``stop.requested``. ``Stopped``
propagates: the tracked run ends KILLED with tag ``mlnb.stopped`` and ``mlnb``
exits with 128 + the signal's number.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


def exit_code(signal_name: str) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number."""
    return 128 + signal.Signals[signal_name].value


class Stopped(BaseException):
    """A long job stopped cleanly (checkpoint written) because of ``signal`` (e.g. ``"SIGTERM"``).

    A BaseException, like KeyboardInterrupt, so ``except Exception`` on the way up
    does not swallow it.
    """

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal = signal_name

    @property
    def exit_code(self) -> int:
        return exit_code(self.signal)


class SignalExit(SystemExit):
    """SIGTERM outside a cooperative block: exit now (cleanups run), code 128 + signal number."""

    def __init__(self, signal_name: str):
        super().__init__(exit_code(signal_name))
        self.signal = signal_name


@dataclasses.dataclass
class StopRequest:
    """Set by the handlers of :func:`cooperative_stop`: the first signal received wins."""

    requested: bool = False
    signal: str | None = None

    def _handle(self, signum: int, frame) -> None:
        if not self.requested:
            self.requested, self.signal = True, signal.Signals(signum).name


@contextlib.contextmanager
def cooperative_stop() -> Iterator[StopRequest]:
    """Within the block, SIGTERM, SIGINT and SIGUSR1 only set ``stop.requested``; handlers restored on exit.

    Only the main thread can install signal handlers (as Python requires).
    """
    stop = StopRequest()
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        for signum in STOP_SIGNALS:
            signal.signal(signum, stop._handle)
        yield stop
    finally:
        for signum, handler in previous.items():
            # None: a handler installed outside Python; the default is the closest we can restore.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold stop signals during a short critical section (closing a run), then deliver the first one.

    Off the main thread, where handlers cannot be installed, the block runs unprotected.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with cooperative_stop() as stop:
        yield
    if stop.requested:
        signal.raise_signal(signal.Signals[stop.signal])


@contextlib.contextmanager
def stops_outlive_finalizers() -> Iterator[None]:
    """Within the block, a stop signal that a finalizer swallowed is sent again.

    A signal's handler runs wherever the main thread is, and when that is a finalizer
    or a weakref callback (a garbage collection inside SQLAlchemy, say) Python prints
    the KeyboardInterrupt or SignalExit as "Exception ignored" and drops it: Ctrl-C
    would be lost and the command would run to its end. The signal is sent again a
    moment later from another thread, so it reaches the main thread's own code.
    Off the main thread the block changes nothing; the hook it replaces comes back after.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = sys.unraisablehook

    def send_again(unraisable) -> None:
        signal_name = stop_signal_of(unraisable.exc_value) if unraisable.exc_value is not None else None
        if signal_name is None or isinstance(unraisable.exc_value, Stopped):
            previous(unraisable)
            return
        # Later, from another thread: sent from the hook, it would be raised in the hook and dropped again.
        again = threading.Timer(0.05, os.kill, (os.getpid(), signal.Signals[signal_name]))
        again.daemon = True
        again.start()

    sys.unraisablehook = send_again
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _exit_on_sigterm(signum, frame) -> None:
    raise SignalExit(signal.Signals(signum).name)


def exit_on_sigterm() -> None:
    """Install today's default for a whole command: SIGTERM raises :class:`SignalExit`."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


def stop_signal_of(error: BaseException) -> str | None:
    """The signal that ended the work, when ``error`` is how a signal surfaces; else None."""
    if isinstance(error, Stopped | SignalExit):
        return error.signal
    if isinstance(error, KeyboardInterrupt):
        return "SIGINT"
    return None
