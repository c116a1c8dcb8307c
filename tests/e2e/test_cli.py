"""The command lines: --help, --version, refusals, the stand-in main service."""
import fcntl
import http.client
import json
import os
import socket
import subprocess

from conftest import EXCHANGED, MAIN, SEED_BODY, Lines, request


def run(*args, env=None):
    return subprocess.run([EXCHANGED, *args], capture_output=True, text=True, timeout=10, env=env)


def test_help_lists_every_flag():
    r = run("--help")
    assert r.returncode == 0
    for flag in ("--host", "--port", "--workers", "--latency", "--sync-latency",
                 "--main-service-url", "--secret-token", "MAIN_SERVICE_URL", "SECRET_TOKEN",
                 "--max-body", "--max-connections", "--header-timeout", "--idle-timeout",
                 "--callbacks-in-flight", "--callback-ca-file", "EXCHANGED_CALLBACK_CA_FILE",
                 "--version"):
        assert flag in r.stdout, flag
    assert "MY_SECRET_TOKEN" not in r.stdout


def test_version():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("exchanged ")


def test_bad_values_refused_with_one_line():
    for args in (["--latency", "3-1"], ["--latency", "abc"], ["--port", "-1"], ["--workers", "x"],
                 ["--sync-latency", "-2"], ["--main-service-url", "ftp://x"], ["--nope"],
                 ["--max-body", "1q"], ["--port"]):
        r = run(*args)
        assert r.returncode != 0, args
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("exchanged: "), (args, r.stderr)
    for args in (["--callback-ca-file", "/etc/hostname"],
                 ["--main-service-url", "https://m", "--callback-ca-file", "/nonexistent"],
                 ["--main-service-url", "https://m", "--callback-ca-file", "/etc/hostname"]):
        r = run(*args)
        assert r.returncode != 0, args
        assert r.stderr.startswith("exchanged: --callback-ca-file: "), (args, r.stderr)
    r = run(env={"MAIN_SERVICE_URL": "not a url", "PATH": "/usr/bin"})
    assert r.returncode != 0 and "MAIN_SERVICE_URL" in r.stderr


def test_port_in_use_refused():
    """Refused whether the listener there shares its port (SO_REUSEPORT, as each worker
    of another exchanged does) or not; the stand-in main service too."""
    for argv in ([EXCHANGED, "--store", "memory"], [MAIN]):
        for reuseport in (False, True):
            with socket.socket() as s:
                if reuseport:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                s.bind(("127.0.0.1", 0))
                s.listen()
                port = s.getsockname()[1]
                r = subprocess.run([*argv, "--port", str(port)], capture_output=True, text=True,
                                   timeout=10)
            assert r.returncode != 0, (argv, reuseport)
            assert f"cannot listen on 127.0.0.1:{port}" in r.stderr, (argv, reuseport, r.stderr)
            assert "in use" in r.stderr, (argv, reuseport, r.stderr)


