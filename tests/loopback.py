"""A real uvicorn server on loopback for the HTTP tests, in a thread of the test process."""

import contextlib
import socket
import threading
import time

import uvicorn


@contextlib.contextmanager
def uvicorn_on_loopback(app, **config):
    """``app`` on a real uvicorn server on 127.0.0.1 (a free port) in a thread; yields the port.

    ``config`` goes to ``uvicorn.Config`` (``http=`` a protocol class, ``timeout_keep_alive=`` ...).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                             access_log=False, **config))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert instance.started
    try:
        yield port
    finally:
        instance.should_exit = True
        thread.join(10)
