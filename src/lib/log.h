/* Logging: one line per event on stderr, `2026-11-22T17:40:01.123Z level message`.
 * Thread-safe (one write(2) per line). Never logs secrets or raw entity values:
 * callers pass only what an operator may see. */
#ifndef RK_LOG_H
#define RK_LOG_H

enum {
    RK_LOG_DEBUG,
    RK_LOG_INFO,
    RK_LOG_WARN,
    RK_LOG_ERROR,
};

/* Messages below this level are dropped. Default RK_LOG_INFO. */
void rk_log_set_level(int level);
/* Parses "debug", "info", "warn", "error"; returns the level or -1. */
int rk_log_level_from_name(const char *name);

void rk_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define rk_log_debug(...) rk_log(RK_LOG_DEBUG, __VA_ARGS__)
#define rk_log_info(...) rk_log(RK_LOG_INFO, __VA_ARGS__)
#define rk_log_warn(...) rk_log(RK_LOG_WARN, __VA_ARGS__)
#define rk_log_error(...) rk_log(RK_LOG_ERROR, __VA_ARGS__)

#endif