def test_host_that_is_no_address_refused():
    """--host neither an IP address nor a name that resolves: said so, by both programs
    (before: "Cannot assign requested address", as for an address not on this machine);
    an address not on this machine keeps the system's words."""
    for argv, name in (([EXCHANGED, "--store", "memory"], "exchanged"), ([MAIN], "exchanged-main")):
        for host in ("nohost.invalid", "999.1.1.1"):
            r = subprocess.run([*argv, "--port", "0", "--host", host], capture_output=True,
                               text=True, timeout=30)  # a name asks the resolver
            assert r.returncode == 1, (argv, host)
            assert r.stderr == (f"{name}: cannot listen on {host}:0: not an IP address, nor a"
                                " host name that resolves\n"), r.stderr
        r = subprocess.run([*argv, "--port", "0", "--host", "192.0.2.1"], capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 1
        assert r.stderr == (f"{name}: cannot listen on 192.0.2.1:0: Cannot assign requested"
                            " address\n"), r.stderr


def test_second_service_on_a_port_refused(start_service):
    """A second exchanged on the port of a running one (each of whose workers listens with
    SO_REUSEPORT) stops at once, and the first goes on answering alone."""
    first = start_service()
    r = subprocess.run([EXCHANGED, "--port", str(first.port), "--store", "memory"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert f"cannot listen on 127.0.0.1:{first.port}: Address already in use" in r.stderr, r.stderr
    status, _, body = request(first.port, "GET", "/health")
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_main_service_stand_in_with_a_stalled_stdout():
    """The stand-in prints each result; with stdout a pipe nobody reads it went
    on answering (its lines wait in the output queue, output.h). Before, it
    stopped answering once ~64 KiB of lines had piled up."""
    r, w = os.pipe()
    fcntl.fcntl(w, 1031, 4096)  # F_SETPIPE_SZ
    p = subprocess.Popen([MAIN, "--port", "0", "--workers", "1"], stdout=w, stderr=subprocess.PIPE)
    os.close(w)
    try:
        err = Lines(p.stderr)
        port = int(err.wait(r"event=listening address=http://[^ ]+:(\d+)")[0].group(1))
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = 2000  # ~300 KB of "result ..." lines
        for i in range(n):
            body = json.dumps({"token": "MY_SECRET_TOKEN", "request_id": f"stall-{i}",
                               "breakdown": [{"denomination_id": 1, "subtotal": 3775.0}] * 2})
            c.request("PUT", "/api/exchange_result", body, {"Content-Type": "application/json"})
            resp = c.getresponse()
            resp.read()
            assert resp.status == 200, i
        stats = json.loads(request(port, "GET", "/api/stats")[2])
        assert stats["distinct"] == n
        p.terminate()
        assert p.wait(15) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(r)


def start_closed_stdio(argv):
    """Starts argv with stdin and stdout closed (`<&- >&-`), stderr a pipe;
    returns (Popen, its stderr Lines, its port)."""
    p = subprocess.Popen(["sh", "-c", 'exec "$0" "$@" <&- >&-', *argv],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    err = Lines(p.stderr)
    port = int(err.wait(r"event=listening address=http://[^ ]+:(\d+)")[0].group(1))
    return p, err, port


def test_started_with_stdin_and_stdout_closed():
    """Both programs open /dev/null on a closed descriptor 0-2 first: with stdout
    closed, the stand-in's epoll descriptor took 1; its result lines went there
    (EINVAL) and libuv aborted at the stop on closing a descriptor under 3."""
    procs = []
    try:
        main, _, main_port = start_closed_stdio([MAIN, "--port", "0", "--workers", "1"])
        procs.append(main)
        svc, svc_err, port = start_closed_stdio(
            [EXCHANGED, "--port", "0", "--workers", "1", "--store", "memory",
             "--latency", "0-0", "--log-level", "debug",
             "--main-service-url", f"http://127.0.0.1:{main_port}"])
        procs.append(svc)
        for p in procs:
            for fd in (0, 1):
                assert os.readlink(f"/proc/{p.pid}/fd/{fd}") == "/dev/null", (p.args, fd)
        body = dict(SEED_BODY, request_id="closed-stdio")
        assert request(port, "POST", "/api/exchange_async", body)[0] == 200
        svc_err.wait(r"event=callback_delivered .*request_id=\"closed-stdio\" status=200")
        status, _, got = request(main_port, "GET", "/api/exchange_result/closed-stdio")
        assert status == 200 and json.loads(got)["request_id"] == "closed-stdio"
        for p in reversed(procs):
            p.terminate()
            assert p.wait(15) == 0, p.args
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_main_service_stand_in(main_service):
    good = {"token": "MY_SECRET_TOKEN", "request_id": 7, "breakdown": []}
    status, _, body = request(main_service.port, "PUT", "/api/exchange_result",
                              dict(good, token="nope"))
    assert status == 400 and json.loads(body) == {"message": "Invalid token"}
    assert request(main_service.port, "GET", "/api/exchange_result/7")[0] == 404
    assert request(main_service.port, "PUT", "/api/exchange_result", good)[0] == 200
    status, _, body = request(main_service.port, "GET", "/api/exchange_result/7")
    assert status == 200 and json.loads(body) == good
    main_service.out.wait(r'^result \{"token"')
    assert request(main_service.port, "PUT", "/api/exchange_result", good)[0] == 200
    stats = json.loads(request(main_service.port, "GET", "/api/stats")[2])
    assert stats.pop("connections") >= 1
    assert stats == {"received": 2, "distinct": 1, "duplicates": 1, "rejected": 1,
                     "failed_on_purpose": 0}
    r = subprocess.run([MAIN, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--token" in r.stdout
