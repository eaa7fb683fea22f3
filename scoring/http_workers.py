"""The HTTP service's worker processes, each accepting on its own listening socket (``SO_REUSEPORT``).

uvicorn's ``--workers`` share one listening socket: the worker whose event loop wakes first accepts
every connection waiting (asyncio accepts up to the backlog at a time), so a burst of kept-alive clients
can all land on one worker while the other idles (seen with two workers: one took all the keep-alive
traffic). With one socket per worker bound with ``SO_REUSEPORT``, Linux spreads new connections over the
listening sockets by a hash of their addresses, before any worker is involved. Elsewhere (no
``SO_REUSEPORT``, or one that does not balance, as on macOS) the shared socket stays.
"""

from __future__ import annotations

import socket
import sys

from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process


def balances_connections() -> bool:
    """Whether this platform spreads connections over ``SO_REUSEPORT`` sockets (Linux does, since 3.9)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def serve_on_own_sockets(config, sockets: list[socket.socket]) -> None:
    """Run one uvicorn worker per socket of :func:`listening_sockets`; returns when they are stopped."""
    _WorkerPerSocket(config, sockets).run()


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets bound to ``host:port`` with ``SO_REUSEPORT`` (each worker calls ``listen`` on its own).

    Raises ``ValueError`` when ``host:port`` is taken, by anything, this service included: ``SO_REUSEPORT``
    alone would let a second server share the port in silence.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:  # no SO_REUSEPORT: fails if anyone listens there
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ValueError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.set_inheritable(True)
    except OSError as error:
        for sock in sockets:
            sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return sockets


class _WorkerPerSocket(Multiprocess):
    """uvicorn's supervisor (signals, health checks, restarts), the first workers each given one socket.

    A worker started later to replace a dead one is given every socket (uvicorn's own replacement): the
    dead worker's socket is then served again, and the replacement shares the others' until it ends. A
    worker that failed before serving (``http_app`` exits with uvicorn's start-up failure status) stops
    the server instead, as uvicorn's supervisor does, without its log line: ``serve_http`` says why.
    """

    def keep_subprocess_alive(self) -> None:
        for process in self.processes:
            if not self.should_exit.is_set() and process.exitcode == STARTUP_FAILURE:
                self.should_exit.set()
                return
        super().keep_subprocess_alive()

    def init_processes(self) -> None:
        for sock in self.sockets:
            process = Process(self.config, [sock])
            process.start()
            self.processes.append(process)
