#!/usr/bin/env python3
"""The benchmark: exchanged (SQLite and memory stores) against the seed's FastAPI service and
the nginx floor, on loopback, every load bounded. Prints one table of medians and the ratios
between systems measured in this run, with each run's figures and ratios under the medians
(the systems take turns run by run, so a run's ratio compares figures minutes apart at most);
writes every raw figure to a JSON file.

  bench/bench.py [--runs 3] [--seconds 10] [--burst 100000] [--inflight 1000000] [--smoke]
                 [--aged 2000000] [--out build/bench-results.json]
                 [--only accept,burst,inflight,e2e,aged]

--smoke: tiny loads, one run, no Python reference or nginx when missing: proves the scripts
run and report (the test command runs it); its figures mean nothing.
Needs: build/exchanged, build/exchanged-main, build/bench/loadgen, wrk; nginx-light and
python3-fastapi/uvicorn/httpx for the floor and the reference (make bench installs them).
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("EXCHANGED_BUILD", "build"))
EXCHANGED = os.path.join(BUILD, "exchanged")
MAIN = os.path.join(BUILD, "exchanged-main")
LOADGEN = os.path.join(BUILD, "bench", "loadgen")
LUA = os.path.join(ROOT, "bench", "post.lua")
REFERENCE = os.path.join(ROOT, "bench", "reference")
PATH = "/api/exchange_async"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def get_json(url):
    return json.loads(urllib.request.urlopen(url, timeout=5).read())


def proc_status(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])  # KiB
    except OSError:
        pass
    return 0


def tree_cpu_s(pid):
    """CPU seconds (user + system) of a process and its direct children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(d) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += int(fields[11]) + int(fields[12])
    return total / tick


def children_cpu_s():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class CpuWindow:
    """Where the CPU went while a load ran: the system under test, the
    stand-in main service (when given), the load generator (the child
    reaped in the window), and how busy the machine was."""

    def __init__(self, svc_pid, recv_pid=None):
        self.pids = (svc_pid, recv_pid)
        self.t0 = time.monotonic()
        self.svc0 = tree_cpu_s(svc_pid)
        self.recv0 = tree_cpu_s(recv_pid) if recv_pid else 0.0
        self.gen0 = children_cpu_s()

    def _svc_recv_s(self):
        """CPU seconds of the service and of the stand-in since the start."""
        svc = tree_cpu_s(self.pids[0]) - self.svc0
        recv = tree_cpu_s(self.pids[1]) - self.recv0 if self.pids[1] else 0.0
        return svc, recv

    def per_request_us(self, requests):
        wall = time.monotonic() - self.t0
        svc, recv = self._svc_recv_s()
        gen = children_cpu_s() - self.gen0
        n = max(requests, 1)
        return {"svc_us": svc / n * 1e6, "recv_us": recv / n * 1e6, "gen_us": gen / n * 1e6,
                "busy": (svc + recv + gen) / (wall * (os.cpu_count() or 1))}

    def with_callbacks_us(self, requests):
        """The service's and the stand-in's CPU per request again, once the
        callbacks sent after the load ended have arrived: with a latency of
        1-3 s, the load's window holds only ~80 % of its callbacks."""
        n = max(requests, 1)
        svc, recv = self._svc_recv_s()
        return {"svc_us": svc / n * 1e6, "recv_us": recv / n * 1e6}


class Service:
    """A process started by us and stopped by its PID."""

    def __init__(self, argv, url, env=None, cwd=None, log=None):
        e = dict(os.environ)
        e.update(env or {})
        self.log = open(log or os.devnull, "w")
        self.p = subprocess.Popen(argv, env=e, cwd=cwd, stdout=self.log, stderr=self.log,
                                  start_new_session=True)
        wait_http(url)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


