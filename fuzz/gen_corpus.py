#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/corpus/<target>/): the requests, bodies and
values the tests send, so fuzzing starts from what the service really sees.
Run once from the repository root; the output is committed."""
import json
import os

SEED = {"request_id": "async_test", "exchange_rate": 75.5,
        "bills": [{"denomination_id": 1, "denomination": 10.0, "count": 5},
                  {"denomination_id": 2, "denomination": 20.0, "count": 3}]}
BODY = json.dumps(SEED).encode()


def write(target, name, data):
    d = os.path.join("fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# payload: the seed's body and the kinds of bad ones the unit table holds
payloads = {
    "seed": BODY,
    "int_id": json.dumps(dict(SEED, request_id=42)).encode(),
    "str_bill_id": json.dumps(dict(SEED, bills=[{"denomination_id": "r\u00fcb", "denomination": 0.1,
                                                  "count": 3.0}])).encode(),
    "falsy": b'{"request_id": "", "exchange_rate": 0, "bills": []}',
    "types": b'{"request_id": true, "exchange_rate": "1", "bills": [1, {"count": -1}]}',
    "nested": b"[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]",
    "nan": b'{"a": NaN}',
    "dup": b'{"a": 1, "a": 2}',
    "utf8": b'{"a": "\xff"}',
    "big": b'{"request_id": "a", "exchange_rate": 1e308, "bills": [{"denomination_id": 1, "denomination": 1e308, "count": 10}]}',
    "empty": b"",
}
for name, data in payloads.items():
    write("payload", name, data)

# http: two seed bytes (the read-split seed), then the bytes on the wire
def req(method, path, body=b"", headers=b""):
    h = method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n" + headers
    if body:
        h += b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
    return h + b"\r\n" + body

chunked = (b"POST /json HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"%x\r\n%s\r\n" % (len(BODY[:20]), BODY[:20]) + b"%x\r\n%s\r\n" % (len(BODY[20:]), BODY[20:])
           + b"0\r\n\r\n")
streams = {
    "get": req(b"GET", b"/"),
    "post": req(b"POST", b"/json", BODY),
    "pipelined": req(b"GET", b"/later/1") + req(b"GET", b"/") + req(b"POST", b"/json", BODY) + req(b"GET", b"/nope"),
    "chunked": chunked,
    "expect": req(b"POST", b"/json", BODY, b"Expect: 100-continue\r\n"),
    "http10": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    "auth": req(b"GET", b"/api/tasks/1/retry", headers=b"Authorization: Bearer fuzz-token\r\n"),
    "smuggle": b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "version": b"GET / HTTP/2.0\r\n\r\n",
    "long_url": b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\n\r\n",
    "form": req(b"POST", b"/json", b"a=1", b"Content-Type: application/x-www-form-urlencoded\r\n"),
}
for i, (name, data) in enumerate(streams.items()):
    write("http", name, bytes([i * 37 % 256, i]) + data)

# opts: selector byte + value
values = [(0, b"2"), (0, b"0.5"), (0, b"500ms"), (1, b"1-3"), (1, b"0-0"), (2, b"1m"), (3, b"8000"),
          (4, b"http://localhost:3001/"), (4, b"https://a.example/x"),
          (5, b"--num\n8\n--range=1-2\n--flag\n--size\n64k\n--secs=3s\n--name\nx")]
for i, (sel, v) in enumerate(values):
    write("opts", f"v{i}", bytes([sel]) + v)

# client: one seed byte (the write-split seed), then what a main service answers
answers = {
    "ok": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}",
    "ok_close": b"HTTP/1.0 200 OK\r\n\r\n{\"ok\": true}",
    "chunked": b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    "retry_after": b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\nContent-Length: 4\r\n\r\nbusy",
    "retry_date": b"HTTP/1.1 429 Too Many\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
                  b"Content-Length: 0\r\n\r\n",
    "continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    "redirect": b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\nContent-Length: 0\r\n\r\n",
    "big": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 1200\r\n\r\n" + b"x" * 1200,
    "two": b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "garbage": b"HTP/1.1 200\r\n\r\n",
    "empty": b"",
}
for i, (name, data) in enumerate(answers.items()):
    write("client", name, bytes([i * 53 % 256]) + data)
