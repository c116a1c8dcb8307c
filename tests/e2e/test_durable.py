"""Durable tasks: the task API, retries, recovery after kill -9, cancel,
idempotency, limits, a full disk, shutdown."""
import concurrent.futures
import http.server
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest

from conftest import EXCHANGED, ROOT, SEED_BODY, Proc, free_port, request


def submit(svc, rid, **changes):
    body = dict(SEED_BODY, request_id=rid, **changes)
    status, headers, data = request(svc.port, "POST", "/api/exchange_async", body)
    return status, headers, json.loads(data)


def task(svc, task_id):
    status, _, data = request(svc.port, "GET", f"/api/tasks/{task_id}")
    return status, json.loads(data)


def wait_state(svc, task_id, state, timeout=15):
    """Waits for the task to reach state, following the service's log of it."""
    deadline = time.monotonic() + timeout
    while True:
        status, t = task(svc, task_id)
        if status == 200 and t["state"] == state:
            return t
        assert time.monotonic() < deadline, f"task {task_id} stayed {t}"
        time.sleep(0.05)


def stats(main):
    return json.loads(request(main.port, "GET", "/api/stats")[2])


def test_ids_keep_increasing_when_the_clock_went_back(start_service, main_service, tmp_path):
    """Task ids are made of the wall clock, and the list is newest first by id. A database
    whose newest task is ahead of the clock (the clock was set back since; here its ids
    are moved a day ahead) gets new ids after that task, with a warning."""
    path = tmp_path / "clock.db"
    svc = start_service("--store", f"sqlite:{path}", "--latency", "0-0")
    before = submit(svc, "before")[2]["task_id"]
    wait_state(svc, before, "succeeded")
    assert svc.stop() == 0
    day = 86_400_000 << 20  # ids are (ms << 12 | counter) << 8 | worker
    db = sqlite3.connect(path)
    db.execute("UPDATE tasks SET id = id + ?", (day,))
    db.commit()
    db.close()
    ahead = f"{int(before, 16) + day:016x}"
    svc = start_service("--store", f"sqlite:{path}", "--latency", "0-0")
    after = submit(svc, "after")[2]["task_id"]
    assert int(after, 16) > int(ahead, 16)
    status, _, data = request(svc.port, "GET", "/api/tasks")
    assert [x["task_id"] for x in json.loads(data)["tasks"]] == [after, ahead]
    m = svc.err.wait(r"event=clock_behind_stored_tasks ahead_ms=(\d+) ")[0]
    assert 86_000_000 < int(m.group(1)) <= 86_400_000
    wait_state(svc, after, "succeeded")


def retrying_then_clock_back(start_service, path, args, rid, column):
    """A task left retrying (its main service down) in the database at path, then the
    clock "set back" a day: the task's stored column moved a day ahead. Its id."""
    dead = {"MAIN_SERVICE_URL": f"http://127.0.0.1:{free_port()}"}
    svc = start_service("--store", f"sqlite:{path}", *args, env=dead)
    tid = submit(svc, rid)[2]["task_id"]
    wait_state(svc, tid, "retrying")
    assert svc.stop() == 0
    db = sqlite3.connect(path)
    db.execute(f"UPDATE tasks SET {column} = {column} + 86400000")
    db.commit()
    db.close()
    return tid


def test_retry_waits_at_most_the_cap_when_the_clock_went_back(start_service, main_service,
                                                                tmp_path):
    """A retrying task's next attempt is stored as a wall-clock time; a clock set back
    since must not hold it for that day. The next start waits at most --retry-cap."""
    path = tmp_path / "retry.db"
    args = ("--latency", "0-0", "--retry-cap", "2")
    tid = retrying_then_clock_back(start_service, path, args, "later", "next_attempt_ms")
    svc = start_service("--store", f"sqlite:{path}", *args)
    svc.err.wait(r"event=recovered tasks=1 .*retrying=1")
    main_service.out.wait(r'^result .*"later"', timeout=15)
    wait_state(svc, tid, "succeeded")


def test_retry_after_the_clock_went_back_is_not_too_old(start_service, tmp_path):
    """A task accepted before the wall clock was set back is not "too old" at its next
    failed attempt: its age is not negative, and an unsigned one wrapped around to fail
    it at once."""
    path = tmp_path / "age.db"
    args = ("--latency", "0-0", "--retry-base", "0.1", "--retry-cap", "0.2")
    tid = retrying_then_clock_back(start_service, path, args, "young", "created_ms")
    svc = start_service("--store", f"sqlite:{path}", *args,
                        env={"MAIN_SERVICE_URL": f"http://127.0.0.1:{free_port()}"})
    svc.err.wait(rf"event=callback_retry task={tid} ", count=2)
    assert "callback_failed" not in svc.err.text()


def test_database_deleted_while_running(start_service, main_service, tmp_path):
    """SQLite goes on writing to a database file deleted while open, where no restart
    would find it. The service checks before each commit, refuses new tasks (503), says
    why once, and goes on with the task in flight (its callback arrives)."""
    path = tmp_path / "gone.db"
    svc = start_service("--store", f"sqlite:{path}", "--latency", "1-1")
    assert submit(svc, "in-flight")[0] == 200
    os.unlink(path)
    status, headers, body = submit(svc, "refused")
    assert (status, headers.get("retry-after"), body) == (
        503, "1", {"detail": "The task store cannot take the request now; retry later"})
    assert submit(svc, "refused-too")[0] == 503
    svc.err.wait(rf'event=store_file_moved path="{path}" error="the database file was deleted')
    status, _, body = request(svc.port, "GET", "/health")
    health = json.loads(body)  # out of rotation until a restart
    assert (status, health["status"], health["store"]["file_moved"]) == (503, "failing", True)
    main_service.out.wait(r'"request_id": "in-flight"')
    assert svc.stop() == 0
    assert svc.err.count(r"event=store_file_moved ") == 1
    assert svc.err.count(r"event=store_closed_moved ") == 1
    assert not path.exists()


