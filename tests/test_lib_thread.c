/* lib/thread: names, and the background priorities: SCHED_IDLE for good,
 * nice 10, and the boostable idle thread (boosted back to the normal policy
 * from another thread, settled back to idle by itself), and what that thread
 * becomes where it may not leave SCHED_IDLE (the probe thread drops
 * CAP_SYS_NICE, which Linux keeps per thread). */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/thread.h"

static int policy_of(pthread_t t)
{
    int policy = -1;
    struct sched_param sp;
    assert_int_equal(pthread_getschedparam(t, &policy, &sp), 0);
    return policy;
}

/* A thread that runs one setup step, then waits for the test's steps. */
typedef struct probe {
    rk_thread_prio prio;
    int mode;           /* 0: prio_idle, 1: rk_thread_idle, 2: rk_thread_background,
                           3/4: prio_idle (stay_idle false/true) without CAP_SYS_NICE */
    atomic_int step;    /* 1: set up; 2: settle asked; 3: settled; 4: exit */
    int nice;           /* its nice value after setup */
    bool dropped;       /* modes 3/4: CAP_SYS_NICE was dropped */
} probe;

static void wait_step(probe *p, int want)
{
    while (atomic_load(&p->step) < want)
        sched_yield();
}

/* Drops CAP_SYS_NICE from the calling thread's effective set; false if
 * that failed. */
static bool drop_sys_nice(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0)
        return false;
    d[CAP_SYS_NICE / 32].effective &= ~(1u << (CAP_SYS_NICE % 32));
    return syscall(SYS_capset, &h, d) == 0;
}

static void *probe_main(void *arg)
{
    probe *p = arg;
    if (p->mode >= 3) {
        p->dropped = drop_sys_nice();
        rk_thread_prio_idle(&p->prio, "rk-test-prio", p->mode == 4);
    } else if (p->mode == 0)
        rk_thread_prio_idle(&p->prio, "rk-test-prio", false);
    else if (p->mode == 1)
        rk_thread_idle("rk-test-idle");
    else
        rk_thread_background("rk-test-background-long-name");
    p->nice = getpriority(PRIO_PROCESS, (id_t)gettid());
    atomic_store(&p->step, 1);
    wait_step(p, 2);
    rk_thread_prio_settle(&p->prio);
    atomic_store(&p->step, 3);
    wait_step(p, 4);
    return NULL;
}

static pthread_t start(probe *p, int mode)
{
    memset(p, 0, sizeof *p);
    p->mode = mode;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, probe_main, p), 0);
    wait_step(p, 1);
    return t;
}

static void finish(probe *p, pthread_t t)
{
    if (atomic_load(&p->step) < 2) {
        atomic_store(&p->step, 2);
        wait_step(p, 3);
    }
    atomic_store(&p->step, 4);
    pthread_join(t, NULL);
}

static void test_names(void **state)
{
    (void)state;
    probe p;
    pthread_t t = start(&p, 2);
    char name[32];
    assert_int_equal(pthread_getname_np(t, name, sizeof name), 0);
    assert_string_equal(name, "rk-test-backgro"); /* 15 bytes kept */
    assert_int_equal(p.nice, 10);
    assert_int_equal(policy_of(t), SCHED_OTHER);
    finish(&p, t);
}

static void test_idle(void **state)
{
    (void)state;
    probe p;
    pthread_t t = start(&p, 1);
    assert_int_equal(policy_of(t), SCHED_IDLE); /* lowering needs no privilege */
    finish(&p, t);
}

static void test_boost_and_settle(void **state)
{
    (void)state;
    probe p;
    pthread_t t = start(&p, 0);
    if (!atomic_load(&p.prio.idle)) {
        /* no CAP_SYS_NICE nor RLIMIT_NICE here: nice 10 instead, and boosting
         * does nothing */
        assert_int_equal(policy_of(t), SCHED_OTHER);
        assert_int_equal(p.nice, 10);
        rk_thread_prio_boost(&p.prio);
        assert_false(atomic_load(&p.prio.boosted));
        finish(&p, t);
        return;
    }
    assert_int_equal(policy_of(t), SCHED_IDLE);
    rk_thread_prio_boost(&p.prio);
    assert_true(atomic_load(&p.prio.boosted));
    assert_int_equal(policy_of(t), SCHED_OTHER);
    rk_thread_prio_boost(&p.prio); /* again: nothing to do */
    assert_int_equal(policy_of(t), SCHED_OTHER);
    atomic_store(&p.step, 2); /* the thread settles itself */
    wait_step(&p, 3);
    assert_false(atomic_load(&p.prio.boosted));
    assert_int_equal(policy_of(t), SCHED_IDLE);
    finish(&p, t);
}

/* Without the means to come back: nice 10, or SCHED_IDLE for good; boosting
 * does nothing either way. (Skipped where RLIMIT_NICE allows nice 0.) */
static void test_no_way_back(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NICE, &rl), 0);
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= 20)
        skip();
    for (int stay = 0; stay <= 1; stay++) {
        probe p;
        pthread_t t = start(&p, 3 + stay);
        assert_true(p.dropped);
        assert_false(atomic_load(&p.prio.idle));
        assert_int_equal(policy_of(t), stay ? SCHED_IDLE : SCHED_OTHER);
        if (!stay)
            assert_int_equal(p.nice, 10);
        rk_thread_prio_boost(&p.prio);
        assert_false(atomic_load(&p.prio.boosted));
        assert_int_equal(policy_of(t), stay ? SCHED_IDLE : SCHED_OTHER);
        finish(&p, t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_idle),
        cmocka_unit_test(test_boost_and_settle),
        cmocka_unit_test(test_no_way_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
