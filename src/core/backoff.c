#include "backoff.h"

int backoff_retryable(long http_status)
{
    return http_status == 0 || http_status >= 500 || http_status == 408 || http_status == 429;
}

uint64_t backoff_ceiling_ms(const struct backoff_policy *p, uint32_t n)
{
    uint64_t c = p->base_ms;
    for (uint32_t i = 1; i < n && c < p->cap_ms; i++)
        c *= 2;
    return c < p->cap_ms ? c : p->cap_ms;
}

uint64_t backoff_delay_ms(const struct backoff_policy *p, uint32_t n, uint64_t rnd,
                          int64_t retry_after_s)
{
    if (retry_after_s >= 0) {
        uint64_t ms = (uint64_t)retry_after_s * 1000;
        return ms < p->cap_ms ? ms : p->cap_ms;
    }
    uint64_t ceiling = backoff_ceiling_ms(p, n);
    return rnd % (ceiling + 1);
}
