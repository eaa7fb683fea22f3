"""The clients of ``make bench-http``: one kept-alive connection timed request by request, several with bad
requests mixed in, and many driven by one lean thread; the server's CPU time read from ``/proc``."""

from __future__ import annotations

import http.client
import json
import math
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np

HOST = "127.0.0.1"


def measure(port: int, path: str, bodies: list, *, requests: int, seconds: float, pid: int) -> dict:
    """Warm up, then time requests one after another until --requests or --seconds runs out.

    Also the CPU seconds the server (process ``pid`` and its children) spent per request: unlike
    wall-clock figures, hardly moved by other work on a shared machine (NaN without ``/proc``).
    """
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    for body in bodies[:50]:
        post(connection, path, body)
    latencies = []
    cpu_began = tree_cpu_seconds(pid)
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while len(latencies) < requests and time.perf_counter() < deadline:
        body = bodies[len(latencies) % len(bodies)]
        begin = time.perf_counter()
        post(connection, path, body)
        latencies.append(time.perf_counter() - begin)
    elapsed = time.perf_counter() - started
    cpu = tree_cpu_seconds(pid) - cpu_began
    connection.close()
    latencies = np.array(latencies) * 1e3
    return {"requests": len(latencies), "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)), "rps": len(latencies) / elapsed,
            "cpu_ms": cpu / len(latencies) * 1e3}


