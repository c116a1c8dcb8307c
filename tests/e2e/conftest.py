"""Fixtures: the real binaries on loopback, each on a port it picks itself.

Every process is started with --port 0; its "event=listening address=..." log
line tells the port. Output lines are collected by a reader thread so a test
can wait for a line (an event) instead of sleeping.
"""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import http.client

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("EXCHANGED_BUILD", "build"))
EXCHANGED = os.path.join(BUILD, "exchanged")
MAIN = os.path.join(BUILD, "exchanged-main")

SEED_BODY = {
    "request_id": "async_test",
    "exchange_rate": 75.5,
    "bills": [
        {"denomination_id": 1, "denomination": 10.0, "count": 5},
        {"denomination_id": 2, "denomination": 20.0, "count": 3},
    ],
}


class Lines:
    """Lines of one stream, collected by a thread; waitable."""

    def __init__(self, stream):
        self.lines = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream):
        for raw in iter(stream.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # end of stream
            self.cond.notify_all()

    def wait(self, pattern, timeout=10.0, count=1):
        """Waits until count lines match pattern; returns the matches."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [m for m in (rx.search(l) for l in self.lines if l is not None) if m]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.lines and self.lines[-1] is None):
                    raise AssertionError(
                        f"no {count}x /{pattern}/ in output:\n" + "\n".join(
                            l for l in self.lines[-40:] if l is not None))
                self.cond.wait(left)

    def text(self):
        with self.cond:
            return "\n".join(l for l in self.lines if l is not None)

    def count(self, pattern):
        rx = re.compile(pattern)
        with self.cond:
            return sum(1 for l in self.lines if l is not None and rx.search(l))


class Proc:
    def __init__(self, argv, env=None):
        full_env = dict(os.environ)
        for k in ("MAIN_SERVICE_URL", "SECRET_TOKEN"):
            full_env.pop(k, None)
        full_env.update(env or {})
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=full_env)
        self.out = Lines(self.p.stdout)
        self.err = Lines(self.p.stderr)
        m = self.err.wait(r"event=listening address=http://([^ ]+):(\d+)", timeout=10)[0]
        self.port = int(m.group(2))

    def url(self, path=""):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            lines = [l for l in self.err.text().splitlines() if "shutdown_waiting" not in l]
            waits = [l for l in self.err.text().splitlines() if "shutdown_waiting" in l]
            raise AssertionError("did not stop; its log:\n" + "\n".join(lines[-40:] + waits[-3:]))
        self.err.thread.join(5)
        report = self.err.text()
        assert "Sanitizer" not in report and "runtime error" not in report, report[-4000:]
        return rc


@pytest.fixture
def main_service():
    """The stand-in main service on a free port."""
    p = Proc([MAIN, "--port", "0", "--workers", "1"])
    yield p
    p.stop()


@pytest.fixture
def start_main():
    """Starts more stand-in main services: start_main("--fail", "2", port=N)."""
    procs = []

    def start(*args, port=0):
        p = Proc([MAIN, "--port", str(port), "--workers", "1", *args])
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def start_service(main_service, tmp_path):
    """Starts exchanged (pointed at the stand-in, its store in a temporary
    directory unless --store is given) with extra flags. A database serves one
    process: a service started while one on tasks.db runs gets tasks-N.db."""
    procs = []
    on_default = {}  # the default database's processes, by file

    def start(*args, env=None, main=True):
        e = {"MAIN_SERVICE_URL": main_service.url()} if main else {}
        e.update(env or {})
        store = []
        if not any(a.startswith("--store") and a != "--store-sync" for a in args):
            n = 1
            while on_default.get(n) is not None and on_default[n].p.poll() is None:
                n += 1
            store = ["--store", f"sqlite:{tmp_path}/" + ("tasks.db" if n == 1 else f"tasks-{n}.db")]
        p = Proc([EXCHANGED, "--port", "0", "--workers", "2", *store, *args], env=e)
        if store:
            on_default[n] = p
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()


def request(port, method, path, body=None, headers=None, timeout=10):
    """One HTTP request; returns (status, headers dict, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def read_to_close(s):
    """Reads from a socket until the peer closes (or the socket times out)."""
    chunks = []
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    except socket.timeout:
        pass
    return b"".join(chunks)


def raw(port, data, timeout=5.0, shut=False):
    """Sends bytes, reads until the server closes (or timeout); returns bytes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    out = read_to_close(s)
    s.close()
    return out


def parse_responses(data):
    """Splits a byte stream into [(status, headers, body)], by Content-Length."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out
