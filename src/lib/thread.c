/* Thread names and background priority (lib/thread.h). */
#include "lib/thread.h"

#include <errno.h>
#include <linux/capability.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/log.h"

#define BACKGROUND_NICE 10 /* scoring runs at 0 */
#define IDLE_FALLBACK_NICE 19

void rk_thread_name(const char *name)
{
    char n[16];
    strncpy(n, name, sizeof n - 1);
    n[sizeof n - 1] = '\0';
    (void)pthread_setname_np(pthread_self(), n);
}

static void set_nice(const char *name, int nice)
{
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), nice) != 0)
        rk_log_debug("%s: cannot lower the thread's priority: %s", name, strerror(errno));
}

void rk_thread_background(const char *name)
{
    rk_thread_name(name);
    set_nice(name, BACKGROUND_NICE);
}

static int set_policy(pthread_t t, int policy)
{
    struct sched_param sp = {.sched_priority = 0};
    return pthread_setschedparam(t, policy, &sp);
}

void rk_thread_idle(const char *name)
{
    rk_thread_name(name);
    if (set_policy(pthread_self(), SCHED_IDLE) != 0)
        set_nice(name, IDLE_FALLBACK_NICE);
}

/* Whether a thread of this process may leave SCHED_IDLE again: Linux allows
 * it with CAP_SYS_NICE, or when RLIMIT_NICE permits nice 0 (a limit of 20). */
static bool may_return(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NICE, &rl) == 0 && (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= 20))
        return true;
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0)
        return false;
    return (d[CAP_SYS_NICE / 32].effective >> (CAP_SYS_NICE % 32)) & 1u;
}

void rk_thread_prio_idle(rk_thread_prio *p, const char *name, bool stay_idle)
{
    p->thread = pthread_self();
    if (may_return() && set_policy(p->thread, SCHED_IDLE) == 0) {
        rk_thread_name(name);
        atomic_store(&p->idle, true);
        return;
    }
    if (stay_idle) {
        rk_log_debug("%s: stays under SCHED_IDLE (no CAP_SYS_NICE or RLIMIT_NICE to come "
                     "back from it)", name);
        rk_thread_idle(name);
        return;
    }
    rk_thread_name(name);
    rk_log_debug("%s: runs at nice %d (no CAP_SYS_NICE or RLIMIT_NICE to come back from "
                 "SCHED_IDLE)", name, BACKGROUND_NICE);
    set_nice(name, BACKGROUND_NICE);
}

void rk_thread_prio_boost(rk_thread_prio *p)
{
    /* acquire: idle is stored after p->thread, which set_policy reads */
    if (!atomic_load_explicit(&p->idle, memory_order_acquire) ||
        atomic_load_explicit(&p->boosted, memory_order_relaxed))
        return;
    if (atomic_exchange(&p->boosted, true))
        return; /* another thread is boosting it */
    if (set_policy(p->thread, SCHED_OTHER) != 0)
        atomic_store(&p->boosted, false);
}

void rk_thread_prio_settle(rk_thread_prio *p)
{
    /* Unconditional (one system call per round of work): a boost racing
     * with the last settle cannot leave the thread at the normal policy. */
    if (atomic_load(&p->idle) && set_policy(p->thread, SCHED_IDLE) == 0)
        atomic_store(&p->boosted, false);
}
