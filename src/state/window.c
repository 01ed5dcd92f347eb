/* Bucket arithmetic for event-time sliding windows (see window.h for the
 * model). Pure functions over a caller-owned ring of slots; no state, no
 * allocation. All divisions floor, so event times before 1970 (or a gateway's
 * zero timestamp) bucket consistently instead of straddling bucket 0. */
#include "state/window.h"

#include "lib/err.h"

int rk_window_geom(int64_t window_ms, rk_window *out)
{
    if (window_ms < RK_WINDOW_MIN_MS || window_ms > RK_WINDOW_MAX_MS)
        return RK_ERANGE;
    int64_t g = window_ms / RK_WINDOW_BUCKETS;
    /* ceil(W / g) buckets span the window; one more so that an event just
     * inside the window's start, which shares its bucket with events just
     * outside, is never dropped. */
    int64_t span = (window_ms + g - 1) / g;
    out->width = g;
    out->nslots = (int)span + 1;
    return 0;
}

int64_t rk_window_bucket(const rk_window *w, int64_t ts)
{
    int64_t q = ts / w->width;
    if (ts % w->width < 0)
        q--;
    return q;
}

int rk_window_slot(const rk_window *w, int64_t b)
{
    int64_t r = b % w->nslots;
    if (r < 0)
        r += w->nslots;
    return (int)r;
}

bool rk_window_in_ring(const rk_window *w, int64_t newest, int64_t b)
{
    return b > newest - w->nslots;
}

int64_t rk_window_first(const rk_window *w, int64_t end)
{
    return end - w->nslots + 1;
}

/* The loops below walk the ring with a wrapping index rather than taking
 * rk_window_slot (a 64-bit division) per bucket: a request reads every
 * count and sum counter's whole window, and the divisions were most of it. */

void rk_window_advance_i64(const rk_window *w, int64_t *slots, int64_t newest, int64_t b)
{
    if (b - newest >= w->nslots) {
        for (int i = 0; i < w->nslots; i++)
            slots[i] = 0;
        return;
    }
    int s = rk_window_slot(w, newest);
    for (int64_t k = newest + 1; k <= b; k++) {
        if (++s == w->nslots)
            s = 0;
        slots[s] = 0;
    }
}

int64_t rk_sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

int64_t rk_window_sum_i64(const rk_window *w, const int64_t *slots, int64_t newest, int64_t end)
{
    if (end < newest)
        end = newest;
    int64_t first = rk_window_first(w, end);
    int64_t lo = newest - w->nslots + 1;
    if (first < lo)
        first = lo;
    int64_t sum = 0;
    int s = rk_window_slot(w, first);
    for (int64_t k = first; k <= newest; k++) {
        sum = rk_sat_add(sum, slots[s]);
        if (++s == w->nslots)
            s = 0;
    }
    return sum;
}