def test_task_api(start_service, main_service):
    svc = start_service("--latency", "0-0")
    status, _, a = submit(svc, "api-1")
    assert status == 200
    main_service.out.wait(r'"request_id": "api-1"')
    t = wait_state(svc, a["task_id"], "succeeded")
    assert t["request_id"] == "api-1" and t["attempts"] == 1 and t["last_error"] is None
    assert t["breakdown"] == [{"denomination_id": 1, "subtotal_rub": 3775.0},
                              {"denomination_id": 2, "subtotal_rub": 4530.0}]
    assert [h["state"] for h in t["history"]] == ["queued", "running", "delivering", "succeeded"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", t["created_at"])
    # unknown and malformed ids: 404, never a made-up state
    assert task(svc, "00000000000000ff") == (404, {"detail": "Task not found"})
    assert task(svc, "not-an-id")[0] == 404
    # the list: newest first, filtered, paginated
    ids = [submit(svc, f"list-{i}")[2]["task_id"] for i in range(5)]
    status, _, data = request(svc.port, "GET", "/api/tasks?limit=2")
    page = json.loads(data)
    assert [x["task_id"] for x in page["tasks"]] == ids[::-1][:2]
    status, _, data = request(svc.port, "GET", f"/api/tasks?limit=2&cursor={page['next_cursor']}")
    assert [x["task_id"] for x in json.loads(data)["tasks"]] == ids[::-1][2:4]
    status, _, data = request(svc.port, "GET", "/api/tasks?request_id=list-3")
    assert [x["task_id"] for x in json.loads(data)["tasks"]] == [ids[3]]
    wait_state(svc, ids[0], "succeeded")
    status, _, data = request(svc.port, "GET", "/api/tasks?state=succeeded&limit=500")
    assert all(x["state"] == "succeeded" for x in json.loads(data)["tasks"])
    for bad in ("state=bogus", "limit=0", "limit=x", "cursor=zz"):
        status, _, data = request(svc.port, "GET", f"/api/tasks?{bad}")
        assert status == 422 and json.loads(data)["detail"][0]["loc"][0] == "query", bad


def test_integer_request_id_filter(start_service, main_service):
    svc = start_service("--latency", "0-0")
    tid = submit(svc, 31337)[2]["task_id"]
    status, _, data = request(svc.port, "GET", "/api/tasks?request_id=31337")
    assert [x["task_id"] for x in json.loads(data)["tasks"]] == [tid]
    assert json.loads(data)["tasks"][0]["request_id"] == 31337


def test_string_request_id_filter(start_service, main_service):
    # escaped as JSON by the filter: quotes, a slash, non-ASCII, and 256 control bytes
    # (1,536 characters once escaped)
    svc = start_service("--latency", "0-0")
    for rid in ('a "b"/\u00fc', "\x01" * 256):
        tid = submit(svc, rid)[2]["task_id"]
        query = urllib.parse.quote(rid, safe="")
        status, _, data = request(svc.port, "GET", f"/api/tasks?request_id={query}")
        assert status == 200
        assert [x["task_id"] for x in json.loads(data)["tasks"]] == [tid], rid


def test_refused_then_500_twice_then_200(start_service, start_main):
    port = free_port()
    svc = start_service("--latency", "0-0", "--retry-base", "0.2", "--retry-cap", "0.4",
                        env={"MAIN_SERVICE_URL": f"http://127.0.0.1:{port}"})
    tid = submit(svc, "flaky")[2]["task_id"]
    svc.err.wait(r"event=callback_retry .*attempts=1 status=0")  # refused
    main = start_main("--fail", "2", "--fail-status", "500", port=port)
    main.out.wait(r'^result .*"flaky"', timeout=20)
    t = wait_state(svc, tid, "succeeded")
    refused = svc.err.count(r"event=callback_retry .*status=0 ")
    assert svc.err.count(r"event=callback_retry .*status=500 ") == 2
    assert t["attempts"] == refused + 3
    assert health(svc)["callbacks_retried"] == refused + 2
    st = stats(main)
    assert st["received"] == 1 and st["failed_on_purpose"] == 2  # delivered exactly once
    assert "retrying" in [h["state"] for h in t["history"]]


def test_retries_end_when_the_next_would_pass_the_max_age(start_service):
    # nothing listens: every attempt is refused; the task fails once its next attempt would
    # come later than --retry-max-age after it was accepted, not after it
    port = free_port()
    svc = start_service("--latency", "0-0", "--retry-base", "0.2", "--retry-cap", "0.4",
                        "--retry-max-age", "1.5", "--retry-max-attempts", "1000",
                        env={"MAIN_SERVICE_URL": f"http://127.0.0.1:{port}"})
    tid = submit(svc, "aging")[2]["task_id"]
    svc.err.wait(r'event=callback_failed task=' + tid + r' .*final="too old"', timeout=10)
    t = wait_state(svc, tid, "failed")
    assert t["attempts"] >= 3 and t["last_error"].startswith("Failed to connect")
    assert svc.err.count(r"event=callback_retry task=" + tid) == t["attempts"] - 1
    def ms(at):  # "2026-11-27T04:42:04.123Z" -> ms of the day
        return int(at[11:13]) * 3600000 + int(at[14:16]) * 60000 + round(float(at[17:23]) * 1000)
    # given up at about the max age (the write of the failure comes a little after the
    # decision), not after its 1,000 attempts (minutes at up to 0.4 s each)
    assert ms(t["updated_at"]) - ms(t["created_at"]) < 3000


def test_retry_by_hand_starts_the_age_over(start_service, start_main, tmp_path):
    """A task failed as "too old" (its main service down past --retry-max-age) and then
    retried over HTTP gets its whole age again, as it gets its attempts, across a restart
    too: before, its age still counted from its creation and its first failed attempt
    after the retry failed it again as "too old"."""
    port = free_port()
    path = tmp_path / "age.db"
    args = ("--store", f"sqlite:{path}", "--latency", "0-0", "--retry-base", "0.2",
            "--retry-cap", "0.4", "--retry-max-age", "3", "--retry-max-attempts", "1000")
    env = {"MAIN_SERVICE_URL": f"http://127.0.0.1:{port}"}
    svc = start_service(*args, env=env)
    tid = submit(svc, "aged")[2]["task_id"]
    svc.err.wait(r'event=callback_failed task=' + tid + r' .*final="too old"', timeout=10)
    wait_state(svc, tid, "failed")
    status, _, data = request(svc.port, "POST", f"/api/tasks/{tid}/retry")
    assert status == 200 and json.loads(data)["state"] == "retrying"
    # still refused: retried, not "too old" (its age starts at the retry; three attempts
    # take it past 3 s from its creation); its attempts start over at 1
    svc.err.wait(r"event=callback_retry task=" + tid + r" .* attempts=3 ", timeout=5, count=2)
    assert svc.stop() == 0
    svc = start_service(*args, env=env)
    svc.err.wait(r"event=recovered tasks=1 .*retrying=1")
    svc.err.wait(r"event=callback_retry task=" + tid + r" ", timeout=5)
    assert "callback_failed" not in svc.err.text()
    main = start_main(port=port)
    main.out.wait(r'^result .*"aged"', timeout=10)
    wait_state(svc, tid, "succeeded")


def test_4xx_fails_at_once_then_retry_delivers(start_service, start_main):
    main = start_main("--fail", "1", "--fail-status", "404")
    svc = start_service("--latency", "0-0", env={"MAIN_SERVICE_URL": main.url()})
    tid = submit(svc, "four-oh-four")[2]["task_id"]
    t = wait_state(svc, tid, "failed")
    assert t["attempts"] == 1
    assert t["last_error"] == 'HTTP 404: {"message":"Failing on purpose (--fail)"}'
    status, _, data = request(svc.port, "POST", f"/api/tasks/{tid}/retry")
    assert status == 200 and json.loads(data)["state"] == "retrying"
    main.out.wait(r'^result .*"four-oh-four"')
    t = wait_state(svc, tid, "succeeded")
    # only a failed task can be retried
    status, _, data = request(svc.port, "POST", f"/api/tasks/{tid}/retry")
    assert status == 409
    assert request(svc.port, "POST", "/api/tasks/00000000000000ff/retry")[0] == 404


def test_retry_of_a_task_whose_request_cannot_be_read_is_refused(start_service, start_main,
                                                                 tmp_path):
    """A failed task whose stored request cannot be read back (a database edited by hand)
    is answered 409 and stays failed, instead of waiting as retrying for a run that could
    never come; a readable one beside it is retried and delivered."""
    main = start_main("--fail", "2", "--fail-status", "404")
    path = tmp_path / "edited.db"
    svc = start_service("--store", f"sqlite:{path}", "--latency", "0-0",
                        env={"MAIN_SERVICE_URL": main.url()})
    bad, good = (submit(svc, rid)[2]["task_id"] for rid in ("edited", "kept"))
    for tid in (bad, good):
        wait_state(svc, tid, "failed")
    assert svc.stop() == 0
    db = sqlite3.connect(path)
    db.execute("UPDATE tasks SET payload = '[75.5,1,' WHERE request_id = '\"edited\"'")
    db.commit()
    db.close()
    svc = start_service("--store", f"sqlite:{path}", "--latency", "0-0",
                        env={"MAIN_SERVICE_URL": main.url()})
    status, _, data = request(svc.port, "POST", f"/api/tasks/{bad}/retry")
    assert (status, json.loads(data)) == (409, {
        "detail": "The stored request of this task cannot be read back; it stays failed"})
    status, t = task(svc, bad)
    assert t["state"] == "failed" and t["attempts"] == 1
    assert [h["state"] for h in t["history"]] == ["queued", "running", "delivering", "failed"]
    status, _, data = request(svc.port, "POST", f"/api/tasks/{good}/retry")
    assert status == 200 and json.loads(data)["state"] == "retrying"
    main.out.wait(r'^result .*"kept"')
    wait_state(svc, good, "succeeded")
    assert "event=retry_unreadable" not in svc.err.text()


def test_invalid_token_fails_with_reason(start_service, main_service):
    svc = start_service("--latency", "0-0", env={"SECRET_TOKEN": "wrong"})
    tid = submit(svc, "bad-token")[2]["task_id"]
    t = wait_state(svc, tid, "failed")
    assert t["attempts"] == 1 and t["last_error"] == 'HTTP 400: {"message":"Invalid token"}'


def test_main_service_down_longer_than_cap(start_service, start_main):
    port = free_port()
    svc = start_service("--latency", "0-0", "--retry-base", "0.1", "--retry-cap", "0.3",
                        env={"MAIN_SERVICE_URL": f"http://127.0.0.1:{port}"})
    tid = submit(svc, "patient")[2]["task_id"]
    svc.err.wait(r"event=callback_retry .*attempts=5 ", timeout=20)  # well past the cap
    main = start_main(port=port)
    main.out.wait(r'^result .*"patient"', timeout=20)
    assert wait_state(svc, tid, "succeeded")["attempts"] >= 6


def health(svc):
    return json.loads(request(svc.port, "GET", "/health")[2])


@pytest.mark.parametrize("failure", ["refused", "500"])
def test_failing_main_service_is_retried_one_task_at_a_time(start_service, start_main, failure):
    """While the main service fails (no answer, or 5xx), a retry that comes due is put
    off (no attempt counted, nothing written or logged) and one at a time is made, at
    most one per worker per window (the first retry's ceiling, 1 s here); its answer
    decides for the rest. Before, every task of a backlog retried on its own: 40 tasks
    retrying every 0-1 s made ~80 attempts a second. Once the main service answers,
    every task is delivered."""
    port = free_port()
    svc = start_service("--latency", "0-0", "--retry-base", "1", "--retry-cap", "1",
                        "--workers", "2", env={"MAIN_SERVICE_URL": f"http://127.0.0.1:{port}"})
    failing = start_main("--fail", "1000000", port=port) if failure == "500" else None
    n = 40
    ids = [submit(svc, f"down-{i}")[2]["task_id"] for i in range(n)]
    status = "0" if failure == "refused" else "500"
    svc.err.wait(rf"event=main_service_failing task=\S+ status={status} reason=\".+\": "
                 r"retries are made one at a time until one gets a final answer$")
    t0 = time.monotonic()
    deadline = t0 + 20
    while health(svc)["callbacks_put_off"] < 3 * n:  # each task put off three times
        assert time.monotonic() < deadline, health(svc)
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    retries = svc.err.count(r"event=callback_retry ")
    # the first attempts (n, each made), then a retry per worker per second at most
    assert retries <= n + 2 * (elapsed + 2), (retries, elapsed)
    assert health(svc)["callbacks_failed"] == 0
    if failing:
        failing.stop()
    main = start_main(port=port)
    main.out.wait(r"^result ", count=n, timeout=20)
    assert stats(main)["distinct"] == n
    svc.err.wait(r"event=main_service_back task=\S+ status=200")
    for tid in ids:
        t = wait_state(svc, tid, "succeeded")
        assert t["attempts"] <= 2 + 2 * (time.monotonic() - t0), t


def test_restart_during_an_outage_sends_one_retry_first(start_service, start_main, tmp_path):
    """At a start the main service's state is not known: the first resumed retry that is
    due is made, and the others wait a short while for its answer. Before, a restart
    during an outage sent every resumed retry past its time at once (30 refused attempts
    here, before the first failure came back); a healthy restart still delivers them."""
    port = free_port()
    store = f"sqlite:{tmp_path}/outage.db"
    args = ("--latency", "0-0", "--retry-base", "1", "--retry-cap", "1", "--workers", "1",
            "--store", store)
    env = {"MAIN_SERVICE_URL": f"http://127.0.0.1:{port}"}
    svc = start_service(*args, env=env)
    n = 30
    for i in range(n):
        submit(svc, f"outage-{i}")
    svc.err.wait(r"event=callback_retry .*attempts=1 ", count=n)
    assert svc.stop() == 0
    time.sleep(1.5)  # past every stored retry time (at most --retry-cap, 1 s): all due at once
    again = start_service(*args, env=env)
    again.err.wait(r"event=recovered tasks=30 .*retrying=30")
    again.err.wait(r"event=main_service_failing task=\S+ status=0 ")
    deadline = time.monotonic() + 20
    while health(again)["callbacks_put_off"] < n - 1:
        assert time.monotonic() < deadline, health(again)
        time.sleep(0.05)
    assert again.err.count(r"event=callback_retry ") <= 3, again.err.text()[-3000:]
    assert again.stop() == 0
    main = start_main(port=port)
    healthy = start_service(*args, env=env)
    main.out.wait(r"^result ", count=n, timeout=20)
    assert stats(main)["distinct"] == n
    assert healthy.err.count(r"event=main_service_back") == 0  # it was never failing


def test_retry_after_holds_every_retry_of_the_worker(start_service, start_main):
    """A Retry-After holds every retry of the worker that got it, not only its own task's:
    tasks that retried against a closed port (one at a time, every 50 ms at most) wait the
    2 s it asks once the main service is up and says 503 Retry-After: 2."""
    port = free_port()
    svc = start_service("--latency", "0-0", "--retry-base", "0.05", "--retry-cap", "5",
                        "--workers", "1", env={"MAIN_SERVICE_URL": f"http://127.0.0.1:{port}"})
    n = 10
    for i in range(n):
        submit(svc, f"held-{i}")
    svc.err.wait(r"event=main_service_failing task=\S+ status=0 ")
    busy = start_main("--fail", "1000000", "--fail-status", "503", "--fail-retry-after", "2",
                      port=port)
    first = svc.err.wait(r"event=callback_retry .* status=503 .*retry_in_ms=2000$", timeout=10)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:  # within the 2 s asked for: no other attempt
        assert stats(busy)["failed_on_purpose"] == 1, stats(busy)
        time.sleep(0.05)
    assert len(first) == 1 and svc.err.count(r"status=503") == 1
    busy.stop()
    main = start_main(port=port)
    main.out.wait(r"^result ", count=n, timeout=20)


def test_kill9_under_load_loses_nothing(start_service, main_service, tmp_path):
    store = f"sqlite:{tmp_path}/kill.db"
    svc = start_service("--latency", "1-3", "--store", store)
    n = 1200

    def one(i):
        return submit(svc, f"k9-{i}")[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        acked = [i for i, st in zip(range(n), pool.map(one, range(n))) if st == 200]
    assert len(acked) == n
    svc.p.send_signal(signal.SIGKILL)
    svc.p.wait(10)
    before = stats(main_service)["distinct"]
    assert before < n  # most were still in flight
    again = start_service("--latency", "0-0", "--store", store)
    m = again.err.wait(r"event=recovered tasks=(\d+)")[0]
    assert int(m.group(1)) >= n - before
    main_service.out.wait(r'^result ', count=n, timeout=60)
    st = stats(main_service)
    assert st["distinct"] == n
    print(f"kill -9: {n} acknowledged, {before} delivered before the kill, "
          f"{st['duplicates']} delivered twice")


def test_cancel_before_delivery(start_service, main_service):
    svc = start_service("--latency", "1.5-1.5")
    tid = submit(svc, "cancel-me")[2]["task_id"]
    status, _, data = request(svc.port, "DELETE", f"/api/tasks/{tid}")
    assert status == 200 and json.loads(data)["state"] == "cancelled"
    svc.err.wait(rf"event=task_cancelled task={tid}")  # the runner dropped it when due
    assert stats(main_service)["received"] == 0
    status, _, data = request(svc.port, "DELETE", f"/api/tasks/{tid}")
    assert status == 409 and json.loads(data) == {"detail": "Task is already cancelled"}
    assert request(svc.port, "DELETE", "/api/tasks/00000000000000ff")[0] == 404
    # a cancelled task's request_id may be submitted again
    assert submit(svc, "cancel-me")[2]["task_id"] != tid


def test_idempotent_submission(start_service, main_service):
    svc = start_service("--latency", "0.5-0.5")
    first = submit(svc, "idem")[2]["task_id"]
    assert submit(svc, "idem")[2]["task_id"] == first
    status, _, body = submit(svc, "idem", exchange_rate=80)
    assert status == 409 and first in body["detail"]
    main_service.out.wait(r'^result .*"idem"')
    wait_state(svc, first, "succeeded")
    status, _, body = submit(svc, "idem")
    assert status == 200 and body["task_id"] != first  # ended: a new task
    main_service.out.wait(r'^result .*"idem"', count=2)


def test_max_active_tasks(start_service):
    svc = start_service("--latency", "30-30", "--max-active-tasks", "2")
    assert submit(svc, "a1")[0] == 200
    assert submit(svc, "a2")[0] == 200
    status, headers, body = submit(svc, "a3")
    assert status == 503 and headers["retry-after"] == "1"
    assert body == {"detail": "Too many tasks in progress; retry later"}


def test_sigterm_then_restart_resumes(start_service, main_service, tmp_path):
    store = f"sqlite:{tmp_path}/term.db"
    svc = start_service("--latency", "600-600", "--store", store)
    ids = [submit(svc, f"term-{i}")[2]["task_id"] for i in range(20)]
    t0 = time.monotonic()
    assert svc.stop() == 0
    assert time.monotonic() - t0 < 3  # does not wait out the latencies
    svc.err.wait(r"event=runner_stopped tasks_left_for_next_start=\d+")
    again = start_service("--latency", "0-0", "--store", store)
    again.err.wait(r"event=recovered tasks=20 ")
    main_service.out.wait(r'^result .*"term-', count=20, timeout=20)
    assert wait_state(again, ids[0], "succeeded")


def stuck_client(svc):
    """A client that asks for ~10 MB of answers (600 lists of 50 tasks) and reads none: it
    keeps a stop waiting for them to be written. Returned once the service has stopped
    reading its requests (/health's requests_total still)."""
    def health():
        return json.loads(request(svc.port, "GET", "/health")[2])
    before = health()["requests_total"]
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", svc.port))
    stuck.sendall(b"GET /api/tasks?limit=50 HTTP/1.1\r\nHost: x\r\n\r\n" * 600)
    seen, deadline = [], time.monotonic() + 10
    while len(seen) < 3 or len(set(seen[-3:])) > 1:
        assert time.monotonic() < deadline
        seen.append(health()["requests_total"] - len(seen))
        time.sleep(0.1)
    assert before + 32 < seen[-1] < before + 600
    return stuck


def restart_delivers(start_service, main_service, store, prefix, ids):
    """A new start on store recovers the tasks ids (request_ids prefix-...) and delivers them."""
    again = start_service("--latency", "0-0", "--store", store)
    again.err.wait(rf"event=recovered tasks={len(ids)} ")
    main_service.out.wait(rf'^result .*"{prefix}-', count=len(ids), timeout=20)
    assert all(wait_state(again, i, "succeeded") for i in ids)


def test_grace_over_closes_what_is_left_and_stops_cleanly(start_service, main_service, tmp_path):
    store = f"sqlite:{tmp_path}/grace.db"
    svc = start_service("--latency", "600-600", "--shutdown-grace", "1", "--store", store)
    ids = [submit(svc, f"grace-{i}")[2]["task_id"] for i in range(20)]
    stuck = stuck_client(svc)
    t0 = time.monotonic()
    svc.p.send_signal(signal.SIGTERM)
    svc.err.wait(r"event=shutdown_grace_over worker=\d+: closing the connections left", timeout=10)
    assert svc.p.wait(10) == 0  # a clean stop, not a forced one
    assert time.monotonic() - t0 < 8
    svc.err.wait(r"event=stopped")
    assert "event=forced_exit" not in svc.err.text()
    stuck.close()
    # the tasks still computing were left in the store: a new start sends them
    restart_delivers(start_service, main_service, store, "grace", ids)


class _HeldMain:
    """A main service that answers each callback 200 after `hold` seconds (it took the
    callback at once: a callback it is sent again is a duplicate for it)."""

    def __init__(self, hold):
        self.hold, self.got, self.arrived = hold, [], threading.Semaphore(0)
        main = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_PUT(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                main.got.append(json.loads(body)["request_id"])
                main.arrived.release()
                time.sleep(main.hold)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the service cut it off

            def log_message(self, *args):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"

    def wait(self, n):
        for _ in range(n):
            assert self.arrived.acquire(timeout=10), f"{len(self.got)} callbacks arrived"

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_stop_waits_for_the_answers_of_callbacks_on_the_wire(start_service, tmp_path):
    """A stop lets the callbacks already sent get their answers and records them, so a
    restart does not send them again (before, they were cut off: each a duplicate for
    the main service at the next start)."""
    main = _HeldMain(1.0)
    try:
        store = f"sqlite:{tmp_path}/wire.db"
        svc = start_service("--latency", "0-0", "--store", store,
                            env={"MAIN_SERVICE_URL": main.url})
        ids = [submit(svc, f"wire-{i}")[2]["task_id"] for i in range(3)]
        main.wait(3)
        t0 = time.monotonic()
        assert svc.stop() == 0
        assert 0.5 < time.monotonic() - t0 < 8  # waited for the answers, not for the grace
        assert sum(int(n) for n in re.findall(r"callbacks_finished_while_stopping=(\d+)",
                                              svc.err.text())) == 3
        again = start_service("--latency", "0-0", "--store", store,
                              env={"MAIN_SERVICE_URL": main.url})
        again.err.wait(r"event=recovered tasks=0 ")  # nothing to send again
        for i in ids:
            assert task(again, i)[1]["state"] == "succeeded"
        assert sorted(main.got) == ["wire-0", "wire-1", "wire-2"]
    finally:
        main.close()


def test_stop_cuts_off_callbacks_unanswered_at_the_grace(start_service, tmp_path):
    """A callback still unanswered when --shutdown-grace runs out is cut off and its
    task sent again at the next start."""
    main = _HeldMain(30.0)
    try:
        store = f"sqlite:{tmp_path}/cut.db"
        svc = start_service("--latency", "0-0", "--store", store, "--shutdown-grace", "1",
                            env={"MAIN_SERVICE_URL": main.url})
        tid = submit(svc, "cut")[2]["task_id"]
        main.wait(1)
        t0 = time.monotonic()
        assert svc.stop() == 0
        assert time.monotonic() - t0 < 5
        svc.err.wait(r"event=shutdown_callbacks_cut_off count=1:")
        assert "callbacks_finished_while_stopping=0" in svc.err.text()  # none of them
        main.hold = 0
        again = start_service("--latency", "0-0", "--store", store,
                              env={"MAIN_SERVICE_URL": main.url})
        again.err.wait(r"event=recovered tasks=1 ")
        assert wait_state(again, tid, "succeeded")
        assert main.got == ["cut", "cut"]
    finally:
        main.close()


def ignored_then_term(argv, sig):
    """Started with sig ignored (as nohup ignores SIGHUP, and a shell SIGINT for a
    job it starts in the background), sig stays ignored: the SIGTERM after it is
    the one that stops."""
    p = Proc(argv)
    try:
        p.p.send_signal(sig)
        p.p.send_signal(signal.SIGTERM)
        assert p.p.wait(10) == 0
        p.err.wait(r"event=stopped")
        assert p.err.count(r"event=stopping signal=15$") == 1
        assert p.err.count(r"event=stopping") == 1
    finally:
        if p.p.poll() is None:
            p.p.kill()
            p.p.wait()


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT])
def test_hangup_and_interrupt_stop_cleanly_unless_ignored(start_service, main_service, sig):
    """SIGHUP (the terminal closed) and SIGINT (Ctrl-C) stop the service as SIGTERM
    does, a clean stop (SIGHUP ended the process at once before). Ignored at the
    start, each stays ignored (SIGINT stopped the service before even so)."""
    svc = start_service("--latency", "0-0")
    assert submit(svc, "sig")[0] == 200
    main_service.out.wait(r'^result .*"sig"')
    svc.p.send_signal(sig)
    svc.err.wait(rf"event=stopping signal={int(sig)}$")
    assert svc.p.wait(10) == 0
    svc.err.wait(r"event=stopped")
    if sig == signal.SIGHUP:
        ignored_then_term(["nohup", EXCHANGED, "--port", "0", "--store", "memory"], sig)
    else:
        ignored_then_term(["sh", "-c", f"trap '' INT; exec {EXCHANGED} --port 0 --store memory"],
                          sig)


def test_second_signal_forces_exit_and_keeps_accepted_tasks(start_service, main_service,
                                                             tmp_path):
    store = f"sqlite:{tmp_path}/forced.db"
    # a forced exit leaves threads behind by design: a worker that has finished is not
    # joined yet (ThreadSanitizer would call it a thread leak)
    tsan = (os.environ.get("TSAN_OPTIONS", "") + " report_thread_leaks=0").strip()
    svc = start_service("--latency", "600-600", "--store", store, env={"TSAN_OPTIONS": tsan})
    ids = [submit(svc, f"forced-{i}")[2]["task_id"] for i in range(50)]
    stuck = stuck_client(svc)
    svc.p.send_signal(signal.SIGTERM)
    svc.err.wait(r"event=stopping signal=15")
    svc.err.wait(r"event=shutdown_waiting worker=\d+ server_drained=0", timeout=5)
    assert svc.p.poll() is None
    t0 = time.monotonic()
    svc.p.send_signal(signal.SIGTERM)
    assert svc.p.wait(5) == 1
    assert time.monotonic() - t0 < 2  # does not wait out the grace
    svc.err.wait(r"event=forced_exit signal=15")
    assert "event=stopped" not in svc.err.text()
    stuck.close()
    # the tasks acknowledged before the forced exit were committed: a new start sends them
    restart_delivers(start_service, main_service, store, "forced", ids)


def test_unusable_database_is_refused_at_start(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    for spec in (f"sqlite:{tmp_path}/missing-dir/x.db", "sqlite:/proc/x.db", "redis://x"):
        r = subprocess.run([EXCHANGED, "--port", "0", "--store", spec], capture_output=True,
                           text=True, timeout=10)
        assert r.returncode != 0, spec
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("exchanged: "), r.stderr
    if os.geteuid() != 0:  # root writes anywhere: the mode test means nothing then
        r = subprocess.run([EXCHANGED, "--port", "0", "--store", f"sqlite:{ro}/x.db"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode != 0


def test_database_path_with_spaces_and_quotes(start_service, tmp_path):
    """A path with a space and a quote works, and the start line quotes it so that the
    line still splits into key=value pairs."""
    path = tmp_path / 'my "tasks" here.db'
    svc = start_service("--store", f"sqlite:{path}", "--latency", "600-600")
    quoted = json.dumps(f"sqlite:{path}")
    assert f"store={quoted} store_sync=full" in svc.err.text()
    assert submit(svc, "spaced")[0] == 200
    assert os.path.exists(path)


def test_another_programs_database_refused(tmp_path):
    """--store pointed at another program's SQLite file (a typo) is refused, saying
    why, and the file is left as it was: no tables of ours added, no lock kept."""
    db = tmp_path / "shop.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
    con.commit()
    con.close()
    r = subprocess.run([EXCHANGED, "--port", "0", "--store", f"sqlite:{db}"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert r.stderr == (f"exchanged: cannot use the database {db}: it holds another program's"
                        ' schema (table "orders", and no exchanged version): give exchanged a'
                        " database file of its own\n")
    con = sqlite3.connect(db)
    assert [n for (n,) in con.execute("SELECT name FROM sqlite_schema")] == ["orders"]
    con.close()


def refused_store(path, as_nobody=False):
    """Starts exchanged on sqlite:path (as the user nobody if asked); its refusal."""
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if as_nobody else []
    r = subprocess.run([*drop, EXCHANGED, "--port", "0", "--store", f"sqlite:{path}"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1, r.stderr
    return r.stderr


def test_unusable_database_path_says_why(tmp_path):
    """Where SQLite says only "unable to open database file" (or "disk I/O error"), the
    refusal says why: a missing directory, a directory, a path through a file, a FIFO; for a
    user who may not write there (as nobody, when nobody can run the binary here), the
    permission."""
    assert refused_store(tmp_path / "no" / "x.db") == (
        f"exchanged: cannot use the database {tmp_path}/no/x.db: unable to open database file"
        f" (the directory {tmp_path}/no: No such file or directory)\n")
    assert refused_store(tmp_path) == (
        f"exchanged: cannot use the database {tmp_path}: unable to open database file"
        " (it is a directory)\n")
    (tmp_path / "file").write_text("")
    assert refused_store(tmp_path / "file" / "x.db") == (
        f"exchanged: cannot use the database {tmp_path}/file/x.db: unable to open database"
        " file (Not a directory)\n")
    os.mkfifo(tmp_path / "fifo")
    assert refused_store(tmp_path / "fifo") == (
        f"exchanged: cannot use the database {tmp_path}/fifo: disk I/O error (it is not a"
        " regular file)\n")
    if subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                       EXCHANGED, "--version"], capture_output=True).returncode != 0:
        pytest.skip("the user nobody cannot run the binary here")
    top = tempfile.mkdtemp(prefix="exchanged-ro-")  # pytest's own is root's alone (0700)
    try:
        os.chmod(top, 0o755)
        ro = f"{top}/ro"
        os.mkdir(ro, 0o555)
        assert refused_store(f"{ro}/x.db", as_nobody=True) == (
            f"exchanged: cannot use the database {ro}/x.db: unable to open database file"
            f" (cannot create it in {ro}: Permission denied)\n")
        db = f"{top}/mine.db"  # root's: nobody may read it, not write it
        sqlite3.connect(db).close()
        os.chmod(db, 0o644)
        assert refused_store(db, as_nobody=True) == (
            f"exchanged: cannot use the database {db}: attempt to write a readonly database"
            " (Permission denied)\n")
        # nobody's own database in a directory where it may not create the -wal file,
        # then with a -wal file of root's there
        walro = f"{top}/walro"
        os.mkdir(walro)
        db = f"{walro}/t.db"
        sqlite3.connect(db).close()
        os.chown(db, 65534, 65534)
        os.chmod(walro, 0o555)
        assert refused_store(db, as_nobody=True) == (
            f"exchanged: cannot use the database {db}: attempt to write a readonly database"
            f" (cannot create its -wal file in {walro}: Permission denied)\n")
        os.chmod(walro, 0o755)
        open(f"{db}-wal", "w").close()
        os.chmod(walro, 0o555)
        assert refused_store(db, as_nobody=True) == (
            f"exchanged: cannot use the database {db}: attempt to write a readonly database"
            f" ({db}-wal: Permission denied)\n")
    finally:
        shutil.rmtree(top)


def test_a_database_serves_one_process(tmp_path, start_service, main_service):
    """A second exchanged on a database another one has open is refused at once, saying
    why, and the first goes on; so is a reader of another program while it runs. Once the
    first stops, the file opens again, with every task it acknowledged."""
    db = tmp_path / "one.db"
    for sync in ("full", "normal", "off"):
        svc = start_service("--store", f"sqlite:{db}", "--store-sync", sync, "--latency", "0-0")
        status, _, first = submit(svc, f"one-{sync}")
        assert status == 200
        t0 = time.monotonic()
        r = subprocess.run([EXCHANGED, "--port", "0", "--store", f"sqlite:{db}"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode != 0
        assert r.stderr == (f"exchanged: cannot use the database {db}: another process has it"
                            " open (one exchanged per database; stop the other, or give this"
                            " one its own file)\n")
        assert time.monotonic() - t0 < 3  # no waiting for a lock that stays
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            sqlite3.connect(db, timeout=0).execute("SELECT count(*) FROM tasks").fetchone()
        # the first goes on taking and delivering tasks
        status, _, second = submit(svc, f"two-{sync}")
        assert status == 200
        for rid in (f"one-{sync}", f"two-{sync}"):
            main_service.out.wait(rf'^result .*"{rid}"')
        assert svc.stop() == 0
    ro = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rids = sorted(r[0] for r in ro.execute("SELECT request_id FROM tasks"))
    ro.close()
    assert rids == sorted(f'"{p}-{s}"' for p in ("one", "two") for s in ("full", "normal", "off"))


def test_read_only_database_file_is_refused(tmp_path, start_service):
    db = tmp_path / "tasks.db"
    svc = start_service("--store", f"sqlite:{db}")
    svc.stop()
    os.chmod(db, 0o444)
    for f in tmp_path.glob("tasks.db-*"):
        f.unlink()
    if os.geteuid() == 0:
        pytest.skip("root ignores file modes")
    r = subprocess.run([EXCHANGED, "--port", "0", "--store", f"sqlite:{db}"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "readonly" in r.stderr


@pytest.mark.parametrize("damaged", ["tasks_state_id", "tasks"])
def test_damaged_database_stops_the_start(start_service, tmp_path, damaged):
    """A database whose tasks cannot all be read back (a page overwritten: of the index the
    start counts them with, or of the table it reads them from) stops the start with the
    reason, instead of accepting new tasks into it while the unreadable ones wait for ever.
    Before, the count's failure was ignored (0 active) and the read's only logged."""
    path = tmp_path / "damaged.db"
    svc = start_service("--store", f"sqlite:{path}", "--latency", "600-600")
    for i in range(50):
        assert submit(svc, f"d{i}")[0] == 200
    assert svc.stop() == 0
    db = sqlite3.connect(path)
    page = db.execute("PRAGMA page_size").fetchone()[0]
    root = db.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (damaged,)).fetchone()[0]
    db.close()
    assert root > 1
    fd = os.open(path, os.O_WRONLY)
    os.pwrite(fd, b"\xaa" * page, (root - 1) * page)
    os.close(fd)
    r = subprocess.run([EXCHANGED, "--port", "0", "--store", f"sqlite:{path}"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1, r.stderr
    assert f"cannot use the database {path}: " in r.stderr, r.stderr
    assert "malformed" in r.stderr and "the file may be damaged" in r.stderr, r.stderr
    assert "event=listening" not in r.stderr


def mounted_tmpfs(tmp_path, size):
    """A tmpfs of size at tmp_path/size (a generator for a fixture: unmounted after)."""
    mnt = tmp_path / size
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (the store's fault seam is unit-tested)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


@pytest.fixture
def tiny_fs(tmp_path):
    yield from mounted_tmpfs(tmp_path, "1m")


@pytest.fixture
def small_fs(tmp_path):
    yield from mounted_tmpfs(tmp_path, "4m")


def test_full_disk_answers_503_and_recovers(tiny_fs, start_service, main_service):
    svc = start_service("--latency", "0-0", "--store", f"sqlite:{tiny_fs}/tasks.db")
    assert submit(svc, "before-full")[0] == 200
    filler = tiny_fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # take every byte left
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    os.close(fd)
    began = time.monotonic()
    statuses = [submit(svc, f"full-{i}")[0] for i in range(30)]
    assert 503 in statuses
    refused = [i for i, s in enumerate(statuses) if s == 503]
    first = refused[0]
    status, headers, body = submit(svc, f"full-{first}")
    assert status == 503 and headers["retry-after"] == "1"
    status, _, body = request(svc.port, "GET", "/health")  # a health check sees it too
    store = json.loads(body)["store"]
    assert (status, json.loads(body)["status"]) == (503, "failing")
    assert store["failing_commits"] >= len(refused) + 1
    assert store["commit_failures"] == store["failing_commits"]
    full_for = time.monotonic() - began
    filler.unlink()  # space returns: acceptance resumes without a restart
    status, _, body = submit(svc, "after-full")
    assert status == 200
    # the failures said at most once a second, with their count, and the end of them
    n = int(svc.err.wait(r"event=store_commit_recovered failed_commits=(\d+)")[0].group(1))
    assert n >= len(refused) + 1
    logged = svc.err.count(r"event=store_commit_failed ")
    assert 1 <= logged <= 1 + int(full_for), (logged, full_for)
    status, _, body = request(svc.port, "GET", "/health")
    store = json.loads(body)["store"]
    assert (status, json.loads(body)["status"], store["failing_commits"]) == (200, "ok", 0)
    assert store["commit_failures"] == n
    main_service.out.wait(r'^result .*"after-full"')
    accepted = [f"full-{i}" for i, s in enumerate(statuses) if s == 200]
    for rid in accepted + ["before-full"]:  # nothing acknowledged was lost
        main_service.out.wait(rf'^result .*"{rid}"')
    # and the next start finds exactly those: the refused ones were not stored
    assert svc.stop() == 0
    again = start_service("--latency", "0-0", "--store", f"sqlite:{tiny_fs}/tasks.db")
    status, _, data = request(again.port, "GET", "/api/tasks?limit=500")
    assert status == 200
    found = sorted(t["request_id"] for t in json.loads(data)["tasks"])
    assert found == sorted(accepted + ["before-full", "after-full"])


def test_outcomes_of_a_full_disk_written_once_space_returns(small_fs, start_service,
                                                            main_service):
    """Tasks whose callbacks are delivered while the disk is full: their outcomes cannot be
    written then, and are written once space returns, without a restart. Before, they were
    dropped: the tasks said running after their callbacks, and the next start ran them again
    (each callback sent twice). The disk fills with the submissions themselves (1 MiB left):
    the WAL cannot be rewound then (its checkpoint would grow the database), so the outcomes'
    commits need space too. (Filled after the submissions, the outcomes may fit in WAL frames
    already written.)"""
    svc = start_service("--latency", "2-2", "--store", f"sqlite:{small_fs}/tasks.db")
    filler = small_fs / "filler"
    st = os.statvfs(small_fs)
    with open(filler, "wb") as f:  # all but 1 MiB
        f.write(b"\0" * (st.f_bavail * st.f_frsize - (1 << 20)))
    accepted = []
    for i in range(2000):  # until refused: the rest of the disk is the store's
        status = submit(svc, f"late-{i}")[0]
        if status == 503:
            break
        assert status == 200
        accepted.append(i)
    assert status == 503 and len(accepted) >= 10, len(accepted)
    n = len(accepted)
    main_service.out.wait(r"^result ", count=n, timeout=60)  # delivered, the disk full
    deadline = time.monotonic() + 10
    while True:  # their outcomes wait to be written (tried again meanwhile)
        store = json.loads(request(svc.port, "GET", "/health")[2])["store"]
        if store["unwritten_updates"] >= n and store["queue"] == 0:
            break
        assert time.monotonic() < deadline, store
        time.sleep(0.05)
    _, _, data = request(svc.port, "GET", "/api/tasks?limit=500")
    assert all(t["state"] == "running" for t in json.loads(data)["tasks"])  # as stored
    filler.unlink()
    svc.err.wait(r"event=store_updates_written_again updates=\d+ waiting=0", timeout=15)
    store = json.loads(request(svc.port, "GET", "/health")[2])["store"]
    assert (store["unwritten_updates"], store["active_tasks"]) == (0, 0), store
    tasks = []
    cursor = ""
    while True:
        _, _, data = request(svc.port, "GET", f"/api/tasks?limit=500{cursor}")
        page = json.loads(data)
        tasks += page["tasks"]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert len(tasks) == n and all(t["state"] == "succeeded" for t in tasks)
    # the next start has nothing to run again: each callback was sent once
    assert svc.stop() == 0
    again = start_service("--latency", "0-0", "--store", f"sqlite:{small_fs}/tasks.db")
    again.err.wait(r"event=recovered tasks=0 ")
    stats = json.loads(request(main_service.port, "GET", "/api/stats")[2])
    assert (stats["distinct"], stats["duplicates"]) == (n, 0)


def test_older_database_is_upgraded_and_its_tasks_go_on(start_service, main_service, tmp_path):
    """A database an older version wrote (schema 1, the whole JSON as payload, the full
    history): the start migrates it, recovers and delivers its tasks, and a repeat of an
    active request is still recognised as the same request."""
    path = tmp_path / "old.db"
    with open(os.path.join(ROOT, "tests", "data", "schema_v1.sql")) as f:
        fixture = f.read()
    now = int(time.time() * 1000)
    db = sqlite3.connect(path)
    db.executescript(fixture)  # "old-1" delivering, 7 succeeded; user_version 1
    db.execute("INSERT INTO tasks VALUES (1940000000000000003, '\"up-1\"', ?, 1, 0, ?, ?, NULL,"
               " NULL, NULL, ?)",
               ('{"request_id":"up-1","exchange_rate":75.5,"bills":[{"denomination_id":1,'
                '"denomination":10.0,"count":5},{"denomination_id":2,"denomination":20.0,'
                '"count":3}]}', now, now, f"queued@{now} running@{now}"))
    db.commit()
    db.close()
    svc = start_service("--store", f"sqlite:{path}", "--latency", "600-600")
    svc.err.wait(r"event=store_migrated from=4 to=5")
    svc.err.wait(r"event=recovered tasks=2 queued=0 running=1 delivering=1 retrying=0")
    # the delivering task is delivered, with the breakdown it had
    main_service.out.wait(r'"request_id": "old-1"')
    t = wait_state(svc, "1aec43b8b0420001", "succeeded")
    assert t["breakdown"] == [{"denomination_id": 1, "subtotal_rub": 100.0}]
    assert [h["state"] for h in t["history"]] == ["queued", "running", "delivering", "succeeded"]
    # the running one is computing again; the same request is the same task, another is not
    status, _, a = submit(svc, "up-1")
    assert (status, a) == (200, {"status": "ok", "task_id": "1aec43b8b0420003"})
    status, _, a = submit(svc, "up-1", exchange_rate=75.6)
    assert status == 409 and "1aec43b8b0420003" in a["detail"]
    status, t = task(svc, "1aec43b8b0420003")
    assert t["state"] == "running"
    assert [h["state"] for h in t["history"]] == ["queued", "running"]
    # the rows now hold the stored form and the history after its first two entries (read
    # once the service stops: while it runs, the file is its alone)
    assert svc.stop() == 0
    ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = {r[0]: r[1:] for r in ro.execute("SELECT request_id, payload, history FROM tasks")}
    ro.close()
    assert rows['"up-1"'] == ("[75.5,1,10.0,5,2,20.0,3]", "")
    assert rows['"old-1"'][0] == "[2.0,1,10.0,5]"
    assert re.fullmatch(r" delivering@1760000000000 succeeded@\d+", rows['"old-1"'][1])
