/* Sliding-window bucket arithmetic, in event time (ms since the epoch).
 *
 * A window of W ms is cut into buckets of width g = floor(W / 30) ms (so the
 * granularity is at most W/30). Bucket b covers [b*g, (b+1)*g). A record keeps a
 * ring of R = ceil(W / g) + 1 slots (31 or 32) holding buckets
 * (newest - R, newest], where `newest` is the highest bucket it has seen.
 *
 * The window that ends at bucket E covers buckets (E - R, E]: every event with
 * ts in (t - W, t] for any t inside bucket E is in it (never missed), and events
 * up to one bucket width older may be too (the usual price of bucketing). */
#ifndef RK_STATE_WINDOW_H
#define RK_STATE_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#define RK_WINDOW_MIN_MS (30LL * 1000)               /* 30 s */
#define RK_WINDOW_MAX_MS (90LL * 24 * 3600 * 1000)   /* 90 d */
#define RK_WINDOW_BUCKETS 30                        /* minimum buckets per window */
#define RK_WINDOW_SLOTS_MAX 32                      /* ring size never exceeds this */

typedef struct rk_window {
    int64_t width; /* bucket width g in ms, >= 1000 */
    int nslots;    /* ring size R, 31..32 */
} rk_window;

/* Geometry of a window of window_ms. RK_ERANGE outside [30 s, 90 d]. */
int rk_window_geom(int64_t window_ms, rk_window *out);

/* Bucket of event time ts (floor division: negative times work too). */
int64_t rk_window_bucket(const rk_window *w, int64_t ts);

/* Ring slot of bucket b, in [0, nslots). */
int rk_window_slot(const rk_window *w, int64_t b);

/* Whether bucket b can still be stored by a record whose newest bucket is
 * newest: b > newest - R. */
bool rk_window_in_ring(const rk_window *w, int64_t newest, int64_t b);

/* First bucket counted by a window ending at bucket end (end - R + 1). */
int64_t rk_window_first(const rk_window *w, int64_t end);

/* Moves a ring of int64 slots from newest to b > newest, zeroing the slots of
 * the buckets that fall out (all of them after a gap of R or more). */
void rk_window_advance_i64(const rk_window *w, int64_t *slots, int64_t newest, int64_t b);

/* Sum of the slots holding buckets in the window ending at max(newest, end),
 * saturating at INT64_MIN/INT64_MAX. */
int64_t rk_window_sum_i64(const rk_window *w, const int64_t *slots, int64_t newest, int64_t end);

/* Saturating int64 addition. */
int64_t rk_sat_add(int64_t a, int64_t b);

#endif