class Receiver:
    """The stand-in main service, counting distinct request_ids."""

    def __init__(self, tmp):
        self.port = free_port()
        self.svc = Service([MAIN, "--port", str(self.port), "--quiet", "--workers", "2"],
                           f"http://127.0.0.1:{self.port}/", log=os.path.join(tmp, "main.log"))

    def stats(self):
        return get_json(f"http://127.0.0.1:{self.port}/api/stats")

    def wait_settled(self, target, timeout, quiet=2.0):
        """Waits until target distinct ids arrived, or nothing new came for `quiet` s."""
        t0 = time.monotonic()
        last, last_change = -1, t0
        while True:
            st = self.stats()
            now = time.monotonic()
            if st["distinct"] != last:
                last, last_change = st["distinct"], now
            if st["distinct"] >= target or now - last_change > quiet or now - t0 > timeout:
                return st, last_change - t0

    def stop(self):
        self.svc.stop()


def wrk(url, seconds, conns, prefix, ids="counter"):
    threads = min(2, conns)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency",
                          "-s", LUA, url], capture_output=True, text=True,
                         env=dict(os.environ, BENCH_PREFIX=prefix, BENCH_IDS=ids),
                         timeout=seconds + 60).stdout
    m = re.search(r"RESULT (.*)", out)
    if not m:
        raise RuntimeError("wrk printed no result:\n" + out)
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def loadgen(port, n, conc, prefix):
    out = subprocess.run([LOADGEN, "127.0.0.1", str(port), PATH, str(n), str(conc), prefix],
                         capture_output=True, text=True, timeout=3600).stdout
    m = re.search(r"RESULT (.*)", out)
    if not m:
        raise RuntimeError("loadgen printed no result:\n" + out)
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


# ---- the systems ----

def start_exchanged(store, tmp, recv, latency="1-3", tag="x", db=None):
    port = free_port()
    spec = f"sqlite:{db or f'{tmp}/bench-{tag}-{time.monotonic_ns()}.db'}" if store == "sqlite" \
        else "memory"
    svc = Service([EXCHANGED, "--port", str(port), "--store", spec, "--latency", latency,
                   "--bill-log", "0", "--log-level", "warn", "--max-active-tasks", "5000000",
                   "--main-service-url", f"http://127.0.0.1:{recv.port}"],
                  f"http://127.0.0.1:{port}/", log=os.path.join(tmp, f"exchanged-{tag}.log"))
    return svc, port


def start_reference(tmp, recv, latency="1-3"):
    port = free_port()
    lo, hi = latency.split("-")
    svc = Service(["/usr/bin/python3", "-m", "uvicorn", "app:app", "--port", str(port),
                   "--log-level", "warning", "--no-access-log"], f"http://127.0.0.1:{port}/",
                  env={"MAIN_SERVICE_URL": f"http://127.0.0.1:{recv.port}", "LATENCY_MIN": lo,
                       "LATENCY_MAX": hi, "PYTHONUNBUFFERED": "1"},
                  cwd=REFERENCE, log=os.path.join(tmp, "reference.log"))
    return svc, port


def start_floor(tmp):
    port = free_port()
    d = os.path.join(tmp, "nginx")
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  keepalive_requests 10000000;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ default_type application/json; return 200 '{{"status":"ok"}}'; }}
  }}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    svc = Service([nginx, "-p", d, "-c", conf], f"http://127.0.0.1:{port}/",
                  log=os.path.join(tmp, "nginx.log"))
    return svc, port


def have_reference():
    try:
        subprocess.run(["/usr/bin/python3", "-c", "import fastapi, uvicorn, httpx"], check=True,
                       capture_output=True)
        return True
    except Exception:
        return False


# ---- the measurements ----

# Each measurement runs once per call; main() takes the systems in turn, run by
# run (round robin), so that a slow spell of this shared machine falls on every
# system alike and the ratios of one run compare like with like.

def m_accept(system, start, recv, a, conns, r):
    svc, port = start()
    try:
        before = recv.stats()["distinct"]
        cpu = CpuWindow(svc.p.pid, recv.svc.p.pid)
        w = wrk(f"http://127.0.0.1:{port}{PATH}", a.seconds, conns, f"acc-{system}-{conns}-{r}")
        w.update(cpu.per_request_us(w["requests"]))
        accepted = w["requests"] - w["non2xx"]
        st, _ = recv.wait_settled(before + accepted, timeout=a.settle)
        w.update(cpu.with_callbacks_us(w["requests"]))  # busy stays the load's
        w["callbacks"] = st["distinct"] - before
        w["lost"] = max(0, accepted - w["callbacks"])
        return w
    finally:
        svc.stop()


