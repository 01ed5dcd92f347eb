/* riskctl: the command-line companion of riskd. This file is the front door:
 * the table of subcommands, dispatch, `--help` at both levels, and the small
 * pieces every subcommand shares (option parsing, usage errors, reading
 * stdin). The subcommands themselves live one family per cmd_*.c file.
 *
 * The contract with the person at the terminal (DESIGN.md section 7): every
 * command answers --help; a failure is one line saying what went wrong, never
 * internal detail; a typo in a command or option gets a "did you mean" and a
 * pointer to --help, with exit status 2 so scripts can tell "you called me
 * wrong" from "the check failed" (1). */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/diag.h"
#include "lib/err.h"

/* In the order `riskctl --help` lists them: local tools first, then the ones
 * that talk to a running riskd. */
static const rk_cli_cmd *const commands[] = {
    &rk_cli_check, &rk_cli_test,   &rk_cli_backtest, &rk_cli_log,  &rk_cli_model,
    &rk_cli_score, &rk_cli_ping,   &rk_cli_reload,   &rk_cli_stats, &rk_cli_list,
    &rk_cli_feedback, &rk_cli_backup,
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void print_top_help(FILE *f)
{
    fputs("Usage: riskctl COMMAND [OPTIONS] [ARGS]\n"
          "\n"
          "Checks and tests riskd rule files, and talks to a running riskd.\n"
          "\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-8s %s\n", commands[i]->name, commands[i]->summary);
    fputs("\n"
          "Run 'riskctl COMMAND --help' for a command's arguments and options.\n"
          "\n"
          "Environment:\n"
          "  RISKD_ENDPOINT  riskd's request endpoint (default " RK_CLI_ENDPOINT ")\n"
          "  RISKD_ADMIN     riskd's admin endpoint (default " RK_CLI_ADMIN ")\n"
          "\n"
          "Exit status: 0 success, 1 the check or request failed, 2 bad usage or input.\n",
          f);
}

static void print_cmd_help(const rk_cli_cmd *cmd)
{
    printf("Usage: riskctl %s %s\n\n%s", cmd->name, cmd->args, cmd->help);
}

static const rk_cli_cmd *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

static int unknown_command(const char *name)
{
    const char *names[NCOMMANDS];
    for (size_t i = 0; i < NCOMMANDS; i++)
        names[i] = commands[i]->name;
    const char *near = rk_suggest(name, names, NCOMMANDS);
    if (near)
        return rk_cli_usage(NULL, "unknown command '%s' (did you mean '%s'?)", name, near);
    return rk_cli_usage(NULL, "unknown command '%s'", name);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_top_help(stderr);
        return RK_CLI_USAGE;
    }
    const char *word = argv[1];
    if (strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0) {
        print_top_help(stdout);
        return RK_CLI_OK;
    }
    /* `riskctl help [COMMAND]`: what people type when --help slips their mind. */
    if (strcmp(word, "help") == 0) {
        if (argc < 3) {
            print_top_help(stdout);
            return RK_CLI_OK;
        }
        const rk_cli_cmd *cmd = find_command(argv[2]);
        if (!cmd)
            return unknown_command(argv[2]);
        print_cmd_help(cmd);
        return RK_CLI_OK;
    }
    if (word[0] == '-')
        return rk_cli_usage(NULL, "unknown option '%s' (a command comes first)", word);
    const rk_cli_cmd *cmd = find_command(word);
    if (!cmd)
        return unknown_command(word);
    return cmd->run(cmd, argc - 1, argv + 1);
}

/* ---- Shared helpers (cli.h) ---- */

static void vmessage(const char *fmt, va_list ap)
{
    /* One line, written in one go, so that messages from concurrent riskctl
     * runs in a CI log do not interleave mid-line. */
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "riskctl: %s\n", line);
}

int rk_cli_usage(const rk_cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, "Try 'riskctl %s --help'.\n", cmd->name);
    else
        fputs("Try 'riskctl --help'.\n", stderr);
    return RK_CLI_USAGE;
}

int rk_cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    return RK_CLI_FAIL;
}

