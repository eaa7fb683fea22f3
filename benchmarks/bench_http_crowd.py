"""A crowded night for ``serve.py http``: 64 good clients with slow, idle and oversized-header clients mixed in.

Part of ``make bench-http`` (``bench_http.py`` calls :func:`crowded_run`); it can run alone against a
started server: ``python benchmarks/bench_http_crowd.py PORT PATH BODIES.jsonl SERVER_PID``.

While ``good_clients`` kept-alive connections post single leads in a closed loop, hostile clients keep
coming: slow clients trickling a request head a byte at a time, clients sending a 1 MB header, and
connections that never say anything. A prober (a process of its own) asks ``/health`` every 100 ms on a fresh
connection.
It reports the good requests and how many failed (any status but 200, any dropped connection),
``/health``'s p50, p95 and slowest answer, each worker's share of the good requests (at the end every
kept-alive connection asks ``/health`` which worker pid it is on), what the hostile clients were
answered, and the server's memory (resident set of the server and its workers) at the start, its
peak and at the end.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import selectors
import socket
import sys
import threading
import time

import numpy as np

HOST = "127.0.0.1"


def crowded_run(port: int, path: str, bodies: list[bytes], server_pid: int, *, seconds: float = 30.0,
                good_clients: int = 64, slow_clients: int = 16, big_header_clients: int = 2,
                idle_clients: int = 16) -> dict:
    """Drive the crowd for ``seconds``; the counts, ``/health`` latencies and memory (see the module)."""
    stop = threading.Event()
    hostile: dict[str, dict] = {"slow": {}, "big header": {}, "idle": {}}
    lock = threading.Lock()
    memory = []

    def note(kind, outcome):
        with lock:
            hostile[kind][outcome] = hostile[kind].get(outcome, 0) + 1

    def slow_client():
        while not stop.is_set():
            outcome = _answer_of(port, lambda sock: _trickle(sock, stop))
            note("slow", outcome)

    def big_header_client():
        header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 1_000_000 + b"\r\n\r\n"
        while not stop.is_set():
            note("big header", _answer_of(port, lambda sock: sock.sendall(header)))
            stop.wait(0.2)

    def idle_client():
        while not stop.is_set():
            note("idle", _answer_of(port, lambda sock: None))

    def sampler():
        while not stop.is_set():
            memory.append(_tree_rss_mib(server_pid))
            stop.wait(0.5)

    memory.append(_tree_rss_mib(server_pid))
    # The prober is a process of its own: as a thread it shared this process' interpreter lock with the load
    # loop and the hostile clients' threads, and measured their turns as much as the server's answer.
    context = multiprocessing.get_context("fork")  # before any thread starts here
    results, probe_stop = context.SimpleQueue(), context.Event()
    probing = context.Process(target=_probe_health, args=(port, probe_stop, results), daemon=True)
    probing.start()
    threads = ([threading.Thread(target=slow_client) for _ in range(slow_clients)]
               + [threading.Thread(target=big_header_client) for _ in range(big_header_clients)]
               + [threading.Thread(target=idle_client) for _ in range(idle_clients)]
               + [threading.Thread(target=sampler)])
    for thread in threads:
        thread.daemon = True
        thread.start()
    good = _good_load(port, path, bodies, good_clients, seconds)
    stop.set()
    probe_stop.set()
    health, prober_late_ms = results.get()
    probing.join(15)
    for thread in threads:
        thread.join(15)
    memory.append(_tree_rss_mib(server_pid))
    latencies = np.array([ms for ms, _, _ in health])
    slowest = max(health, key=lambda probe: probe[0])
    return {**good, "health_probes": len(health), "health_failed": sum(not ok for _, ok, _ in health),
            "health_p50_ms": float(np.percentile(latencies, 50)), "health_p95_ms": float(np.percentile(latencies, 95)),
            "health_max_ms": float(latencies.max()), "health_max_at_s": slowest[2],
            "health_over_50ms": int((latencies > 50).sum()), "prober_late_ms": prober_late_ms,
            "health_max_after_1s_ms": max((ms for ms, _, at in health if at >= 1.0), default=float("nan")),
            "load": os.getloadavg(),
            "hostile": hostile, "rss_start_mib": memory[0], "rss_peak_mib": max(memory), "rss_end_mib": memory[-1],
            "clients": {"good": good_clients, "slow": slow_clients, "big header": big_header_clients,
                        "idle": idle_clients}}


def format_crowded(run: dict) -> str:
    """The crowded run as the lines ``make bench-http`` prints."""
    clients = run["clients"]
    hostile = "; ".join(f"{kind}: {', '.join(f'{count} {outcome}' for outcome, count in sorted(outcomes.items()))}"
                        for kind, outcomes in run["hostile"].items())
    total = sum(run["worker_requests"].values()) or 1
    shares = ", ".join(f"{count / total:.0%} (pid {pid}, {run['worker_connections'].get(pid, 0)} connections)"
                       for pid, count in
                       sorted(run["worker_requests"].items(), key=lambda item: -item[1]))
    verdict = (run["good_failed"] == 0 and run["health_failed"] == 0 and run["health_max_ms"] <= 50
               and run["rss_end_mib"] <= run["rss_start_mib"] * 1.25 + 50)
    return (f"crowded: {clients['good']} good clients with {clients['slow']} slow, {clients['big header']} 1-MB-header "
            f"and {clients['idle']} idle clients, {run['seconds']:.0f} s: {run['good']:,} good requests "
            f"({run['rps']:,.0f}/s, p99 {run['p99_ms']:.0f} ms), {run['good_failed']} failed\n"
            f"  good requests per worker: {shares}\n"
            f"  /health every 100 ms: {run['health_probes']} probes, {run['health_failed']} failed, "
            f"p50 {run['health_p50_ms']:.1f} ms, p95 {run['health_p95_ms']:.1f} ms, max {run['health_max_ms']:.1f} ms "
            f"({run['health_max_at_s']:.1f} s in; after the first second's connection burst max "
            f"{run['health_max_after_1s_ms']:.1f} ms), {run['health_over_50ms']} over 50 ms; load average "
            f"{run['load'][0]:.1f} at the end, the prober itself woke up to {run['prober_late_ms']:.0f} ms late\n"
            f"  hostile clients were answered: {hostile}\n"
            f"  server memory (all processes): {run['rss_start_mib']:.0f} MiB at the start, peak "
            f"{run['rss_peak_mib']:.0f} MiB, {run['rss_end_mib']:.0f} MiB at the end\n"
            f"  -> {'meets' if verdict else 'MISSES'} zero good requests failed, /health within 50 ms throughout, "
            "flat memory")


def _good_load(port: int, path: str, bodies: list[bytes], clients: int, seconds: float) -> dict:
    """Closed-loop kept-alive clients from one thread; a failed request is counted and its connection renewed.

    At the end each connection asks ``GET /health`` for the worker pid behind it: its good requests count
    for that worker (those of a connection that was renewed after a failure count for the last one).
    """
    requests = [f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode() + body for body in bodies]
    selector = selectors.DefaultSelector()
    buffers, sent_at, turn = [b""] * clients, [0.0] * clients, list(range(clients))
    latencies, failed, answered = [], 0, [0] * clients
    health = f"GET /health HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    asking, worker_requests, worker_connections = [False] * clients, {}, {}

    def send(k, sock):
        sent_at[k] = time.perf_counter()
        sock.sendall(requests[turn[k] % len(requests)])

    def renew(k, old):
        selector.unregister(old)
        old.close()
        sock = socket.create_connection((HOST, port), timeout=60)
        selector.register(sock, selectors.EVENT_READ, k)
        buffers[k] = b""
        send(k, sock)

    for k in range(clients):
        sock = socket.create_connection((HOST, port), timeout=60)
        selector.register(sock, selectors.EVENT_READ, k)
        send(k, sock)
    started = time.perf_counter()
    deadline, pending, last_answer = started + seconds, clients, started
    done = [False] * clients
    while pending:
        for key, _ in selector.select(timeout=60):
            k, sock = key.data, key.fileobj
            try:
                chunk = sock.recv(262_144)
            except OSError:
                chunk = b""
            if not chunk:  # dropped: that request failed (unless it was the question for the pid)
                failed += not asking[k]
                if time.perf_counter() < deadline:
                    renew(k, sock)
                else:
                    worker_requests["unknown"] = worker_requests.get("unknown", 0) + answered[k]
                    selector.unregister(sock)
                    sock.close()
                    done[k], pending = True, pending - 1
                continue
            buffers[k] += chunk
            status, body, rest = _complete(buffers[k])
            if status is None:
                continue
            now = time.perf_counter()
            buffers[k] = rest
            if asking[k]:  # the answer to "which worker are you?"
                pid = int(json.loads(body)["pid"]) if status == 200 else "unknown"
                worker_requests[pid] = worker_requests.get(pid, 0) + answered[k]
                worker_connections[pid] = worker_connections.get(pid, 0) + 1
                selector.unregister(sock)
                sock.close()
                done[k], pending = True, pending - 1
                continue
            if status == 200:
                latencies.append(now - sent_at[k])
                answered[k], last_answer = answered[k] + 1, now
            else:
                failed += 1
            if now < deadline:
                turn[k] += clients
                send(k, sock)
            else:
                asking[k] = True
                sock.sendall(health)
    elapsed = last_answer - started
    selector.close()
    latencies = np.array(latencies) * 1e3
    return {"good": len(latencies) + failed, "good_failed": failed, "seconds": elapsed,
            "worker_requests": worker_requests, "worker_connections": worker_connections,
            "rps": len(latencies) / elapsed, "p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else 0}


def _probe_health(port: int, stop, results) -> None:
    """Ask ``/health`` every 100 ms on a fresh connection until ``stop``; put ``([(ms, ok, seconds in)], ms)`` on
    ``results``: the probes, and the most this process woke up late from its 100 ms sleeps (the machine's share)."""
    probes, late, began = [], [], time.perf_counter()
    while not stop.is_set():
        started = time.perf_counter()
        try:
            with socket.create_connection((HOST, port), timeout=10) as sock:
                sock.sendall(f"GET /health HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
                answer = _read_all(sock)
            ok = answer.startswith(b"HTTP/1.1 200")
        except OSError:
            ok = False
        probes.append(((time.perf_counter() - started) * 1e3, ok, started - began))
        asleep = time.perf_counter()
        stop.wait(0.1)
        late.append(time.perf_counter() - asleep - 0.1)  # how late this process itself got the CPU back
    results.put((probes, max(late, default=0.0) * 1e3))


def _answer_of(port: int, act) -> str:
    """Open a connection, ``act`` on it, and say how the server ended it: its status, "closed" or "reset"."""
    try:
        with socket.create_connection((HOST, port), timeout=120) as sock:
            try:
                act(sock)
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer = _read_all(sock)
    except ConnectionResetError:
        return "reset"
    except OSError as error:
        return type(error).__name__
    return answer.split(b"\r\n", 1)[0].decode("latin-1")[9:12] or "closed"


def _trickle(sock, stop) -> None:
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    while not stop.is_set():
        sock.sendall(b"X")
        if stop.wait(1.0):
            return


def _read_all(sock) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65_536)
        if not chunk:
            return data
        data += chunk


def _complete(buffer: bytes) -> tuple[int | None, bytes, bytes]:
    """``(status, body, what follows)`` once ``buffer`` holds a whole answer, else ``(None, b"", b"")``."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None, b"", b""
    head = buffer[:head_end].decode("latin-1").split("\r\n")
    length = next((int(line.split(":", 1)[1]) for line in head[1:] if line.lower().startswith("content-length:")), 0)
    end = head_end + 4 + length
    if len(buffer) < end:
        return None, b"", b""
    return int(head[0].split(" ", 2)[1]), buffer[head_end + 4:end], buffer[end:]


def _tree_rss_mib(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


if __name__ == "__main__":
    port, path, bodies_file, pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with open(bodies_file, "rb") as handle:
        loaded = [line.rstrip(b"\n") for line in handle if line.strip()]
    print(format_crowded(crowded_run(int(port), path, loaded, pid)))