# An aged database: N tasks that ended over the last two days, with random
# (UUID) request_ids, as a service that has run a while holds them until
# --retention purges them. Rows shaped like the service's own (the stored
# payload, a breakdown, a history); their request_id index filled by random
# inserts, as a running service fills it. The schema is the service's: it
# makes the file, stops, and the rows go in with SQLite's journal and sync
# off (this is set-up, not the measurement).
AGED_FILL = """
PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
PRAGMA cache_size=-1000000;
WITH RECURSIVE c(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM c WHERE k < {n} - 1),
 t(k, ms) AS (SELECT k, {start} + k * {step} FROM c)
INSERT INTO tasks (id, request_id, payload, state, attempts, created_ms, updated_ms,
                   next_attempt_ms, last_error, breakdown, history)
SELECT (ms << 20) | (k & 1023),
  '"' || lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
  substr(lower(hex(randomblob(2))), 2) || '-a' || substr(lower(hex(randomblob(2))), 2) || '-' ||
  lower(hex(randomblob(6))) || '"',
  '[75.5,1,10.0,5,2,20.0,3]', 4, 1, ms, ms + 2500, 0, NULL,
  '[{{"denomination_id":1,"subtotal_rub":3775.0}},{{"denomination_id":2,"subtotal_rub":4530.0}}]',
  ' delivering@' || (ms + 2400) || ' succeeded@' || (ms + 2500)
FROM t;
PRAGMA journal_mode=WAL;
"""


