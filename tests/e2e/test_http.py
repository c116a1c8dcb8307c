"""HTTP/1.1 behaviour: keep-alive, pipelining, chunked, 100-continue, limits, the lingering close."""
import json
import re
import select
import socket
import subprocess
import time

import pytest

from conftest import EXCHANGED, MAIN, SEED_BODY, Proc, request, raw, read_to_close, parse_responses

BODY = json.dumps(SEED_BODY).encode()


def post(path, body=BODY, extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
            extra + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


GET_ROOT = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def still_serving(port):
    status, _, body = request(port, "GET", "/")
    assert status == 200, body


def test_keep_alive_and_http10(start_service):
    svc = start_service()
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    for _ in range(3):  # three requests, one connection
        s.sendall(GET_ROOT)
        data = b""
        while b"Running" not in data and b"running" not in data:
            data += s.recv(4096)
        (status, headers, body), = parse_responses(data)
        assert status == 200 and "connection" not in headers
    s.close()
    # HTTP/1.0 closes by default
    out = raw(svc.port, b"GET / HTTP/1.0\r\n\r\n")
    (status, headers, _), = parse_responses(out)
    assert status == 200 and headers["connection"] == "close"
    # ... and keeps alive when asked
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    data = s.recv(4096)
    (status, headers, _), = parse_responses(data)
    assert headers["connection"] == "keep-alive"
    s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
    data = read_to_close(s)
    assert parse_responses(data)[0][0] == 200
    s.close()


def test_pipelined_answers_in_order(start_service):
    svc = start_service("--sync-latency", "0.3")
    # the slow sync request first: its answer must still come first
    stream = (post(b"/api/exchange_sync") + GET_ROOT + b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n" +
              post(b"/api/exchange_async") +
              b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answers = parse_responses(raw(svc.port, stream))
    assert [a[0] for a in answers] == [200, 200, 404, 200, 200]
    assert json.loads(answers[0][2])["status"] == "completed"
    assert b"running" in answers[1][2]
    assert json.loads(answers[3][2])["status"] == "ok"
    assert b"uptime_s" in answers[4][2]


def test_bodies_of_changing_sizes_on_one_connection(start_service):
    """A connection keeps a small body buffer from one request to the next and
    gives a large one back; an answer is built in the exchange when it fits and
    on the heap when not. Large and small bodies in turn on one connection must
    each be read whole and answered for themselves."""
    svc = start_service("--sync-latency", "0")

    def body(n):
        bills = [{"denomination_id": 1000 + i, "denomination": 10.0, "count": i + 1}
                 for i in range(n)]
        return json.dumps({"request_id": f"sizes-{n}", "exchange_rate": 2.0,
                           "bills": bills}).encode()

    sizes = [60, 1, 2, 60, 3, 200, 1]
    bodies = [body(n) for n in sizes]
    assert len(bodies[0]) > 2048 and len(bodies[1]) < 200  # past and below the 1 KiB kept
    stream = b"".join(post(b"/api/exchange_sync", b) for b in bodies)
    stream += b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answers = parse_responses(raw(svc.port, stream))
    assert [a[0] for a in answers] == [200] * len(sizes) + [200]
    for n, (_, headers, data) in zip(sizes, answers):
        got = json.loads(data)
        assert int(headers["content-length"]) == len(data)
        assert got["status"] == "completed"
        assert got["breakdown"] == [{"denomination_id": 1000 + i, "subtotal_rub": 20.0 * (i + 1)}
                                    for i in range(n)]


def test_many_pipelined_requests(start_service):
    svc = start_service()
    n = 200  # more than the pipeline depth: reading pauses and resumes
    out = raw(svc.port, GET_ROOT * n + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answers = parse_responses(out)
    assert len(answers) == n + 1 and all(a[0] == 200 for a in answers)


def test_pipelined_posts_pause_and_resume(start_service):
    # each answer waits for its commit, so more than the pipeline depth (32) wait at once:
    # the connection stops parsing, keeps what it read, and goes on as answers leave
    svc = start_service("--latency", "600-600")
    n = 300
    bodies = [json.dumps(dict(SEED_BODY, request_id=f"pipe-{i}")).encode() for i in range(n)]
    stream = b"".join(post(b"/api/exchange_async", b) for b in bodies)
    out = raw(svc.port, stream + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
              timeout=30)
    answers = parse_responses(out)
    assert len(answers) == n + 1 and all(a[0] == 200 for a in answers)
    ids = [json.loads(a[2])["task_id"] for a in answers[:n]]
    assert len(set(ids)) == n and ids == sorted(ids)  # one task each, in the order sent
    # (the pipelined /health was answered as it was read, before the last commits)
    assert json.loads(request(svc.port, "GET", "/health")[2])["tasks_accepted"] == n


def test_chunked_body(start_service):
    svc = start_service()
    chunks = [BODY[:10], BODY[10:50], BODY[50:]]
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    req = (b"POST /api/exchange_async HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body)
    (status, _, data), = parse_responses(raw(svc.port, req))
    assert status == 200 and json.loads(data)["status"] == "ok"


def test_expect_100_continue(start_service):
    svc = start_service()
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    s.sendall(b"POST /api/exchange_async HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Expect: 100-continue\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n")
    interim = s.recv(4096)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(BODY)
    data = s.recv(4096)
    (status, _, body), = parse_responses(data)
    assert status == 200 and json.loads(body)["status"] == "ok"
    s.close()
    # an expectation we do not know
    out = raw(svc.port, post(b"/api/exchange_async", extra=b"Expect: something\r\n"))
    assert parse_responses(out)[0][0] == 417


def test_body_limit_413_without_reading(start_service):
    svc = start_service("--max-body", "1k")
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    # announce 100 MB, send only the headers: the answer comes at once
    s.sendall(b"POST /api/exchange_async HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100000000\r\n\r\n")
    data = s.recv(4096)
    (status, headers, body), = parse_responses(data)
    assert status == 413 and headers["connection"] == "close"
    assert json.loads(body) == {"detail": "Request body too large"}
    s.close()
    # chunked past the limit
    big = b"x" * 2000
    req = (b"POST /api/exchange_async HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
           b"%x\r\n%s\r\n0\r\n\r\n" % (len(big), big))
    assert parse_responses(raw(svc.port, req))[0][0] == 413
    still_serving(svc.port)


def test_url_and_header_limits(start_service):
    svc = start_service()
    out = raw(svc.port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    (status, _, body), = parse_responses(out)
    assert status == 414 and json.loads(body) == {"detail": "URL too long"}
    out = raw(svc.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 17000 + b"\r\n\r\n")
    assert parse_responses(out)[0][0] == 431
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    out = raw(svc.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    (status, _, body), = parse_responses(out)
    assert status == 431 and b"Too many" in body
    still_serving(svc.port)


def test_malformed_and_smuggling_rejected_and_closed(start_service):
    svc = start_service()
    cases = [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"POST /api/exchange_async HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST /api/exchange_async HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
         b"Content-Length: 6\r\n\r\nhello!", 400),
        (b"POST /api/exchange_async HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
         b"0\r\n\r\n", 400),
        (b"POST /api/exchange_async HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"zz\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),  # obsolete line folding
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    ]
    for req, want in cases:
        # a good request first on the same connection: it is answered, then the bad one
        out = raw(svc.port, GET_ROOT + req + GET_ROOT)
        answers = parse_responses(out)
        assert [a[0] for a in answers] == [200, want], (req, out)
        assert answers[1][1]["connection"] == "close"
        assert "detail" in json.loads(answers[1][2])
    still_serving(svc.port)


def test_content_length_mismatch_short_body_times_out(start_service):
    svc = start_service("--body-timeout", "0.5")
    t0 = time.monotonic()
    out = raw(svc.port, b"POST /api/exchange_async HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: 50\r\n\r\n{\"a\":", timeout=5)
    (status, _, body), = parse_responses(out)
    assert status == 408 and json.loads(body) == {"detail": "Request timeout"}
    assert time.monotonic() - t0 < 4
    # a body longer than Content-Length: the extra bytes are the next request, which is malformed
    out = raw(svc.port, post(b"/api/exchange_async") + b"garbage\r\n\r\n")
    assert [a[0] for a in parse_responses(out)] == [200, 400]


def test_header_timeout_408_then_close(start_service):
    svc = start_service("--header-timeout", "0.5")
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finishes the headers
    t0 = time.monotonic()
    data = read_to_close(s)
    assert time.monotonic() - t0 < 4
    (status, headers, _), = parse_responses(data)
    assert status == 408 and headers["connection"] == "close"
    still_serving(svc.port)


def test_idle_keep_alive_closed(start_service):
    svc = start_service("--idle-timeout", "0.5")
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    s.sendall(GET_ROOT)
    assert parse_responses(s.recv(4096))[0][0] == 200
    t0 = time.monotonic()
    assert s.recv(4096) == b""  # closed by the server, without an answer
    assert 0.3 < time.monotonic() - t0 < 4
    s.close()


def test_deadlines_that_move_later_and_earlier(start_service):
    """A connection keeps one deadline; its timer is moved lazily (server.c: set_deadline)."""
    def stalled_second_request(svc):
        """One answered request, then headers begun and never finished: (seconds, status)."""
        s = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
        s.sendall(GET_ROOT)
        assert parse_responses(s.recv(4096))[0][0] == 200
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        data = read_to_close(s)
        s.close()
        return time.monotonic() - t0, parse_responses(data)[0][0]

    # later: the header deadline (2 s) replaces the idle one (0.5 s) set when the answer went
    took, status = stalled_second_request(
        start_service("--idle-timeout", "0.5", "--header-timeout", "2"))
    assert status == 408 and 1.5 < took < 6  # not closed at the idle deadline
    # earlier: the header deadline (0.5 s) comes before the idle one (30 s)
    took, status = stalled_second_request(
        start_service("--idle-timeout", "30", "--header-timeout", "0.5"))
    assert status == 408 and took < 4


@pytest.mark.parametrize("workers,cap", [("1", 2), ("2", 1), ("2", 3)])
def test_max_connections_pauses_accepting(start_service, workers, cap):
    """Past --max-connections (over all workers, fewer than the workers too) the next
    connection waits in a kernel backlog; when one closes it is accepted and answered."""
    svc = start_service("--max-connections", str(cap), "--workers", workers,
                        "--idle-timeout", "30")
    conns = []
    for _ in range(cap):
        s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
        s.sendall(GET_ROOT)
        assert served(s, 5) == 200
        conns.append(s)
    c = socket.create_connection(("127.0.0.1", svc.port), timeout=5)  # in a backlog
    c.sendall(GET_ROOT)
    assert served(c, 0.5) is None, "served past the connection cap"
    conns.pop().close()  # one closes: the waiting one is accepted and answered
    assert served(c, 5) == 200
    for s in conns + [c]:
        s.close()


def served(s, timeout):
    """The status of the answer to what was sent on s, or None if none came in time."""
    s.settimeout(timeout)
    try:
        got = s.recv(4096)
    except socket.timeout:
        return None
    return parse_responses(got)[0][0] if got else None


def test_max_connections_holds_over_all_workers(start_service):
    """The kernel spreads connections over the workers' sockets by a hash of their
    addresses, not by how many each serves: 32 split 16/16 one time in seven. The cap
    holds over all workers (a worker that accepts more than its half hands the
    connection to the other), so all 32 are served; the 33rd waits; when one closes,
    wherever the 33rd waits, it is served."""
    svc = start_service("--max-connections", "32", "--workers", "2", "--idle-timeout", "30")
    conns = []
    for i in range(32):
        s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
        s.sendall(GET_ROOT)
        assert served(s, 3) == 200, f"connection {i + 1} of 32 not served"
        conns.append(s)
    extra = socket.create_connection(("127.0.0.1", svc.port), timeout=5)  # in a backlog
    extra.sendall(GET_ROOT)
    assert served(extra, 0.5) is None, "served past the connection cap"
    conns.pop(0).close()
    assert served(extra, 5) == 200
    for s in conns + [extra]:
        s.close()
    # 32 placed one by one with no hand-off: one time in 65,536
    health = json.loads(request(svc.port, "GET", "/health")[2])
    assert health["connections_handed_off"] > 0


def test_client_half_close_still_answered(start_service):
    svc = start_service()
    out = raw(svc.port, GET_ROOT + GET_ROOT, shut=True)
    assert [a[0] for a in parse_responses(out)] == [200, 200]


def open_connections(port):
    """connections_open from /health, less the one that asks."""
    return json.loads(request(port, "GET", "/health")[2])["connections_open"] - 1


def test_error_close_lingers_for_a_silent_client_then_ends(start_service):
    # after an error answer the server shuts its side and drains what the client still
    # sends; a client that neither sends nor closes is let go after the linger time (2 s)
    svc = start_service()
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    s.sendall(b"NONSENSE\r\n\r\n")
    out = read_to_close(s)  # the answer, then the server's FIN
    assert parse_responses(out)[0][0] == 400
    t0 = time.monotonic()
    assert open_connections(svc.port) == 1  # lingering, not closed at once
    while open_connections(svc.port) != 0:
        assert time.monotonic() - t0 < 10, "a lingering connection was never closed"
        time.sleep(0.1)
    s.close()


def test_error_close_stops_draining_a_client_that_keeps_sending(start_service):
    # the drain is bounded (256 KiB): past it the connection is closed, not read forever
    svc = start_service()
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    s.sendall(b"NONSENSE\r\n\r\n")
    junk = b"x" * 65536
    t0 = time.monotonic()
    try:
        for _ in range(4096):  # 256 MiB: far more than any socket buffer holds
            s.sendall(junk)
        ended = False
    except (ConnectionResetError, BrokenPipeError):
        ended = True
    assert ended and time.monotonic() - t0 < 10
    s.close()
    still_serving(svc.port)


def answered(socks, timeout, want=None, close=False):
    """The sockets of socks whose answer (a 200) arrives within timeout seconds, or as
    soon as want of them have; the first that is not a 200 fails the test. With close,
    each is closed once answered."""
    done = set()
    want = len(socks) if want is None else want
    deadline = time.monotonic() + timeout
    while len(done) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([s for s in socks if s not in done], [], [], left)
        for s in ready:
            data = s.recv(4096)
            assert data.startswith(b"HTTP/1.1 200"), data
            done.add(s)
            if close:
                s.close()
    return done


def served_in_turn(socks, timeout=20):
    """Closes each connection once answered: those waiting in the backlog must be
    accepted and answered as others close, every one of them."""
    done = answered(socks, timeout, close=True)
    assert len(done) == len(socks), f"{len(socks) - len(done)} of {len(socks)} never answered"


def test_open_files_limit_lowers_max_connections():
    """Under an open-files limit of 200 (hard: it cannot be raised) the default 10,000
    connections do not fit: the service says so and takes 16 at a time (2 workers, the
    callbacks' sockets kept), the rest wait their turn in the backlog; no accept fails."""
    p = Proc(["prlimit", "--nofile=200:200", EXCHANGED, "--port", "0", "--workers", "2",
              "--store", "memory", "--idle-timeout", "30"])
    try:
        assert p.err.count(r"event=max_connections_lowered from=10000 to=16 "
                           r"open_files_limit=200 ") == 1
        socks = [socket.create_connection(("127.0.0.1", p.port), timeout=5) for _ in range(40)]
        for s in socks:
            s.sendall(GET_ROOT)
        first = answered(socks, 5, want=16)
        assert len(first) == 16
        rest = [s for s in socks if s not in first]
        assert not answered(rest, 0.5), "served past the connection cap"
        for s in first:
            s.close()
        served_in_turn(rest)
        health = json.loads(request(p.port, "GET", "/health")[2])
        assert health["accept_failures"] == 0
        assert "accept_failed" not in p.err.text()
    finally:
        assert p.stop() == 0


def test_open_files_limit_raised_or_refused():
    # a soft limit below what the connections need is raised, up to the hard one
    p = Proc(["prlimit", "--nofile=256:20000", EXCHANGED, "--port", "0", "--workers", "2",
              "--store", "memory", "--max-connections", "1000"])
    try:
        with open(f"/proc/{p.p.pid}/limits") as f:
            line = next(l for l in f if l.startswith("Max open files"))
        assert line.split()[3:5] == [str(1000 + 32 + 2 * (8 + 4 + 64)), "20000"], line
        assert "max_connections_lowered" not in p.err.text()
    finally:
        assert p.stop() == 0
    # too low even for one connection besides the callbacks: a clear refusal
    r = subprocess.run(["prlimit", "--nofile=100:100", EXCHANGED, "--port", "0",
                        "--store", "memory", "--workers", "2"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert r.stderr == ("exchanged: the open-files limit (ulimit -n) is 100: --workers 2 with "
                        "--callbacks-in-flight 64 need at least 185; raise it, or lower those\n")


def test_out_of_descriptors_pauses_accepting():
    """A process out of file descriptors (the stand-in main service under a limit of 32,
    40 connections at once) accepts what it can, serves those while the rest wait in the
    backlog, warns at most once a second per worker, fails at most one accept per 100 ms
    per worker instead of retrying at once, and
    accepts the rest as descriptors free up: none is reset."""
    p = Proc(["prlimit", "--nofile=32:32", MAIN, "--port", "0", "--workers", "2", "--quiet"])
    try:
        t0 = time.monotonic()
        socks = [socket.create_connection(("127.0.0.1", p.port), timeout=5) for _ in range(40)]
        for s in socks:
            s.sendall(b"GET /api/stats HTTP/1.1\r\nHost: x\r\n\r\n")
        p.err.wait(r"event=accept_failed error=\"Too many open files\" retry_ms=100 ")
        first = answered(socks, 2)
        assert 0 < len(first) < 40
        for s in first:  # still served while others wait
            s.sendall(b"GET /api/stats HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answered(list(first), 5) == first
        for s in first:
            s.close()
        served_in_turn([s for s in socks if s not in first])
        elapsed = time.monotonic() - t0
        warnings = re.findall(r"event=accept_failed .* failures_not_logged=(\d+)", p.err.text())
        assert 1 <= len(warnings) <= 2 * (elapsed + 1)
        # each worker fails one accept per pause of 100 ms at most, not a spin (the
        # failures after a worker's last line are not counted: an upper bound only)
        failures = len(warnings) + sum(int(n) for n in warnings)
        assert failures <= 2 * (elapsed * 10 + 2), (failures, elapsed)
    finally:
        assert p.stop() == 0
