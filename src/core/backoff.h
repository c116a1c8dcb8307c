/*
 * backoff: when to try a failed callback again.
 *
 * Exponential backoff with full jitter: attempt n (1-based: the delay after
 * the n-th failed attempt) waits a uniform random time in
 * [0, min(cap, base * 2^(n-1))]. A Retry-After from the main service (429,
 * 503) replaces the draw, capped at cap.
 *
 * What is retried: no answer (connection refused, reset, timeout, DNS),
 * 5xx, 408 and 429. Any other status fails the task at once. Pure functions.
 */
#ifndef EXCHANGED_BACKOFF_H
#define EXCHANGED_BACKOFF_H

#include <stdint.h>

struct backoff_policy {
    uint64_t base_ms, cap_ms;
    uint32_t max_attempts; /* attempts in all, the first included */
    uint64_t max_age_ms;   /* since the task was accepted */
};

/* 1 when a callback answered with http_status (0: no answer) may be retried. */
int backoff_retryable(long http_status);
/* The upper bound of the draw after the n-th failed attempt. */
uint64_t backoff_ceiling_ms(const struct backoff_policy *p, uint32_t n);
/* The delay after the n-th failed attempt; rnd is a uniform 64-bit random
 * number; retry_after_s >= 0 overrides the draw (capped). */
uint64_t backoff_delay_ms(const struct backoff_policy *p, uint32_t n, uint64_t rnd,
                          int64_t retry_after_s);

#endif
