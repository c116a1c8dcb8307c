/*
 * output: the service's lines on stdout (the bill lines) and stderr (the
 * log), written by a thread of their own once output_start has run.
 *
 * A worker never waits for a reader: output_line appends the line to its
 * stream's queue under a lock held for a copy, and the output thread
 * writes what is queued. A reader that stops reading (a pipe nobody
 * drains, a stalled log collector) blocks that thread alone; past the
 * queue's cap the lines are dropped and counted (output_dropped), and once
 * the stream moves again a warning says how many went missing. A reader
 * gone (EPIPE) ends its stream's writes; a write that fails otherwise (a
 * full disk) loses that batch only, and is said once until one succeeds. Before
 * these, a full stdout pipe stopped every worker inside printf, and the
 * service answered nothing, not even SIGTERM.
 *
 * stderr lines are written as soon as the thread wakes; stdout lines
 * gather for up to OUTPUT_PERIOD_MS or OUTPUT_FLUSH_BYTES (a write per
 * batch, as the stdio buffer flushed every 100 ms did). Before
 * output_start and after output_stop, output_line writes through stdio
 * at once (start-up and its errors).
 */
#ifndef EXCHANGED_OUTPUT_H
#define EXCHANGED_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

enum output_stream { OUTPUT_STDOUT = 0, OUTPUT_STDERR = 1 };

#define OUTPUT_PERIOD_MS 100
#define OUTPUT_FLUSH_BYTES (64 * 1024)
/* The longest wait for a stalled reader at an exit (a stop, a second
 * signal, a failed fsync): the lines it did not take are lost. */
#define OUTPUT_EXIT_WAIT_MS 1000

/* Starts the output thread for out_fd (stdout's lines) and err_fd
 * (stderr's), each stream queueing at most cap bytes. Flush stdio first.
 * Returns 0, or a libuv error code (nothing started; UV_EBUSY when it runs
 * already). */
int output_start(int out_fd, int err_fd, size_t cap);

/* output_start for the process's stdout and stderr, each queueing at most
 * LIMIT_OUTPUT_QUEUE_BYTES, after flushing stdio; registers an atexit
 * handler that runs output_stop(OUTPUT_EXIT_WAIT_MS), so a return from
 * main or exit() writes what is queued first. Main thread, at start-up. */
int output_start_stdio(void);

/* Queues one line (text of len bytes, its newline included). Any thread. */
void output_line(enum output_stream s, const char *text, size_t len);

/* Waits until what was queued before the call is written, at most wait_ms.
 * Returns 0 when it was, -1 when the time ran out (a stalled reader). */
int output_flush(uint64_t wait_ms);

/* Writes what is queued (waiting at most wait_ms for a stalled reader),
 * then stops the thread; later lines go through stdio at once. A thread
 * stuck in a write is left to the process's exit. */
void output_stop(uint64_t wait_ms);

/* Lines dropped so far, both streams: the queue was full, the stream was
 * closed by its reader, or a write failed. */
uint64_t output_dropped(void);

/* Bytes queued and not yet taken for writing, both streams (0 when not
 * started). Any thread. */
uint64_t output_waiting(void);

#endif
