/* The admin ops' replies. A failed reload is not a malformed request, so it
 * does not use the error reply of the wire protocol: it answers `ok: false`
 * with the loader's `file:line:col: message` under code bad_request (the rule
 * file, the input riskd was asked to read, is what is wrong), so riskctl can
 * print it as is. Nothing is counted in errors.* for it; reloads.failed is. */
#include "engine/admin.h"

#include "engine/stats.h"
#include "lib/diag.h"

void rk_admin_reload(rk_engine *e, rk_outbuf *out)
{
    rk_diag diag;
    msgpack_packer *pk = &out->pk;
    if (rk_engine_reload(e, &diag) == 0) {
        char label[256];
        rk_engine_label(e, label, sizeof label);
        msgpack_pack_map(pk, 2);
        rk_outbuf_str(out, "ok");
        msgpack_pack_true(pk);
        rk_outbuf_str(out, "ruleset");
        rk_outbuf_str(out, label);
        return;
    }
    char text[sizeof diag.file + sizeof diag.msg + 32];
    rk_diag_format(&diag, text, sizeof text);
    msgpack_pack_map(pk, 2);
    rk_outbuf_str(out, "ok");
    msgpack_pack_false(pk);
    rk_outbuf_str(out, "error");
    msgpack_pack_map(pk, 2);
    rk_outbuf_str(out, "code");
    rk_outbuf_str(out, rk_wire_err_name(RK_WERR_BAD_REQUEST));
    rk_outbuf_str(out, "message");
    rk_outbuf_str(out, text);
}

void rk_admin_stats(rk_engine *e, const rk_snapshot *snap, rk_outbuf *out)
{
    rk_stats_pack(rk_engine_stats(e), snap, &out->pk);
}
