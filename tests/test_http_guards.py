"""Slow, huge and idle clients are refused by the protocol before the app, on a real server over loopback."""

import http.client
import json
import socket
import time

import pytest
from fastapi.testclient import TestClient
from loopback import uvicorn_on_loopback

from scoring.http_guards import GuardedHttpToolsProtocol
from scoring.service import create_app

IDENTITY = {"model_uri": "models:/lead-conversion@champion", "run_id": "abc", "model_name": "lead-conversion",
            "model_version": "7"}


class QuickGuards(GuardedHttpToolsProtocol):
    """The same guards with short clocks, so the test waits seconds, not the production tens of seconds."""

    max_header_bytes = 16 * 1024
    head_seconds = 1.0
    body_seconds = 1.0


@pytest.fixture(scope="module")
def server(small_models):
    app = create_app(small_models["logistic"], IDENTITY, access_log=False)
    with uvicorn_on_loopback(app, http=QuickGuards, timeout_keep_alive=2) as port:
        yield port


def _answer(sock, timeout=10.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _health_ms(port) -> float:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/health")
    assert connection.getresponse().status == 200
    connection.close()
    return (time.perf_counter() - started) * 1000


def test_an_oversized_header_is_431_before_it_is_buffered_and_health_stays_fast(server):
    sock = socket.create_connection(("127.0.0.1", server))
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
    sent, refused = 0, False
    try:
        while sent < 50_000_000:  # the server must cut it off long before 50 MB
            sock.sendall(b"a" * 65536)
            sent += 65536
    except (BrokenPipeError, ConnectionResetError):
        refused = True
    answer = b""
    try:
        answer = _answer(sock)
    except ConnectionResetError:
        pass
    sock.close()
    assert refused or answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert sent < 5_000_000
    assert _health_ms(server) < 50


def test_a_head_sent_a_byte_at_a_time_is_408_after_its_deadline(server):
    sock = socket.create_connection(("127.0.0.1", server))
    started = time.monotonic()
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    healthy = []
    try:
        for _ in range(30):
            sock.sendall(b"X")
            healthy.append(_health_ms(server))  # others are served meanwhile
            time.sleep(0.1)
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = _answer(sock)
    elapsed = time.monotonic() - started
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408") and b"request head not received within 1 seconds" in answer, answer
    assert 0.9 < elapsed < 3 and max(healthy) < 50


def test_a_body_that_never_completes_is_408(server):
    sock = socket.create_connection(("127.0.0.1", server))
    sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{")
    started = time.monotonic()
    answer = _answer(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408") and b"request body not received within 1 seconds" in answer, answer
    assert time.monotonic() - started < 3


def test_a_connection_that_never_speaks_is_closed_after_the_keep_alive_time(server):
    sock = socket.create_connection(("127.0.0.1", server))
    started = time.monotonic()
    assert _answer(sock) == b""  # closed, nothing said
    assert 1.5 < time.monotonic() - started < 4
    sock.close()


def test_a_kept_alive_client_pausing_within_the_limits_is_served_throughout(server):
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    for pause in (0, 0.5, 1.2, 0.1):  # each pause below the 2 s keep-alive time
        time.sleep(pause)
        connection.request("GET", "/health")
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["model_version"] == "7"
    sock = connection.sock
    connection.request("GET", "/health")
    connection.getresponse().read()
    assert connection.sock is sock  # the same connection throughout
    connection.close()


def test_the_api_description_is_behind_the_token_unless_said_otherwise(small_models, monkeypatch):
    monkeypatch.delenv("LEAD_SCORING_PUBLIC_DOCS", raising=False)
    client = TestClient(create_app(small_models["logistic"], IDENTITY, token="s3cret", access_log=False))
    for path in ("/docs", "/openapi.json"):
        refused = client.get(path)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/health").status_code == 200  # load balancers still need no token
    monkeypatch.setenv("LEAD_SCORING_PUBLIC_DOCS", "1")
    public = TestClient(create_app(small_models["logistic"], IDENTITY, token="s3cret", access_log=False))
    assert public.get("/openapi.json").status_code == 200
    assert TestClient(create_app(small_models["logistic"], IDENTITY, access_log=False)).get("/docs").status_code == 200


def test_health_is_answered_between_scorings_not_after_a_burst_of_them(server):
    """24 scoring requests arriving together are scored one per turn of the event loop: a /health sent with
    them is answered after a few of them, not after all (as it was when a burst was scored in one turn)."""
    lead = {"lead_id": "L-1", "created_at": "2025-10-01T10:00:00Z",
            "attributes": {"job_title": "VP Marketing", "company_size": 500},
            "events": [{"occurred_at": "2025-12-29T10:00:00Z", "event_type": "demo_request"}] * 20}
    body = json.dumps(lead).encode()
    score = (b"POST /score?as_of=2026-01-01T00:00:00Z HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    health = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    def scored_so_far(sock) -> int:  # the server's own count when it answered /health
        return json.loads(_answer(sock).split(b"\r\n\r\n", 1)[1])["requests_scored"]

    scorers = [socket.create_connection(("127.0.0.1", server)) for _ in range(24)]
    before, prober = (socket.create_connection(("127.0.0.1", server)) for _ in range(2))
    before.sendall(health)
    start = scored_so_far(before)
    for sock in scorers:
        sock.sendall(score)
    prober.sendall(health)
    during = scored_so_far(prober) - start
    for sock in scorers:
        sock.settimeout(20)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.close()
    before.close()
    prober.close()
    assert during < 8, f"/health answered after {during} of the 24 scorings"