def make_aged(tmp, recv, n):
    """The aged database's file (made once; each run works on a copy) and its fill time."""
    import sqlite3
    path = os.path.join(tmp, "aged-template.db")
    svc, _ = start_exchanged("sqlite", tmp, recv, tag="aged-made", db=path)
    svc.stop()
    span = 2 * 86400 * 1000  # two days, ending a minute ago: ids below the service's new ones
    step = max(1, span // n)
    start = int(time.time() * 1000) - 60000 - step * n
    t0 = time.monotonic()
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(AGED_FILL.format(n=n, start=start, step=step))
    count = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
    db.close()
    if count != n:
        raise RuntimeError(f"the aged database holds {count} tasks, not {n}")
    return path, time.monotonic() - t0


def m_aged(which, tmp, recv, a, template, r):
    """accept c=64 with UUID request_ids: on an empty database, or on a copy of the aged one."""
    db = os.path.join(tmp, f"aged-{which}-{r}.db")
    if which == "aged":
        shutil.copyfile(template, db)
    os.sync()  # the copy's writes out before the load, not in the middle of it
    svc, port = start_exchanged("sqlite", tmp, recv, tag=f"aged-{which}", db=db)
    try:
        cpu = CpuWindow(svc.p.pid, recv.svc.p.pid)
        w = wrk(f"http://127.0.0.1:{port}{PATH}", a.seconds, 64, f"aged-{which}-{r}", ids="uuid")
        w.update(cpu.per_request_us(w["requests"]))
        w["db_mb"] = os.path.getsize(db) / 1e6
        return w
    finally:
        svc.stop()
        for suffix in ("", "-wal"):
            if os.path.exists(db + suffix):
                os.unlink(db + suffix)


def m_floor(tmp, a, conns):
    svc, port = start_floor(tmp)
    try:
        cpu = CpuWindow(svc.p.pid)
        w = wrk(f"http://127.0.0.1:{port}{PATH}", a.seconds, conns, "floor")
        w.update(cpu.per_request_us(w["requests"]))
        return w
    finally:
        svc.stop()


def m_burst(system, start, recv, n, a, r):
    svc, port = start()
    try:
        st0 = recv.stats()
        t0 = time.monotonic()
        lg = loadgen(port, n, 256, f"burst-{system}-{r}-{time.monotonic_ns()}")
        st, _ = recv.wait_settled(st0["distinct"] + lg["ok_2xx"], timeout=a.settle + 120,
                                  quiet=a.settle)
        done_s = time.monotonic() - t0
        lg["all_callbacks_s"] = done_s if st["distinct"] - st0["distinct"] >= lg["ok_2xx"] else None
        lg["callbacks"] = st["distinct"] - st0["distinct"]
        lg["lost"] = max(0, lg["ok_2xx"] - lg["callbacks"])
        lg["duplicates"] = st["duplicates"] - st0["duplicates"]
        lg["peak_rss_mb"] = proc_status(svc.p.pid, "VmHWM") / 1024
        if system != "reference":  # attempts that failed and were made again (/health)
            lg["retried"] = get_json(f"http://127.0.0.1:{port}/health")["callbacks_retried"]
        return lg
    finally:
        svc.stop()


def m_inflight(system, start, n, results):
    svc, port = start()
    try:
        base = proc_status(svc.p.pid, "VmRSS")
        lg = loadgen(port, n, 256, f"inflight-{time.monotonic_ns()}")
        rss = proc_status(svc.p.pid, "VmRSS")
        peak = proc_status(svc.p.pid, "VmHWM")
        results["inflight"][system] = [{
            "tasks": lg["ok_2xx"], "rss_mb": rss / 1024, "peak_rss_mb": peak / 1024,
            "base_rss_mb": base / 1024, "bytes_per_task": (peak - base) * 1024 / max(1, lg["ok_2xx"]),
            "submit_rps": lg["rps"], "submit_p99_ms": lg["p99_ms"]}]
    finally:
        svc.stop()


def m_e2e(system, start, recv, a, conns, r):
    svc, port = start()
    try:
        before = recv.stats()["distinct"]
        cpu = CpuWindow(svc.p.pid, recv.svc.p.pid)
        w = wrk(f"http://127.0.0.1:{port}{PATH}", a.seconds, conns, f"e2e{conns}-{system}-{r}")
        use = cpu.per_request_us(w["requests"])
        st, last = recv.wait_settled(before + w["requests"] - w["non2xx"], timeout=a.settle)
        done = st["distinct"] - before
        return {"completed": done, "completed_per_s": done / max(a.seconds, last),
                "accept_rps": w["rps"], **use}
    finally:
        svc.stop()


# ---- the report ----

def med(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def runs_of(runs, key, digits=0):
    """Each run's figure, in the order the runs were made: "a / b / c"."""
    return " / ".join(fmt(r.get(key), digits) for r in runs)


def per_run_ratios(runs, base_runs, key, form):
    """The ratio within each run (the systems take turns run by run, so run r of
    one system and run r of another ran minutes apart at most)."""
    out = []
    for r, b in zip(runs, base_runs):
        out.append(form.format(r[key] / b[key]) if r.get(key) is not None and b.get(key) else "-")
    return " / ".join(out)


def fmt(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, float) and digits:
        return f"{v:,.{digits}f}"
    return f"{v:,.0f}"


def report(results, a):
    lines = []
    sysnames = ["sqlite", "memory", "reference", "floor"]
    label = {"sqlite": "exchanged --store sqlite (FULL)", "memory": "exchanged --store memory",
             "reference": "seed FastAPI (uvicorn, 1 worker)", "floor": "nginx return 200 (floor)"}
    for conns in (64, 256):
        key = f"accept_c{conns}"
        lines.append(f"\naccept, wrk c={conns} {a.seconds}s, 2-bill body, unique request_ids "
                     f"(median of {a.runs})")
        lines.append(f"{'system':34} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non2xx':>7} "
                     f"{'lost cb':>8}")
        for s in sysnames:
            runs = results[key].get(s)
            if runs:
                lines.append(f"{label[s]:34} {fmt(med(runs, 'rps')):>10} {fmt(med(runs, 'p50_ms'), 2):>8} "
                             f"{fmt(med(runs, 'p99_ms'), 2):>8} {fmt(med(runs, 'non2xx')):>7} "
                             f"{fmt(med(runs, 'lost')) if s != 'floor' else '-':>8}")
        acc = {s: med(results[key][s], "rps") for s in results[key]}
        ratios = []
        for s in ("sqlite", "memory"):
            for base, form in (("floor", "{:.2f}"), ("reference", "{:.0f}x")):
                if s in acc and base in acc and acc[base]:
                    each = per_run_ratios(results[key][s], results[key][base], "rps", form)
                    ratios.append(f"{s}/{base} = {form.format(acc[s] / acc[base])}"
                                  + (f" (runs {each})" if a.runs > 1 else ""))
        if ratios:
            lines.append("ratios (same run): " + ", ".join(ratios))
        if a.runs > 1:
            lines.append("runs, in turn (req/s): " + "; ".join(
                f"{s} {runs_of(results[key][s], 'rps')}" for s in sysnames if results[key].get(s)))
        cpu = []
        for s in sysnames:
            runs = results[key].get(s)
            if runs and med(runs, "svc_us") is not None:
                part = f"{s} {fmt(med(runs, 'svc_us'))}"
                if s != "floor":
                    part += f" + main service {fmt(med(runs, 'recv_us'))}"
                cpu.append(part + f" + wrk {fmt(med(runs, 'gen_us'))} us"
                           f" (machine {med(runs, 'busy') * 100:.0f}% busy)")
        if cpu:
            lines.append("CPU per request: " + "; ".join(cpu))
    if results["burst"]:
        lines.append(f"\nburst at c=256, latency {a.latency} s (median of {a.runs})")
        lines.append(f"{'system':34} {'N':>8} {'submit s':>9} {'all cb s':>9} {'lost':>6} {'dups':>6} "
                     f"{'peak RSS MB':>12}")
        for s in sysnames:
            runs = results["burst"].get(s)
            if runs:
                lines.append(f"{label[s]:34} {fmt(runs[0]['ok_2xx'] + runs[0]['non2xx']):>8} "
                             f"{fmt(med(runs, 'submit_s'), 2):>9} {fmt(med(runs, 'all_callbacks_s'), 2):>9} "
                             f"{fmt(med(runs, 'lost')):>6} {fmt(med(runs, 'duplicates')):>6} "
                             f"{fmt(med(runs, 'peak_rss_mb'), 1):>12}")
        after = []
        for s in ("sqlite", "memory"):
            runs = results["burst"].get(s)
            if runs:
                after.append(s + " " + " / ".join(
                    f"+{r['all_callbacks_s'] - r['submit_s']:.2f}" if r.get("all_callbacks_s") else "-"
                    for r in runs) + " s")
        if after:
            lines.append("the last callback after the last submission, each run: " + "; ".join(after))
        retried = [s + " " + " / ".join(fmt(r["retried"]) for r in results["burst"][s])
                   for s in ("sqlite", "memory")
                   if results["burst"].get(s) and all("retried" in r for r in results["burst"][s])]
        if retried:
            lines.append("callbacks retried (a failed attempt made again), each run: " + "; ".join(retried))
    if results["inflight"]:
        lines.append("\nin flight: tasks accepted with --latency 600-600 (one run: a memory figure;"
                     " accepted by bench/loadgen at c=256, no callback due)")
        for s, runs in results["inflight"].items():
            r = runs[0]
            lines.append(f"{label[s]:34} tasks={fmt(r['tasks'])} peak RSS={r['peak_rss_mb']:.1f} MB "
                         f"-> {r['bytes_per_task']:.0f} bytes/task; accepted at "
                         f"{fmt(r['submit_rps'])} req/s, p99 {r['submit_p99_ms']:.1f} ms")
    for conns in (64, 256):
        if not results[f"e2e_c{conns}"]:
            continue
        lines.append(f"\nend to end, --latency 0-0, wrk c={conns} {a.seconds}s (median of {a.runs})")
        for s, runs in results[f"e2e_c{conns}"].items():
            each = f", runs {runs_of(runs, 'completed_per_s')}" if a.runs > 1 else ""
            lines.append(f"{label[s]:34} {fmt(med(runs, 'completed_per_s'))} completed tasks/s{each} "
                         f"(accept {fmt(med(runs, 'accept_rps'))} req/s; CPU per task: service "
                         f"{fmt(med(runs, 'svc_us'))} + main service {fmt(med(runs, 'recv_us'))} + "
                         f"wrk {fmt(med(runs, 'gen_us'))} us, machine {med(runs, 'busy') * 100:.0f}% busy)")
        e2e = results[f"e2e_c{conns}"]
        if a.runs > 1 and e2e.get("sqlite") and e2e.get("memory"):
            lines.append("sqlite/memory, each run: "
                         + per_run_ratios(e2e["sqlite"], e2e["memory"], "completed_per_s", "{:.2f}"))
    aged = results.get("aged")
    if aged:
        lines.append(f"\naged database: accept, wrk c=64 {a.seconds}s, random (UUID) request_ids, "
                     f"--store sqlite (median of {a.runs})")
        lines.append(f"{'database':34} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non2xx':>7}")
        for which, name in (("empty", "empty"),
                            ("aged", f"{fmt(aged['tasks'])} tasks ended, {fmt(aged['db_mb'])} MB")):
            runs = aged[which]
            lines.append(f"{name:34} {fmt(med(runs, 'rps')):>10} {fmt(med(runs, 'p50_ms'), 2):>8} "
                         f"{fmt(med(runs, 'p99_ms'), 2):>8} {fmt(med(runs, 'non2xx')):>7}")
        lines.append(f"aged/empty, each run: {per_run_ratios(aged['aged'], aged['empty'], 'rps', '{:.2f}')}"
                     f" (filled in {aged['fill_s']:.0f} s, each run on a fresh copy)")
    us = results["machine"].get("fdatasync_us")
    if us:
        lines.append(f"\nfdatasync of a 16 KiB append here: {us:.0f} us (median); with synchronous=FULL "
                     f"each group commit waits for one, so c clients that each wait for their "
                     f"answer get at most c / fdatasync: {64 / us * 1e6:,.0f} req/s at c=64, "
                     f"{256 / us * 1e6:,.0f} at c=256, before any CPU is spent")
    return "\n".join(lines)


def fsync_probe(directory, n=200):
    """Median time of one 16 KiB append + fdatasync in directory (where the database lives):
    with synchronous=FULL every group commit waits for one, so a closed loop of c clients
    cannot be acknowledged faster than c / this."""
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        block = b"\1" * 16384
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            os.pwrite(fd, block, i * len(block))
            os.fdatasync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    return statistics.median(times) * 1e6


PARTS = ("accept", "burst", "inflight", "e2e", "aged")


def positive(kind):
    """An argparse type: a number of the kind, greater than 0."""
    def check(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
        if not v > 0:
            raise argparse.ArgumentTypeError(f"expected a number greater than 0, got {text!r}")
        return v
    return check


def parts(text):
    """An argparse type: a comma-separated list of PARTS, at least one."""
    got = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in got if p not in PARTS]
    if bad or not got:
        raise argparse.ArgumentTypeError(
            f"unknown part {', '.join(bad) or '(none given)'}; expected some of {','.join(PARTS)}")
    return [p for p in PARTS if p in got]


def main():
    ap = argparse.ArgumentParser(
        description="exchanged against the seed's FastAPI service and the nginx floor, on "
                    "loopback; prints one table of medians and writes the raw figures")
    for flag, kind, default, metavar, text in (
            ("--runs", int, 3, "N", "runs of each measurement, the systems taking turns"),
            ("--seconds", int, 10, "S", "length of each wrk load, accept and end to end"),
            ("--burst", int, 100000, "N", "requests in each burst of exchanged"),
            ("--burst-reference", int, 2000, "N", "requests in each burst of the Python reference"),
            ("--inflight", int, 1000000, "N", "tasks held in flight for the memory figure"),
            ("--aged", int, 2000000, "N", "ended tasks in the aged database (at most 100,000,000)"),
            ("--settle", float, 10.0, "S", "seconds to wait for the callbacks after a load")):
        ap.add_argument(flag, type=positive(kind), default=default, metavar=metavar,
                        help=f"{text} (default {default})")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny loads, one run, the reference and nginx optional: proves the "
                         "scripts run; its figures mean nothing")
    ap.add_argument("--only", type=parts, default=",".join(PARTS), metavar="LIST",
                    help="comma-separated parts to run, of " + ",".join(PARTS) + " (default all)")
    ap.add_argument("--out", default=os.path.join(BUILD, "bench-results.json"), metavar="FILE",
                    help="where the raw figures go (default build/bench-results.json)")
    a = ap.parse_args()
    if a.smoke:
        a.runs, a.seconds, a.burst, a.burst_reference, a.inflight, a.settle = 1, 1, 300, 50, 500, 3.0
        a.aged = 2000
    if a.aged > 100000000:
        ap.error("--aged: at most 100,000,000 tasks")
    only = a.only
    for tool in (EXCHANGED, MAIN, LOADGEN):
        if not os.path.exists(tool):
            sys.exit(f"bench: {tool} is missing: run make first")
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is missing (make bench installs it)")
    ref_ok = have_reference()
    floor_ok = bool(shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"))
    if not a.smoke and not (ref_ok and floor_ok):
        sys.exit("bench: nginx-light and python3-fastapi/uvicorn/httpx are needed (make bench)")
    latency_short = a.latency = "0.2-0.4" if a.smoke else "1-3"
    results = {"accept_c64": {}, "accept_c256": {}, "burst": {}, "inflight": {}, "e2e_c64": {},
               "e2e_c256": {}, "aged": {},
               "machine": {"cpus": os.cpu_count(), "uname": " ".join(os.uname())},
               "args": vars(a)}
    tmp = tempfile.mkdtemp(prefix="exchanged-bench-")
    results["machine"]["fdatasync_us"] = fsync_probe(tmp, 20 if a.smoke else 200)
    recv = Receiver(tmp)
    try:
        systems = {
            "sqlite": lambda lat=latency_short: start_exchanged("sqlite", tmp, recv, lat, "sqlite"),
            "memory": lambda lat=latency_short: start_exchanged("memory", tmp, recv, lat, "memory"),
        }
        if ref_ok and not a.smoke:
            systems["reference"] = lambda lat=latency_short: start_reference(tmp, recv, lat)
        if "accept" in only:
            for conns in (64, 256):
                table = results[f"accept_c{conns}"]
                for r in range(a.runs):
                    for name, start in systems.items():
                        table.setdefault(name, []).append(m_accept(name, start, recv, a, conns, r))
                    if floor_ok:
                        table.setdefault("floor", []).append(m_floor(tmp, a, conns))
        if "burst" in only:
            for r in range(a.runs):
                for name, start in systems.items():
                    n = a.burst_reference if name == "reference" else a.burst
                    results["burst"].setdefault(name, []).append(m_burst(name, start, recv, n, a, r))
        if "inflight" in only:
            for name in ("sqlite", "memory"):
                m_inflight(name, lambda name=name: start_exchanged(name, tmp, recv, "600-600",
                                                                   "inflight-" + name),
                           a.inflight, results)
        if "e2e" in only:
            for conns in (64, 256):
                table = results[f"e2e_c{conns}"]
                for r in range(a.runs):
                    for name in ("sqlite", "memory"):
                        start = lambda name=name: start_exchanged(name, tmp, recv, "0-0",
                                                                  f"e2e{conns}-{name}")
                        table.setdefault(name, []).append(m_e2e(name, start, recv, a, conns, r))
        if "aged" in only:
            template, fill_s = make_aged(tmp, recv, a.aged)
            aged = results["aged"]
            aged.update({"tasks": a.aged, "fill_s": fill_s, "db_mb": os.path.getsize(template) / 1e6,
                         "empty": [], "aged": []})
            for r in range(a.runs):
                for which in ("empty", "aged"):
                    aged[which].append(m_aged(which, tmp, recv, a, template, r))
    finally:
        recv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(results, a)
    print(text)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nraw figures: {a.out}")


if __name__ == "__main__":
    main()
