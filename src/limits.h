/*
 * limits: every cap the service enforces, in one place (CONVENTIONS 6).
 * Those marked "default" can be changed by a flag (see config.h); the rest
 * are fixed. Each has a one-line reason.
 */
#ifndef EXCHANGED_LIMITS_H
#define EXCHANGED_LIMITS_H

/* Request line + headers; past it 431. Real clients send < 2 KiB. */
#define LIMIT_HEADER_BYTES (16 * 1024)
/* Number of header lines; past it 431. */
#define LIMIT_HEADER_COUNT 100
/* URL length; past it 414. Our routes are short. */
#define LIMIT_URL_BYTES (8 * 1024)
/* Longest header value we keep (Content-Type, Expect, ...); others are only counted. */
#define LIMIT_HEADER_VALUE_KEEP 256
/* default: request body; past it 413. 10,000 bills fit in ~600 KB. */
#define LIMIT_BODY_BYTES_DEFAULT (1024 * 1024)
/* Bills per request; past it 422. Bounds per-task memory and heap entries. */
#define LIMIT_BILLS 10000
/* JSON nesting depth accepted in a body; our payload needs 3. */
#define LIMIT_JSON_DEPTH 32
/* Longest request_id / string denomination_id in bytes; past it 422. */
#define LIMIT_ID_BYTES 256
/* default: open connections over all workers; past it accepting pauses. */
#define LIMIT_CONNECTIONS_DEFAULT 10000
/* Requests parsed but not yet answered on one connection (pipelining); past it reading pauses. */
#define LIMIT_PIPELINE_DEPTH 32
/* Response bytes queued to a client that does not read; past it reading pauses. */
#define LIMIT_WRITE_QUEUE_BYTES (256 * 1024)
/* default: seconds to receive a request's headers once it has started; then 408 and close. */
#define LIMIT_HEADER_TIMEOUT_S_DEFAULT 10
/* default: seconds between body bytes; then 408 and close. */
#define LIMIT_BODY_TIMEOUT_S_DEFAULT 30
/* default: seconds an idle keep-alive connection is kept. */
#define LIMIT_IDLE_TIMEOUT_S_DEFAULT 5
/* default: callbacks in flight per worker; the rest wait in the worker's queue. */
#define LIMIT_CALLBACKS_IN_FLIGHT_DEFAULT 64
/* File descriptors kept for what is not a connection: the process's own
 * (stdio, the store's files, the signal thread) and each worker's (its loop,
 * wake-ups, listener, libuv's spare); with callbacks_in_flight + 4 sockets
 * per worker for the callbacks (in flight and kept alive), the rest of the
 * open-files limit is left for --max-connections (see config_fit_fds). */
#define LIMIT_FDS_BASE 32
#define LIMIT_FDS_PER_WORKER 8
#define LIMIT_FDS_PER_WORKER_CALLBACKS_EXTRA 4
/* Bytes of a main service's answer kept as the failure reason. */
#define LIMIT_PEER_BODY_KEEP 512
/* default: seconds to connect to / complete one callback. */
#define LIMIT_CALLBACK_CONNECT_TIMEOUT_S_DEFAULT 5
#define LIMIT_CALLBACK_TIMEOUT_S_DEFAULT 30
/* default: seconds shutdown waits for responses and tasks under way. */
#define LIMIT_SHUTDOWN_GRACE_S_DEFAULT 10
/* How much of --callback-ca-file is read at start to find a PEM certificate
 * (Debian's whole bundle is ~220 KB); curl reads the file itself. */
#define LIMIT_CA_FILE_BYTES (1024 * 1024)
/* Largest simulated latency in seconds: one day keeps deadlines far from overflow. */
#define LIMIT_LATENCY_MAX_S 86400
/* Workers: more than this is a typo, not a machine. */
#define LIMIT_WORKERS_MAX 256
/* Bytes of lines waiting for stdout, and for stderr, when their reader is
 * slower than the service (output.h): ~2 s of bill lines at 40,000 bills a
 * second; past it lines are dropped and counted, never waited for. */
#define LIMIT_OUTPUT_QUEUE_BYTES (4 * 1024 * 1024)

#endif