def measure_alternating(targets: dict, *, requests: int, seconds: float, blocks: int = 10) -> dict:
    """``measure`` of several servers in turns: a block of requests to each, ``blocks`` times.

    ``targets`` maps a name to ``(port, path, bodies, pid)``. Load from other work on a shared machine
    comes and goes within minutes; servers measured one after the other would see different loads, so
    their ratio would move with it. In turns, each sees the same mix. Bounded by ``requests`` per server
    or ``seconds`` per server.
    """
    connections = {name: http.client.HTTPConnection(HOST, port, timeout=30)
                   for name, (port, _, _, _) in targets.items()}
    for name, (_, path, bodies, _) in targets.items():
        for body in bodies[:50]:
            post(connections[name], path, body)
    latencies = {name: [] for name in targets}
    cpu, elapsed = dict.fromkeys(targets, 0.0), dict.fromkeys(targets, 0.0)
    per_block = max(1, requests // blocks)
    deadline = time.perf_counter() + seconds * len(targets)
    for block in range(blocks):
        for name, (_, path, bodies, pid) in targets.items():
            cpu_began, started = tree_cpu_seconds(pid), time.perf_counter()
            for k in range(block * per_block, (block + 1) * per_block):
                begin = time.perf_counter()
                post(connections[name], path, bodies[k % len(bodies)])
                latencies[name].append(time.perf_counter() - begin)
            elapsed[name] += time.perf_counter() - started
            cpu[name] += tree_cpu_seconds(pid) - cpu_began
        if time.perf_counter() > deadline:
            break
    for connection in connections.values():
        connection.close()
    runs = {}
    for name, times in latencies.items():
        times = np.array(times) * 1e3
        runs[name] = {"requests": len(times), "p50_ms": float(np.percentile(times, 50)),
                      "p99_ms": float(np.percentile(times, 99)), "rps": len(times) / elapsed[name],
                      "cpu_ms": cpu[name] / len(times) * 1e3}
    return runs


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its descendants so far, from ``/proc`` (NaN elsewhere)."""
    proc = Path("/proc")
    if not (proc / str(pid) / "stat").exists():
        return math.nan
    children, times = {}, {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        child = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(child)
        times[child] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(children.get(current, []))
    return total




def _bad_bodies(raw: list) -> list[bytes]:
    """Requests a client may send by mistake or on purpose: broken text, dates, numbers and JSON."""
    lead = json.dumps(raw[0])
    return [json.dumps({**raw[0], "lead_id": "L-\ud800"}).encode(),  # escaped lone surrogate
            json.dumps({**raw[0], "lead_id": "L-\ud800"}, ensure_ascii=False).encode("utf-8", "surrogatepass"),
            json.dumps({**raw[0], "lead_id": "L-\x00\x1b"}).encode(),
            json.dumps({**raw[0], "created_at": 12345}).encode(),
            json.dumps({**raw[0], "created_at": "0001-01-01T00:00:00Z"}).encode(),
            json.dumps({**raw[0], "attributes": {**raw[0]["attributes"], "company_size": True}}).encode(),
            json.dumps({**raw[0], "attributes": {**raw[0]["attributes"], "company_size": float("nan")}}).encode(),
            lead[: len(lead) // 2].encode(), b"\xff\xfe\x00garbage", b"[]"]


def measure_with_bad_requests(port: int, path: str, raw: list, *, requests: int, seconds: float, share: float = 0.03,
                               clients: int = 4) -> dict:
    """Several clients at once, ``share`` of their requests bad: every good request must still succeed.

    Bounded like the other runs (--requests in all, or --seconds). A dropped connection is
    reconnected and counted; a good request that fails in any way is counted as failed.
    """
    bad, rng = _bad_bodies(raw), np.random.default_rng(0)
    plan = [bad[k % len(bad)] if draw < share else raw_body for k, (draw, raw_body) in enumerate(
        zip(rng.random(requests), (json.dumps(raw[i % len(raw)]).encode() for i in range(requests))))]
    bad_set = set(bad)
    counts = {"good": 0, "good_failed": 0, "bad": 0, "reconnects": 0}
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(bodies):
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        for body in bodies:
            if time.perf_counter() > deadline:
                break
            status = None
            try:
                connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=30)
                with lock:
                    counts["reconnects"] += 1
            with lock:
                if body in bad_set:
                    counts["bad"] += 1
                    statuses[status] = statuses.get(status, 0) + 1
                else:
                    counts["good"] += 1
                    counts["good_failed"] += status != 200
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(plan[k::clients],)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {**counts, "bad_statuses": dict(sorted(statuses.items(), key=lambda item: str(item[0]))),
            "share": share, "clients": clients, "seconds": time.perf_counter() - started}


class LoadClient:
    """``clients`` kept-alive connections driven from one thread: each sends its next request as soon as
    its answer is in (closed loop per connection).

    Requests are prepared bytes and answers are read by their Content-Length: the client shares the
    machine's cores with the server, so it must cost little per request (16 ``http.client`` threads
    cost about half of a fast server's CPU time, which then cannot go to a second worker).
    """

    def __init__(self, port: int, path: str, bodies: list, clients: int):
        import selectors

        self.requests = [f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body for body in bodies]
        self.port, self.clients = port, clients
        self.selector = selectors.DefaultSelector()
        self.connections = []
        for k in range(clients):
            connection = socket.create_connection((HOST, port), timeout=60)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections.append(connection)
            self.selector.register(connection, selectors.EVENT_READ, k)

    def run(self, *, requests: int, seconds: float) -> tuple[list, float]:
        """Post until ``requests`` answers or ``seconds``; the latencies and the elapsed time."""
        latencies, buffers, sent_at, next_body = [], [b""] * self.clients, [0.0] * self.clients, list(range(self.clients))
        started = time.perf_counter()
        deadline = started + seconds
        for k, connection in enumerate(self.connections):
            sent_at[k] = time.perf_counter()
            connection.sendall(self.requests[next_body[k] % len(self.requests)])
        pending = self.clients
        while pending:
            for key, _ in self.selector.select(timeout=60):
                k, connection = key.data, key.fileobj
                chunk = connection.recv(262_144)
                if not chunk:
                    raise SystemExit(f"the server closed connection {k} mid-run")
                buffers[k] += chunk
                status, rest = complete_response(buffers[k])
                if status is None:
                    continue
                if status != 200:
                    raise SystemExit(f"POST answered {status}: {buffers[k][:500]!r}")
                now = time.perf_counter()
                latencies.append(now - sent_at[k])
                buffers[k] = rest
                if len(latencies) + pending - 1 < requests and now < deadline:
                    next_body[k] += self.clients
                    sent_at[k] = now
                    connection.sendall(self.requests[next_body[k] % len(self.requests)])
                else:
                    pending -= 1
        return latencies, time.perf_counter() - started

    def worker_pids(self) -> set:
        """The worker pid behind each connection (``GET /health``)."""
        pids = set()
        for connection in self.connections:
            connection.sendall(f"GET /health HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n\r\n".encode())
            buffer = b""
            while complete_response(buffer)[0] is None:
                buffer += connection.recv(65_536)
            pids.add(json.loads(buffer.split(b"\r\n\r\n", 1)[1])["pid"])
        return pids

    def close(self) -> None:
        self.selector.close()
        for connection in self.connections:
            connection.close()


def complete_response(buffer: bytes) -> tuple[int | None, bytes]:
    """``(status, what follows)`` when ``buffer`` holds a whole HTTP/1.1 answer with a Content-Length, else (None, b"")."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None, b""
    head = buffer[:head_end].decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in head[1:] if line.lower().startswith("content-length:"))
    end = head_end + 4 + length
    if len(buffer) < end:
        return None, b""
    return int(head[0].split(" ", 2)[1]), buffer[end:]


def post(connection, path: str, body: bytes) -> bytes:
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    if response.status != 200:
        raise SystemExit(f"POST {path} answered {response.status}: {payload[:500]!r}")
    return payload
