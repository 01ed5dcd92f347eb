/* Thread names and the priority of riskd's background threads.
 *
 * Background work runs below scoring so that it fills the gaps scoring
 * leaves instead of taking a core from it; on a two-core machine shared with
 * ZeroMQ's I/O threads (riskd's and its clients') every burst of it shows in
 * riskd's tail latency. A nice value is not enough under Linux's EEVDF
 * scheduler: a woken thread waits for a running nice-10 thread's slice to
 * end (measured: 2–6 ms stalls at 5,000 req/s open loop). SCHED_IDLE is: such
 * a thread is preempted by any normal thread that wakes, and a core running
 * only it counts as idle when a woken thread picks a core.
 *
 * But an idle-policy thread gets almost no CPU on a saturated machine, and
 * while it holds a lock it can be preempted by anything that wakes, so each
 * use says who does the work then:
 *   rk_thread_idle        the request path takes the work over when it falls
 *                         behind (prefaulter: requests fault their own
 *                         memory);
 *   rk_thread_prio_idle   the thread is boosted back to the normal policy:
 *                         by another thread when its work is overdue (the
 *                         periodic flush), or by itself while it holds a lock
 *                         requests wait for (the checkpointer, whose chunks
 *                         the request path also takes over when it falls
 *                         behind). Leaving SCHED_IDLE needs CAP_SYS_NICE or
 *                         an RLIMIT_NICE of 20; without either the flush runs
 *                         at nice 10 and the checkpointer stays under
 *                         SCHED_IDLE, unboosted;
 *   rk_thread_background  nice 10 (the decision-log writer, whose ring the
 *                         request path cannot drain). */
#ifndef RK_THREAD_H
#define RK_THREAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* Names the calling thread (top -H, perf and gdb show it); at most 15 bytes
 * are kept. */
void rk_thread_name(const char *name);

/* Names the calling thread and lowers it to nice 10. */
void rk_thread_background(const char *name);

/* Names the calling thread and moves it to SCHED_IDLE for good (nice 19
 * where that is refused). */
void rk_thread_idle(const char *name);

/* A background thread that runs under SCHED_IDLE until boosted. */
typedef struct rk_thread_prio {
    pthread_t thread;     /* set by rk_thread_prio_idle */
    atomic_bool idle;     /* it runs under SCHED_IDLE (and can be boosted) */
    atomic_bool boosted;  /* it was moved back to the normal policy */
} rk_thread_prio;

/* Called by the thread itself: names it and moves it to SCHED_IDLE when it
 * may come back. Where it may not, boosting does nothing and it runs at
 * nice 10, or with stay_idle under SCHED_IDLE for good. p must be zeroed
 * before. */
void rk_thread_prio_idle(rk_thread_prio *p, const char *name, bool stay_idle);

/* From any thread: the normal policy now, if p is idle and not yet boosted.
 * Cheap when there is nothing to do (one atomic load). */
void rk_thread_prio_boost(rk_thread_prio *p);

/* Called by the thread itself after each round of its work: back to
 * SCHED_IDLE (a no-op unless rk_thread_prio_idle chose it). */
void rk_thread_prio_settle(rk_thread_prio *p);

#endif