static const rk_cli_opt *find_opt(const rk_cli_opt *opts, const char *name, size_t len)
{
    for (const rk_cli_opt *o = opts; o && o->name; o++)
        if (strlen(o->name) == len && memcmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static int unknown_option(const rk_cli_cmd *cmd, const rk_cli_opt *opts, const char *arg,
                          size_t len)
{
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)len, arg);
    const char *cands[32];
    size_t n = 0;
    for (const rk_cli_opt *o = opts; o && o->name && n < 31; o++)
        cands[n++] = o->name;
    cands[n++] = "--help";
    const char *near = rk_suggest(name, cands, n);
    if (near)
        return rk_cli_usage(cmd, "unknown option '%s' for '%s' (did you mean '%s'?)", name,
                            cmd->name, near);
    return rk_cli_usage(cmd, "unknown option '%s' for '%s'", name, cmd->name);
}

int rk_cli_parse(const rk_cli_cmd *cmd, int argc, char **argv, const rk_cli_opt *opts, int *npos)
{
    bool options_done = false;
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
            argv[1 + (*npos)++] = argv[i]; /* 1 + *npos <= i: already read */
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_cmd_help(cmd);
            return RK_CLI_HELP;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const rk_cli_opt *o = find_opt(opts, a, len);
        if (!o)
            return unknown_option(cmd, opts, a, len);
        if (!o->arg) {
            if (eq)
                return rk_cli_usage(cmd, "option '%s' takes no value", o->name);
            *o->set = true;
            continue;
        }
        if (eq) {
            *o->value = eq + 1;
        } else if (i + 1 < argc) {
            *o->value = argv[++i];
        } else {
            return rk_cli_usage(cmd, "option '%s' needs a value (%s)", o->name, o->arg);
        }
        if (**o->value == '\0')
            return rk_cli_usage(cmd, "option '%s' needs a value (%s)", o->name, o->arg);
    }
    return 0;
}

int rk_cli_parse_ms(const rk_cli_cmd *cmd, const char *name, const char *text, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v <= 0 || v > 86400000L)
        return rk_cli_usage(cmd, "option '%s' takes milliseconds (a positive integer), not '%s'",
                            name, text);
    *out = (int)v;
    return 0;
}

#define MAX_SUBS 8

int rk_cli_dispatch(const rk_cli_cmd *cmd, const rk_cli_cmd *const *subs, size_t nsubs,
                    const char *words, int argc, char **argv)
{
    if (argc < 2)
        return rk_cli_usage(cmd, "%s needs a subcommand: %s", cmd->name, words);
    const char *word = argv[1];
    if (strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0) {
        print_cmd_help(cmd);
        return RK_CLI_OK;
    }
    assert(nsubs <= MAX_SUBS);
    size_t skip = strlen(cmd->name) + 1; /* "log dump": after "log " */
    const char *names[MAX_SUBS];
    for (size_t i = 0; i < nsubs; i++) {
        names[i] = subs[i]->name + skip;
        if (strcmp(word, names[i]) == 0)
            return subs[i]->run(subs[i], argc - 1, argv + 1);
    }
    const char *near = rk_suggest(word, names, nsubs);
    if (near)
        return rk_cli_usage(cmd, "unknown %s subcommand '%s' (did you mean '%s'?)", cmd->name,
                            word, near);
    return rk_cli_usage(cmd, "unknown %s subcommand '%s' (%s)", cmd->name, word, words);
}

int rk_cli_read_stream(FILE *f, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return RK_ENOMEM;
    for (;;) {
        if (cap - n < 2) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                return RK_ENOMEM;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                free(buf);
                return RK_EIO;
            }
            break;
        }
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Writes s as a CSV cell: quoted when it holds a comma, a quote, a line
 * break, or nothing at all (a quoted empty cell is the empty string). */
void rk_cli_csv_cell(FILE *f, const char *s, size_t n)
{
    bool quote = n == 0 || memchr(s, ',', n) || memchr(s, '"', n) || memchr(s, '\n', n) ||
                 memchr(s, '\r', n);
    if (!quote) {
        fwrite(s, 1, n, f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            fputc('"', f);
        fputc(s[i], f);
    }
    fputc('"', f);
}
