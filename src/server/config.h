/* riskd's configuration: the riskd.yaml file and the command line
 * (docs/config.md lists every key with its default).
 *
 * Precedence: built-in defaults, then the file given with -c, then command-line
 * flags. Relative paths in the file (rules, data_dir, an ipc:// endpoint) are
 * relative to the file's directory; relative paths given as flags are relative
 * to the current directory, as a shell user expects. Problems are reported as
 * `file:line:col: message` with a "did you mean" for misspelt keys.
 *
 * The file is a mapping of scalar settings plus one section, `decision_log:`,
 * a nested mapping (whose `pseudonymise` is a list); sections are file-only. */
#ifndef RK_CONFIG_H
#define RK_CONFIG_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/declog.h"
#include "lib/diag.h"
#include "rules/decision.h"
#include "state/store.h"

#define RK_CONFIG_PATH_MAX 1024
#define RK_CONFIG_CPUS_MAX CPU_SETSIZE /* CPU numbers `cpus` accepts: 0 .. RK_CONFIG_CPUS_MAX - 1 */

typedef struct rk_config {
    char endpoint[RK_CONFIG_PATH_MAX];       /* gateway ROUTER endpoint */
    char admin_endpoint[RK_CONFIG_PATH_MAX]; /* admin ROUTER endpoint */
    char rules[RK_CONFIG_PATH_MAX];          /* rule file, resolved; "" when none was given */
    char data_dir[RK_CONFIG_PATH_MAX];       /* state directory, resolved */
    int workers;                             /* scoring threads, >= 1 */
    bool workers_given;                      /* workers was set (file or flag), not defaulted */
    cpu_set_t cpus;                          /* `cpus`: the CPUs riskd's threads run on;
                                                empty: not given, any CPU */
    size_t max_body;                         /* request body limit, bytes */
    int max_inflight;                        /* received-but-unanswered limit; beyond: overloaded */
    rk_verdict fallback;                     /* decision after an internal failure */
    int log_level;                           /* an RK_LOG_* level */
    int durability;                          /* an rk_durability: periodic or strict */
    int64_t sync_interval_ms;                /* periodic mode: flush interval */
    size_t map_size;                         /* initial LMDB map size, bytes */
    size_t map_max;                          /* the map grows up to this, bytes */
    int64_t retry_window_ms;                 /* a repeated id within this is a retry */
    int64_t keep_decisions_ms;               /* decisions kept for feedback; 0 = retry_window */
    int64_t sweep_interval_ms;               /* sweeper period; 0 = no sweeper */
    bool writemap;                           /* LMDB MDB_WRITEMAP: cheaper commits */
    int64_t cache_records;                   /* write-back cache size, records; -1 = by durability */
    int64_t checkpoint_ms;                   /* checkpointer period */
    rk_declog_config decision_log;           /* the `decision_log:` section; dir NULL (the
                                                engine puts it in data_dir) */
} rk_config;

#define RK_STRICT_WORKERS 32 /* default workers in strict durability: requests sharing an fsync */

/* Fills c with the built-in defaults (workers: online CPUs; the decision log
 * enabled, with rk_declog_config_default's settings). */
void rk_config_defaults(rk_config *c);

/* Confines the calling thread, and so every thread it starts from now on
 * (ZeroMQ's and the store's included), to c's `cpus`. Does nothing when none
 * were given. Returns 0, or RK_EINVAL with diag set when the system refuses
 * (a CPU that is offline or outside the process's own set). */
int rk_config_pin(const rk_config *c, rk_diag *diag);

/* Applies the settings of the YAML file at path over c. Returns 0, or RK_EIO
 * (unreadable), RK_EPARSE (YAML syntax, not a mapping, unknown or duplicate
 * key) or RK_ETYPE (a value of the wrong type or range), with diag set. */
int rk_config_load(rk_config *c, const char *path, rk_diag *diag);

/* Builds the configuration from the command line (argv[0] is skipped):
 * defaults, then -c FILE, then the flags; then, in strict durability with no
 * `workers` given, workers = RK_STRICT_WORKERS. *help is set when --help was given
 * (nothing else is checked then). Returns 0, RK_EINVAL for a bad flag (diag:
 * one line, no position), or an rk_config_load error. */
int rk_config_from_args(rk_config *c, int argc, char **argv, bool *help, rk_diag *diag);

/* The state store settings from c, over rk_store_config_default; sc->dir
 * points into c. */
void rk_config_store(const rk_config *c, rk_store_config *sc);

/* Creates data_dir and the directory of an ipc:// admin endpoint when they are
 * missing. Returns 0 or RK_EIO with diag set. */
int rk_config_prepare(const rk_config *c, rk_diag *diag);

/* Prints the --help text. */
void rk_config_usage(FILE *f);

#endif
