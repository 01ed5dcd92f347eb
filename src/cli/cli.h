/* riskctl internals: the subcommand table, the shared option parser and the
 * one way riskctl talks to a running riskd.
 *
 * Every subcommand is an rk_cli_cmd defined in its own cmd_*.c file and listed
 * once in riskctl.c. Its run function is main-like: it returns the process exit
 * status rather than an RK_E* code, because the three outcomes a shell script
 * needs to tell apart are not errors of one function but verdicts of a command:
 *   0  everything checked out
 *   1  the check failed (a rule file does not compile, a case failed, riskd
 *      answered with an error or not at all)
 *   2  the user asked for something riskctl cannot do (usage error, a broken
 *      case file, input that does not parse)
 * Messages for people go to stderr as one line starting "riskctl: "; results go
 * to stdout. */
#ifndef RK_CLI_H
#define RK_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <msgpack.h>

#define RK_CLI_OK 0    /* exit status: success */
#define RK_CLI_FAIL 1  /* exit status: the check or the request failed */
#define RK_CLI_USAGE 2 /* exit status: bad usage or broken input */

#define RK_CLI_HELP 1 /* rk_cli_parse: --help was printed, exit 0 */

typedef struct rk_cli_cmd rk_cli_cmd;

struct rk_cli_cmd {
    const char *name;    /* the subcommand word: "check" */
    const char *args;    /* its synopsis after the name: "RULES..." */
    const char *summary; /* one line for `riskctl --help` */
    const char *help;    /* the body of `riskctl NAME --help`: what it does, options */
    int (*run)(const rk_cli_cmd *cmd, int argc, char **argv); /* argv[0]: the name; exit status */
};

/* The subcommands, one per cmd_*.c family. */
extern const rk_cli_cmd rk_cli_check;
extern const rk_cli_cmd rk_cli_test;
extern const rk_cli_cmd rk_cli_backtest; /* cmd_backtest.c */
extern const rk_cli_cmd rk_cli_score;
extern const rk_cli_cmd rk_cli_ping;
extern const rk_cli_cmd rk_cli_reload;
extern const rk_cli_cmd rk_cli_stats;
extern const rk_cli_cmd rk_cli_list;
extern const rk_cli_cmd rk_cli_feedback;
extern const rk_cli_cmd rk_cli_backup;
extern const rk_cli_cmd rk_cli_log; /* cmd_log.c: dump, to-csv, from-csv */
extern const rk_cli_cmd rk_cli_model; /* cmd_model.c: import, info */

/* An option a subcommand accepts. Arrays end with an entry whose name is NULL. */
typedef struct rk_cli_opt {
    const char *name;   /* long form with its dashes: "--endpoint" */
    const char *arg;    /* placeholder for the argument ("EP"), NULL for a flag */
    const char **value; /* receives the argument (options with arg) */
    bool *set;          /* set to true when given (flags) */
} rk_cli_opt;

/* Parses argv[1..argc) against opts: `--name VALUE`, `--name=VALUE`, flags,
 * `--help`/`-h`, and `--` to end options; a lone `-` is a positional argument.
 * Positional arguments are moved, in order, to argv[1..1+*npos) (in place:
 * no allocation, and nothing unread is overwritten). Returns 0; RK_CLI_HELP
 * after printing cmd's help on stdout; or RK_CLI_USAGE after printing a
 * one-line usage error (with a "did you mean" for a near option) and the
 * --help hint on stderr. */
int rk_cli_parse(const rk_cli_cmd *cmd, int argc, char **argv, const rk_cli_opt *opts, int *npos);

/* Prints `riskctl: MESSAGE` and `Try 'riskctl CMD --help'.` on stderr (cmd may
 * be NULL for the top level). Returns RK_CLI_USAGE, for `return rk_cli_usage(...)`. */
int rk_cli_usage(const rk_cli_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints `riskctl: MESSAGE` on stderr. Returns RK_CLI_FAIL. */
int rk_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses a timeout in milliseconds (a positive integer, at most a day) given to
 * option name. Returns 0, or RK_CLI_USAGE after printing a usage error. */
int rk_cli_parse_ms(const rk_cli_cmd *cmd, const char *name, const char *text, int *out);

/* Runs the subcommand of a command family (`riskctl log dump ...`) named by
 * argv[1]: subs are its members, named "FAMILY WORD"; words lists them for
 * messages ("import or info"). Handles --help/-h and reports a missing or
 * unknown word (with a "did you mean"). Returns an exit status. */
int rk_cli_dispatch(const rk_cli_cmd *cmd, const rk_cli_cmd *const *subs, size_t nsubs,
                    const char *words, int argc, char **argv);

/* Reads all of a stream (stdin for `-`) into a NUL-terminated malloc'd buffer.
 * Returns 0, RK_EIO or RK_ENOMEM. */
int rk_cli_read_stream(FILE *f, char **out, size_t *len);

/* ---- Talking to riskd (cmd_remote.c) ---- */

#define RK_CLI_ENDPOINT "tcp://127.0.0.1:7700"     /* default request endpoint */
#define RK_CLI_ADMIN "ipc://var/riskd-admin.sock"   /* default admin endpoint */
#define RK_CLI_TIMEOUT_MS 2000                      /* default wait for a reply */

/* A reply from riskd: the raw frame and its first msgpack value, unpacked. */
typedef struct rk_cli_reply {
    uint8_t *buf;          /* the reply frame, malloc'd */
    size_t len;            /* its length in bytes */
    msgpack_unpacked msg;  /* the unpacked value; a MAP for every well-formed reply */
    bool unpacked;         /* msg holds a value (and must be destroyed) */
} rk_cli_reply;

/* Sends one request (a msgpack body of len bytes) to endpoint over a fresh REQ
 * socket and waits up to timeout_ms for the reply, which is unpacked into
 * *reply. Every failure has already been reported on stderr, one line
 * ("no reply from EP within N ms (is riskd running?)" and the like), when this
 * returns: 0, or RK_EINVAL (endpoint is not a ZeroMQ endpoint), RK_ETIMEOUT,
 * RK_EZMQ (cannot send or receive), RK_ECORRUPT (the reply is not msgpack),
 * RK_ENOMEM. Shared by every subcommand that talks to riskd. */
int rk_cli_request(const char *endpoint, int timeout_ms, const void *body, size_t len,
                   rk_cli_reply *reply);
/* Releases a reply (zeroed or filled by rk_cli_request). */
void rk_cli_reply_free(rk_cli_reply *reply);

/* Writes s (n bytes) as one CSV cell: quoted when it holds a comma, a quote
 * or a line break, or is empty (a quoted empty cell is the empty string; an
 * unquoted one, written by the caller as nothing, is a missing value). */
void rk_cli_csv_cell(FILE *f, const char *s, size_t n);

#endif
