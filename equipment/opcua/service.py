"""Running a long-lived asyncio service (the collector, the simulator) until SIGTERM or SIGINT asks it
to stop, so that it can finish cleanly instead of being killed mid-write."""
from __future__ import annotations

import asyncio
import signal
from typing import Awaitable, Callable, Iterable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_until_signalled(serve: Callable[[], Awaitable[None]], request_stop: Callable[[str], None],
                        stop_signals: Iterable[signal.Signals] = STOP_SIGNALS) -> None:
    """Run ``serve()`` in a new event loop; each of ``stop_signals`` calls ``request_stop(why)`` in that loop,
    and ``serve`` is expected to return (after its clean stop) once asked."""

    async def supervise() -> None:
        loop = asyncio.get_running_loop()
        installed = []
        for signum in stop_signals:
            try:
                loop.add_signal_handler(signum, request_stop, f"{signal.Signals(signum).name} received")
            except (ValueError, RuntimeError, NotImplementedError):  # not the main thread: the caller stops it
                continue
            installed.append(signum)
        try:
            await serve()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    asyncio.run(supervise())
