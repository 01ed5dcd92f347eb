/* riskd: read the configuration, load the rule set, serve until told to stop.
 *
 * Exit status: 0 after a graceful shutdown or --help; 1 when the rule set does
 * not load, the state store does not open or an endpoint cannot be bound; 2
 * for a bad command line or configuration file. Every failure prints one line a user can act on. */
#include <stdbool.h>
#include <stdio.h>

#include "engine/engine.h"
#include "lib/diag.h"
#include "lib/log.h"
#include "server/config.h"
#include "server/server.h"

static void print_diag(const rk_diag *d)
{
    char text[sizeof d->file + sizeof d->msg + 32];
    fprintf(stderr, "riskd: %s\n", rk_diag_format(d, text, sizeof text));
}

int main(int argc, char **argv)
{
    rk_config cfg;
    rk_diag diag;
    bool help;
    rk_diag_clear(&diag);
    if (rk_config_from_args(&cfg, argc, argv, &help, &diag) < 0) {
        print_diag(&diag);
        return 2;
    }
    if (help) {
        rk_config_usage(stdout);
        return 0;
    }
    if (!cfg.rules[0]) {
        fprintf(stderr, "riskd: no rule set: pass --rules FILE or set `rules:` in the config "
                        "file (-c riskd.yaml)\n");
        return 2;
    }
    rk_log_set_level(cfg.log_level);
    if (rk_config_pin(&cfg, &diag) < 0) { /* before any thread starts: they all inherit it */
        print_diag(&diag);
        return 2;
    }
    rk_server_block_signals(); /* before the store starts its threads */
    if (rk_config_prepare(&cfg, &diag) < 0) {
        print_diag(&diag);
        return 1;
    }

    rk_engine_config ecfg;
    rk_engine_config_default(&ecfg);
    ecfg.rules_path = cfg.rules;
    ecfg.max_body = cfg.max_body;
    ecfg.fallback = cfg.fallback;
    rk_config_store(&cfg, &ecfg.store);
    ecfg.declog = cfg.decision_log; /* dir NULL: the engine puts it under data_dir */
    rk_engine *engine = NULL;
    int rc = rk_engine_open(&ecfg, &engine, &diag);
    if (rc < 0) {
        /* A rule file error: just the diagnostic, the way an editor wants it.
         * A store that does not open: the data directory and the reason. */
        char text[sizeof diag.file + sizeof diag.msg + 32];
        rk_diag_format(&diag, text, sizeof text);
        fprintf(stderr, diag.line ? "%s\n" : "riskd: %s\n", text);
        return 1;
    }
    rk_server *server = NULL;
    if (rk_server_new(engine, &cfg, &server, &diag) < 0) {
        print_diag(&diag);
        rk_engine_close(engine);
        return 1;
    }
    rc = rk_server_run(server);
    rk_server_free(server);
    rk_engine_close(engine);
    return rc < 0 ? 1 : 0;
}
