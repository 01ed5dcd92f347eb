/* Loading a rule set: reading the YAML rule file and its includes, building
 * the schema, the named lists and the rules, then compiling every rule.
 *
 * Loading runs in two phases. The first walks the files — the top file and,
 * depth first, the files it includes — and collects schema fields, lists and
 * rules with the position of each, checking everything that does not need the
 * whole picture (keys, kinds, ids, duplicates). An included file's rules come
 * before the including file's own, in `include:` order, whatever the key's
 * place in the file. The second phase resolves the fields that counters and
 * dynamic lists name (load_state.c), builds the symbol table — standard
 * fields, schema extras, counters, model.score — compiles the model's
 * features (load_model.c) and every `when` against it and the complete list
 * set, so a rule may use a list, schema field or counter declared in any
 * file. The first problem stops the load: it is put in the caller's rk_diag
 * as `file:line:col: message` and everything built so far is freed; a rule
 * set is returned whole or not at all.
 *
 * A file included twice along different paths (a shared lists file) is loaded
 * once; a file that includes itself, directly or not, is an error. */
#include "rules/ruleset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"
#include "rules/load_int.h"

#define RULE_FILE_MAX (16u << 20)       /* bytes; a rule file larger than this is a mistake */
#define LIST_FILE_MAX (256u << 20)      /* bytes of one list file */
#define SCORE_MAX 1e9                   /* |score| and |threshold| bound, so sums stay exact */
#define VERSION_MAX 64                  /* bytes of `version:` */
#define NO_MODEL_MSG "model.score needs a model file (model: file: ...)"

int rk_load_grow(void **arr, int *cap, int n, size_t size)
{
    if (n < *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, (size_t)ncap * size);
    if (!p)
        return RK_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static char *memdup0(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

/* Only regular files: a rule file naming /dev/stdin or a FIFO must not hang a
 * reload. */
int rk_load_read_file(const char *path, size_t max, char **text, size_t *len, const char **why)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        *why = strerror(errno);
        return RK_EIO;
    }
    struct stat st;
    int rc = RK_EIO;
    char *buf = NULL;
    if (fstat(fd, &st) != 0) {
        *why = strerror(errno);
    } else if (!S_ISREG(st.st_mode)) {
        *why = S_ISDIR(st.st_mode) ? strerror(EISDIR) : "not a regular file";
    } else if ((uintmax_t)st.st_size > max) {
        *why = "file too large";
    } else if (!(buf = malloc((size_t)st.st_size + 1))) {
        rc = RK_ENOMEM;
    } else {
        size_t got = 0, want = (size_t)st.st_size;
        *why = "file changed while reading";
        while (got < want) {
            ssize_t r = read(fd, buf + got, want - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                *why = strerror(errno);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got == want) {
            buf[got] = '\0';
            *text = buf;
            *len = got;
            buf = NULL;
            rc = 0;
        }
    }
    free(buf);
    close(fd);
    return rc;
}

char *rk_load_join_path(const char *dir, const char *rel)
{
    if (rel[0] == '/' || !dir[0])
        return strdup(rel);
    size_t dl = strlen(dir), rl = strlen(rel);
    bool slash = dir[dl - 1] == '/';
    char *p = malloc(dl + rl + 2);
    if (p)
        snprintf(p, dl + rl + 2, "%s%s%s", dir, slash ? "" : "/", rel);
    return p;
}

/* The directory part of path ("" for a bare name): where its relative paths start. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup("");
    return memdup0(path, slash == path ? 1 : (size_t)(slash - path));
}

static int add_file(loader *L, const char *shown)
{
    rk_ruleset *rs = L->rs;
    if (rk_load_grow((void **)&rs->files, &L->cap_files, rs->nfiles, sizeof *rs->files))
        return RK_ENOMEM;
    if (!(rs->files[rs->nfiles] = strdup(shown)))
        return RK_ENOMEM;
    return rs->nfiles++;
}

/* A lowercase name: [a-z0-9_] plus the characters in extra (the rule set's
 * own name also takes '.' and '-'). Rule ids are lowercase so that replies,
 * logs and dashboards never hold two spellings of one rule. */
static bool name_chars(const char *s, size_t len, const char *extra)
{
    if (len == 0 || strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              (extra && c && strchr(extra, c))))
            return false;
    }
    return true;
}

/* Schema fields, counters and lists must be identifiers so that rules can
 * write their names. */
bool rk_load_is_ident(const char *s, size_t len)
{
    if (len == 0 || strlen(s) != len || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

bool rk_load_is_keyword(const char *s)
{
    static const char *const words[] = {"and", "or", "not", "in", "true", "false"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strcmp(s, words[i]) == 0)
            return true;
    return false;
}

/* ---- ruleset, version ------------------------------------------------- */

static int do_ruleset(loader *L, file_ctx *f, yaml_node_t *key, yaml_node_t *val)
{
    const char *s = rk_yn_str(val);
    if (!s || rk_yn_is_null(val))
        return rk_yn_fail(&f->doc, val, L->diag, RK_EPARSE, "'ruleset' must be a name");
    size_t len = val->data.scalar.length;
    if (!name_chars(s, len, ".-"))
        return rk_yn_fail(&f->doc, val, L->diag, RK_EINVAL,
                          "invalid ruleset name '%s' (use lowercase letters, digits, _, . and -)",
                          s);
    if (len > RK_NAME_MAX)
        return rk_yn_fail(&f->doc, val, L->diag, RK_EINVAL,
                          "ruleset name '%s' is too long (at most %d bytes)", s, RK_NAME_MAX);
    return (L->rs->name = strdup(s)) ? 0 : RK_ENOMEM;
}

static int do_version(loader *L, file_ctx *f, yaml_node_t *key, yaml_node_t *val)
{
    const char *s = rk_yn_str(val);
    if (!s)
        return rk_yn_fail(&f->doc, val, L->diag, RK_EPARSE, "'version' must be text, found %s",
                          rk_yn_kind(val));
    size_t len = val->data.scalar.length;
    if (len == 0 || rk_yn_is_null(val))
        return rk_yn_fail(&f->doc, val, L->diag, RK_EINVAL, "'version' must not be empty");
    if (len > VERSION_MAX)
        return rk_yn_fail(&f->doc, val, L->diag, RK_EINVAL,
                          "'version' is too long (at most %d bytes)", VERSION_MAX);
    /* It is echoed in every reply and log line: printable and on one line. */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return rk_yn_fail(&f->doc, val, L->diag, RK_EINVAL,
                              "'version' must be printable text on one line");
    return (L->rs->version = strdup(s)) ? 0 : RK_ENOMEM;
}

/* ---- schema ----------------------------------------------------------- */

static int do_schema(loader *L, file_ctx *f, yaml_node_t *key, yaml_node_t *val)
{
    if (rk_yn_is_empty(val))
        return 0;
    if (val->type != YAML_MAPPING_NODE)
        return rk_yn_fail(&f->doc, val, L->diag, RK_EPARSE,
                          "'schema' must be a mapping of field names to types");
    rk_schema *sc = &L->rs->schema;
    for (yaml_node_pair_t *p = val->data.mapping.pairs.start; p < val->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = rk_yn_node(&f->doc, p->key), *tn = rk_yn_node(&f->doc, p->value);
        const char *name = rk_yn_str(kn);
        if (!name)
            return rk_yn_fail(&f->doc, kn, L->diag, RK_EPARSE,
                              "expected a field name, found %s", rk_yn_kind(kn));
        size_t len = kn->data.scalar.length;
        if (!rk_load_is_ident(name, len))
            return rk_yn_fail(&f->doc, kn, L->diag, RK_EINVAL,
                              "invalid schema field name '%s' (use letters, digits and _, "
                              "not starting with a digit)",
                              name);
        if (len >= RK_NAME_MAX)
            return rk_yn_fail(&f->doc, kn, L->diag, RK_EINVAL,
                              "schema field name '%s' is too long (at most %d bytes)", name,
                              RK_NAME_MAX - 1);
        if (rk_load_is_keyword(name))
            return rk_yn_fail(&f->doc, kn, L->diag, RK_EINVAL,
                              "'%s' is a reserved word and cannot name a schema field", name);
        if (rk_field_find(name, len) >= 0)
            return rk_yn_fail(&f->doc, kn, L->diag, RK_EINVAL,
                              "schema field '%s' is already a standard field", name);
        int slot = rk_schema_find(sc, name, len);
        if (slot >= 0) {
            rk_srcpos first = L->schema_pos[slot - RK_F__STD];
            return rk_yn_fail(&f->doc, kn, L->diag, RK_EEXISTS,
                              "duplicate schema field '%s' (first defined at %s:%d:%d)", name,
                              rk_load_file_name(L, first.file), first.line, first.col);
        }
        if (sc->n >= RK_SCHEMA_MAX)
            return rk_yn_fail(&f->doc, kn, L->diag, RK_ETOOBIG,
                              "too many schema fields (at most %d)", RK_SCHEMA_MAX);
        const char *tname = rk_yn_str(tn);
        int type = tname ? rk_type_from_name(tname) : -1;
        if (type < 0)
            return rk_yn_fail(&f->doc, tn, L->diag, RK_EINVAL,
                              "unknown type '%s' for schema field '%s' (expected int, float, "
                              "str or bool)",
                              tname ? tname : rk_yn_kind(tn), name);
        memcpy(sc->f[sc->n].name, name, len + 1);
        sc->f[sc->n].type = (rk_type)type;
        L->schema_pos[sc->n] = rk_load_pos(f, kn);
        sc->n++;
    }
    return 0;
}

/* ---- thresholds ------------------------------------------------------- */

static int do_thresholds(loader *L, file_ctx *f, yaml_node_t *key, yaml_node_t *val)
{
    static const char *const keys[] = {"review", "block"};
    if (rk_yn_is_empty(val))
        return 0;
    if (val->type != YAML_MAPPING_NODE)
        return rk_yn_fail(&f->doc, val, L->diag, RK_EPARSE,
                          "'thresholds' must be a mapping with 'review' and/or 'block'");
    int rc = rk_yn_check_keys(&f->doc, val, keys, 2, L->diag);
    if (rc)
        return rc;
    rk_thresholds *th = &L->rs->thresholds;
    for (int i = 0; i < 2; i++) {
        yaml_node_t *n = rk_yn_get(&f->doc, val, keys[i], NULL);
        if (!n)
            continue;
        double v;
        if (!rk_yn_number(n, &v))
            return rk_yn_fail(&f->doc, n, L->diag, RK_EINVAL, "'%s' must be a number", keys[i]);
        if (v < -SCORE_MAX || v > SCORE_MAX)
            return rk_yn_fail(&f->doc, n, L->diag, RK_ERANGE,
                              "'%s' is out of range (at most %g either way)", keys[i], SCORE_MAX);
        if (i == 0) {
            th->has_review = true;
            th->review = v;
        } else {
            th->has_block = true;
            th->block = v;
        }
    }
    if (th->has_review && th->has_block && th->review > th->block)
        return rk_yn_fail(&f->doc, rk_yn_get(&f->doc, val, "review", NULL), L->diag, RK_EINVAL,
                          "thresholds: review (%g) is above block (%g)", th->review, th->block);
    return 0;
}

/* ---- lists ------------------------------------------------------------ */

/* Adds the values of a list file: one a line, surrounding white space
 * trimmed, blank lines and lines starting with '#' skipped. Lines are taken as
 * text: a list of card tokens like 000123 must not lose its zeros, and an int
 * field still matches a line holding its plain decimal. */
static int add_file_lines(rk_list *list, const char *text, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && text[e] != '\n')
            e++;
        size_t b = i, z = e;
        while (b < z && (text[b] == ' ' || text[b] == '\t' || text[b] == '\r'))
            b++;
        while (z > b && (text[z - 1] == ' ' || text[z - 1] == '\t' || text[z - 1] == '\r'))
            z--;
        if (z > b && text[b] != '#' && rk_list_add(list, text + b, z - b))
            return RK_ENOMEM;
        i = e + 1;
    }
    return 0;
}

static int list_from_file(loader *L, file_ctx *f, const char *name, yaml_node_t *pathn,
                          rk_list *list)
{
    const char *rel = rk_yn_str(pathn);
    if (!rel || rk_yn_is_null(pathn) || strlen(rel) != pathn->data.scalar.length)
        return rk_yn_fail(&f->doc, pathn, L->diag, RK_EPARSE,
                          "list '%s': 'file' must be a path", name);
    char *path = rk_load_join_path(f->dir, rel), *text = NULL;
    if (!path)
        return RK_ENOMEM;
    size_t len;
    const char *why = NULL;
    int rc = rk_load_read_file(path, LIST_FILE_MAX, &text, &len, &why);
    free(path);
    if (rc == RK_EIO)
        return rk_yn_fail(&f->doc, pathn, L->diag, RK_EIO, "cannot read list file '%s': %s", rel,
                          why);
    if (rc == 0)
        rc = add_file_lines(list, text, len);
    free(text);
    return rc;
}

static int list_inline(loader *L, file_ctx *f, const char *name, yaml_node_t *seq, rk_list *list)
{
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *n = rk_yn_node(&f->doc, *it);
        const char *s = rk_yn_str(n);
        if (!s)
            return rk_yn_fail(&f->doc, n, L->diag, RK_EPARSE,
                              "list '%s': entries must be strings or numbers, found %s", name,
                              rk_yn_kind(n));
        if (rk_yn_is_null(n))
            return rk_yn_fail(&f->doc, n, L->diag, RK_EINVAL, "list '%s': empty entry", name);
        int64_t v;
        int rc = rk_yn_int(n, &v) ? rk_list_add_int(list, v)
                                  : rk_list_add(list, s, n->data.scalar.length);
        if (rc)
            return rc;
    }
    return 0;
}

/* A list's value: an inline sequence, {file: path} or {dynamic: true, ...}
 * (load_state.c). def->list is created here for the static kinds. */
static int list_body(loader *L, file_ctx *f, rk_list_def *def, yaml_node_t *val)
{
    static const char *const keys[] = {"file", "dynamic", "add_on_fraud", "ttl"};
    const char *name = def->name;
    if (val->type != YAML_SEQUENCE_NODE && val->type != YAML_MAPPING_NODE)
        return rk_yn_fail(&f->doc, val, L->diag, RK_EPARSE,
                          "list '%s' must be a sequence of values, {file: path} or "
                          "{dynamic: true}",
                          name);
    int rc = val->type == YAML_MAPPING_NODE
                 ? rk_yn_check_keys(&f->doc, val, keys, sizeof keys / sizeof *keys, L->diag)
                 : 0;
    if (rc)
        return rc;
    yaml_node_t *dyn = rk_yn_get(&f->doc, val, "dynamic", NULL);
    bool dynamic = false;
    if (dyn && !rk_yn_bool(dyn, &dynamic))
        return rk_yn_fail(&f->doc, dyn, L->diag, RK_EINVAL,
                          "list '%s': 'dynamic' must be true or false", name);
    if (dynamic)
        return rk_load_dynlist(L, f, def, val);
    if (!(def->list = rk_list_new()))
        return RK_ENOMEM;
    if (val->type == YAML_SEQUENCE_NODE)
        return list_inline(L, f, name, val, def->list);
    for (size_t i = 2; i < sizeof keys / sizeof *keys; i++) {
        yaml_node_t *k = NULL;
        if (rk_yn_get(&f->doc, val, keys[i], &k))
            return rk_yn_fail(&f->doc, k, L->diag, RK_EPARSE,
                              "list '%s': '%s' applies to dynamic lists only (add 'dynamic: "
                              "true')",
                              name, keys[i]);
    }
    yaml_node_t *file = rk_yn_get(&f->doc, val, "file", NULL);
    if (!file)
        return rk_yn_fail(&f->doc, val, L->diag, RK_EPARSE,
                          "list '%s' needs 'file' (or an inline sequence of values)", name);
    return list_from_file(L, f, name, file, def->list);
}

static int do_lists(loader *L, file_ctx *f, yaml_node_t *key, yaml_node_t *val)
{
    if (rk_yn_is_empty(val))
        return 0;
    if (val->type != YAML_MAPPING_NODE)
        return rk_yn_fail(&f->doc, val, L->diag, RK_EPARSE,
                          "'lists' must be a mapping of list names to lists");
    rk_ruleset *rs = L->rs;
    for (yaml_node_pair_t *p = val->data.mapping.pairs.start; p < val->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = rk_yn_node(&f->doc, p->key), *body = rk_yn_node(&f->doc, p->value);
        const char *name = rk_yn_str(kn);
        if (!name)
            return rk_yn_fail(&f->doc, kn, L->diag, RK_EPARSE, "expected a list name, found %s",
                              rk_yn_kind(kn));
        size_t len = kn->data.scalar.length;
        if (!rk_load_is_ident(name, len))
            return rk_yn_fail(&f->doc, kn, L->diag, RK_EINVAL,
                              "invalid list name '%s' (use letters, digits and _, not starting "
                              "with a digit)",
                              name);
        if (len > RK_NAME_MAX)
            return rk_yn_fail(&f->doc, kn, L->diag, RK_EINVAL,
                              "list name '%s' is too long (at most %d bytes)", name, RK_NAME_MAX);
        for (int i = 0; i < rs->nlists; i++) {
            if (strcmp(rs->lists[i].name, name) == 0) {
                rk_srcpos first = rs->lists[i].pos;
                return rk_yn_fail(&f->doc, kn, L->diag, RK_EEXISTS,
                                  "duplicate list '%s' (first defined at %s:%d:%d)", name,
                                  rk_load_file_name(L, first.file), first.line, first.col);
            }
        }
        if (rk_load_grow((void **)&rs->lists, &L->cap_lists, rs->nlists, sizeof *rs->lists))
            return RK_ENOMEM;
        rk_list_def *def = &rs->lists[rs->nlists];
        *def = (rk_list_def){.name = strdup(name), .dyn_index = -1, .pos = rk_load_pos(f, kn)};
        /* Counted before it is filled, so a failure below still frees it. */
        rs->nlists++;
        if (!def->name)
            return RK_ENOMEM;
        int rc = list_body(L, f, def, body);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- rules ------------------------------------------------------------ */

/* The rule's `action:` or `score:`. */
static int rule_outcome(loader *L, file_ctx *f, const char *id, yaml_node_t *map, rk_rule *r)
{
    yaml_node_t *akey = NULL, *skey = NULL;
    yaml_node_t *action = rk_yn_get(&f->doc, map, "action", &akey);
    yaml_node_t *score = rk_yn_get(&f->doc, map, "score", &skey);
    if (action && score) {
        yaml_node_t *later = rk_yn_line(akey) > rk_yn_line(skey) ||
                                     (rk_yn_line(akey) == rk_yn_line(skey) &&
                                      rk_yn_col(akey) > rk_yn_col(skey))
                                 ? akey
                                 : skey;
        return rk_yn_fail(&f->doc, later, L->diag, RK_EPARSE,
                          "rule '%s': has both 'action' and 'score'", id);
    }
    if (!action && !score)
        return rk_yn_fail(&f->doc, map, L->diag, RK_EPARSE,
                          "rule '%s': needs either 'action' or 'score'", id);
    if (action) {
        const char *s = rk_yn_str(action);
        int v = s ? rk_verdict_from_name(s) : -1;
        if (v < 0)
            return rk_yn_fail(&f->doc, action, L->diag, RK_EINVAL,
                              "unknown action '%s' (expected allow, review or block)",
                              s ? s : rk_yn_kind(action));
        r->action = v;
        return 0;
    }
    double v;
    if (!rk_yn_number(score, &v))
        return rk_yn_fail(&f->doc, score, L->diag, RK_EINVAL, "rule '%s': 'score' must be a number",
                          id);
    if (v < -SCORE_MAX || v > SCORE_MAX)
        return rk_yn_fail(&f->doc, score, L->diag, RK_ERANGE,
                          "rule '%s': score is out of range (at most %g either way)", id,
                          SCORE_MAX);
    r->action = RK_RULE_SCORE;
    r->score = v;
    return 0;
}

/* The rule's id: present, well-formed, unique. */
static int rule_id(loader *L, file_ctx *f, yaml_node_t *map, const char **out)
{
    rk_ruleset *rs = L->rs;
    yaml_node_t *idn = rk_yn_get(&f->doc, map, "id", NULL);
    if (!idn)
        return rk_yn_fail(&f->doc, map, L->diag, RK_EPARSE, "rule needs an 'id'");
    const char *id = rk_yn_str(idn);
    if (!id)
        return rk_yn_fail(&f->doc, idn, L->diag, RK_EPARSE, "rule 'id' must be text, found %s",
                          rk_yn_kind(idn));
    if (!name_chars(id, idn->data.scalar.length, NULL))
        return rk_yn_fail(&f->doc, idn, L->diag, RK_EINVAL,
                          "invalid rule id '%s' (use lowercase letters, digits and _)", id);
    if (idn->data.scalar.length > RK_NAME_MAX)
        return rk_yn_fail(&f->doc, idn, L->diag, RK_EINVAL,
                          "rule id '%s' is too long (at most %d bytes)", id, RK_NAME_MAX);
    for (int i = 0; i < rs->nrules; i++) {
        if (strcmp(rs->rules[i].id, id) == 0) {
            rk_srcpos first = rs->rules[i].pos;
            return rk_yn_fail(&f->doc, idn, L->diag, RK_EEXISTS,
                              "duplicate rule id '%s' (first defined at %s:%d:%d)", id,
                              rk_load_file_name(L, first.file), first.line, first.col);
        }
    }
    *out = id;
    return 0;
}

/* Checks one rule and appends it with its condition's text, compiled later. */
static int add_rule(loader *L, file_ctx *f, yaml_node_t *map)
{
    static const char *const keys[] = {"id", "when", "action", "score", "shadow", "reason"};
    rk_ruleset *rs = L->rs;
    if (map->type != YAML_MAPPING_NODE)
        return rk_yn_fail(&f->doc, map, L->diag, RK_EPARSE,
                          "each rule must be a mapping with 'id', 'when' and 'action' or "
                          "'score'");
    if (rs->nrules >= RK_MAX_RULES)
        return rk_yn_fail(&f->doc, map, L->diag, RK_ETOOBIG, "too many rules (at most %d)",
                          RK_MAX_RULES);
    int rc = rk_yn_check_keys(&f->doc, map, keys, sizeof keys / sizeof *keys, L->diag);
    const char *id = NULL;
    if (rc || (rc = rule_id(L, f, map, &id)))
        return rc;

    rk_rule r = {.pos = rk_load_pos(f, rk_yn_get(&f->doc, map, "id", NULL))};
    yaml_node_t *when = rk_yn_get(&f->doc, map, "when", NULL);
    if (!when)
        return rk_yn_fail(&f->doc, map, L->diag, RK_EPARSE,
                          "rule '%s': needs a 'when' expression", id);
    if (when->type != YAML_SCALAR_NODE)
        return rk_yn_fail(&f->doc, when, L->diag, RK_EPARSE,
                          "rule '%s': 'when' must be an expression, found %s", id,
                          rk_yn_kind(when));
    if (rk_yn_is_null(when))
        return rk_yn_fail(&f->doc, when, L->diag, RK_EPARSE, "rule '%s': 'when' is empty", id);
    if ((rc = rule_outcome(L, f, id, map, &r)))
        return rc;
    yaml_node_t *shadow = rk_yn_get(&f->doc, map, "shadow", NULL);
    if (shadow && !rk_yn_bool(shadow, &r.shadow))
        return rk_yn_fail(&f->doc, shadow, L->diag, RK_EINVAL,
                          "rule '%s': 'shadow' must be true or false", id);
    yaml_node_t *reason = rk_yn_get(&f->doc, map, "reason", NULL);
    if (reason && !rk_yn_is_null(reason) && !rk_yn_str(reason))
        return rk_yn_fail(&f->doc, reason, L->diag, RK_EPARSE,
                          "rule '%s': 'reason' must be text, found %s", id, rk_yn_kind(reason));

    if (rk_load_grow((void **)&rs->rules, &L->cap_rules, rs->nrules, sizeof *rs->rules) ||
        rk_load_grow((void **)&L->src, &L->cap_src, rs->nrules, sizeof *L->src))
        return RK_ENOMEM;
    int kept = rk_load_keep_expr(f, when, &L->src[rs->nrules]);
    r.id = strdup(id);
    if (reason && !rk_yn_is_null(reason))
        r.reason = strdup(rk_yn_str(reason));
    rs->rules[rs->nrules++] = r; /* owned by rs from here, even if a copy failed */
    if (kept || !r.id || (reason && !rk_yn_is_null(reason) && !r.reason))
        return RK_ENOMEM;
    rs->has_shadow |= r.shadow;
    return 0;
}

static int do_rules(loader *L, file_ctx *f, yaml_node_t *key, yaml_node_t *val)
{
    if (rk_yn_is_empty(val))
        return 0;
    if (val->type != YAML_SEQUENCE_NODE)
        return rk_yn_fail(&f->doc, val, L->diag, RK_EPARSE, "'rules' must be a sequence of rules");
    for (yaml_node_item_t *it = val->data.sequence.items.start; it < val->data.sequence.items.top;
         it++) {
        int rc = add_rule(L, f, rk_yn_node(&f->doc, *it));
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- files and includes ----------------------------------------------- */

static int load_text(loader *L, int file, const char *dir, const char *text, size_t len,
                     bool top);

/* A canonical name for the file at path, to recognise it when it comes again. */
static char *identity_of(const char *path)
{
    char *real = realpath(path, NULL);
    return real ? real : strdup(path);
}

static bool seen_before(const loader *L, const char *identity)
{
    for (int i = 0; i < L->nseen; i++)
        if (strcmp(L->seen[i], identity) == 0)
            return true;
    return false;
}

/* "include cycle: a.yaml -> b.yaml -> a.yaml", from the repeated file on. */
static int cycle_error(loader *L, file_ctx *f, yaml_node_t *at, int from, const char *again)
{
    char msg[sizeof L->diag->msg];
    size_t off = (size_t)snprintf(msg, sizeof msg, "include cycle:");
    for (int i = from; i < L->depth && off < sizeof msg; i++)
        off += (size_t)snprintf(msg + off, sizeof msg - off, " %s ->",
                                rk_load_file_name(L, L->chain[i].file));
    if (off < sizeof msg)
        snprintf(msg + off, sizeof msg - off, " %s", again);
    return rk_yn_fail(&f->doc, at, L->diag, RK_EINVAL, "%s", msg);
}

static int include_one(loader *L, file_ctx *f, yaml_node_t *pathn)
{
    const char *rel = rk_yn_str(pathn);
    if (!rel || rk_yn_is_null(pathn) || strlen(rel) != pathn->data.scalar.length)
        return rk_yn_fail(&f->doc, pathn, L->diag, RK_EPARSE,
                          "'include' entries must be file paths, found %s", rk_yn_kind(pathn));
    if (L->depth > INCLUDE_DEPTH_MAX)
        return rk_yn_fail(&f->doc, pathn, L->diag, RK_ETOOBIG,
                          "includes are nested too deeply (at most %d levels)",
                          INCLUDE_DEPTH_MAX);
    char *path = rk_load_join_path(f->dir, rel), *text = NULL, *identity = NULL, *dir = NULL;
    if (!path)
        return RK_ENOMEM;
    size_t len;
    const char *why = NULL;
    int rc = rk_load_read_file(path, RULE_FILE_MAX, &text, &len, &why);
    if (rc == RK_EIO)
        rc = rk_yn_fail(&f->doc, pathn, L->diag, RK_EIO, "cannot read included file '%s': %s",
                        rel, why);
    if (!rc && !(identity = identity_of(path)))
        rc = RK_ENOMEM;
    for (int i = 0; !rc && i < L->depth; i++)
        if (L->chain[i].identity && strcmp(L->chain[i].identity, identity) == 0)
            rc = cycle_error(L, f, pathn, i, path);
    if (!rc && !seen_before(L, identity)) {
        int file = add_file(L, path);
        rc = file < 0 ? file
                      : rk_load_grow((void **)&L->seen, &L->cap_seen, L->nseen, sizeof *L->seen);
        if (!rc) {
            L->seen[L->nseen++] = identity;
            L->chain[L->depth++] = (chain_link){.identity = identity, .file = file};
            identity = NULL; /* now owned by L->seen */
            rc = (dir = dir_of(path)) ? load_text(L, file, dir, text, len, false) : RK_ENOMEM;
            L->depth--;
        }
    }
    free(dir);
    free(identity);
    free(text);
    free(path);
    return rc;
}

static int do_include(loader *L, file_ctx *f, yaml_node_t *key, yaml_node_t *val)
{
    if (rk_yn_is_empty(val))
        return 0;
    if (val->type != YAML_SEQUENCE_NODE)
        return rk_yn_fail(&f->doc, val, L->diag, RK_EPARSE,
                          "'include' must be a sequence of file paths");
    for (yaml_node_item_t *it = val->data.sequence.items.start; it < val->data.sequence.items.top;
         it++) {
        int rc = include_one(L, f, rk_yn_node(&f->doc, *it));
        if (rc)
            return rc;
    }
    return 0;
}

/* The top-level keys of a rule file, in one table: the handler of each, and
 * whether an included file may use it. */
static const struct top_key {
    const char *name;
    bool top_only; /* only the top-level file decides its identity, thresholds and model */
    int (*fn)(loader *L, file_ctx *f, yaml_node_t *key, yaml_node_t *val);
} top_keys[] = {
    {"ruleset", true, do_ruleset},   {"version", true, do_version},
    {"schema", false, do_schema},    {"thresholds", true, do_thresholds},
    {"lists", false, do_lists},      {"counters", false, rk_load_counters},
    {"model", true, rk_load_model},  {"rules", false, do_rules},
    {"include", false, do_include},
};
#define NTOP_KEYS (sizeof top_keys / sizeof *top_keys)

static const struct top_key *top_key(const char *name)
{
    for (size_t i = 0; i < NTOP_KEYS; i++)
        if (strcmp(top_keys[i].name, name) == 0)
            return &top_keys[i];
    return NULL;
}

static int walk_file(loader *L, file_ctx *f, yaml_node_t *root)
{
    const char *names[NTOP_KEYS];
    for (size_t i = 0; i < NTOP_KEYS; i++)
        names[i] = top_keys[i].name;
    if (!root)
        return f->top ? rk_yn_fail(&f->doc, NULL, L->diag, RK_EPARSE,
                                   "the rule file is empty (it needs at least 'ruleset' and "
                                   "'version')")
                      : 0;
    if (root->type != YAML_MAPPING_NODE)
        return rk_yn_fail(&f->doc, root, L->diag, RK_EPARSE,
                          "a rule file must be a mapping of keys (ruleset, version, rules, ...), "
                          "found %s",
                          rk_yn_kind(root));
    int rc = rk_yn_check_keys(&f->doc, root, names, NTOP_KEYS, L->diag);
    if (rc)
        return rc;
    yaml_node_pair_t *start = root->data.mapping.pairs.start, *end = root->data.mapping.pairs.top;
    for (yaml_node_pair_t *p = start; p < end; p++) {
        yaml_node_t *kn = rk_yn_node(&f->doc, p->key);
        if (!f->top && top_key(rk_yn_str(kn))->top_only)
            return rk_yn_fail(&f->doc, kn, L->diag, RK_EPARSE,
                              "'%s' is only allowed in the top-level rule file", rk_yn_str(kn));
    }
    /* Includes first, wherever the key is written: their rules come first. */
    yaml_node_t *ikey = NULL, *inc = rk_yn_get(&f->doc, root, "include", &ikey);
    if (inc && (rc = do_include(L, f, ikey, inc)))
        return rc;
    for (yaml_node_pair_t *p = start; p < end; p++) {
        yaml_node_t *kn = rk_yn_node(&f->doc, p->key);
        const struct top_key *k = top_key(rk_yn_str(kn));
        if (k->fn != do_include && (rc = k->fn(L, f, kn, rk_yn_node(&f->doc, p->value))))
            return rc;
    }
    if (f->top) {
        if (!L->rs->name)
            return rk_yn_fail(&f->doc, root, L->diag, RK_EPARSE, "missing required key 'ruleset'");
        if (!L->rs->version)
            return rk_yn_fail(&f->doc, root, L->diag, RK_EPARSE, "missing required key 'version'");
    }
    return 0;
}

/* Parses and walks one file; dir is where its relative paths start. */
static int load_text(loader *L, int file, const char *dir, const char *text, size_t len,
                     bool top)
{
    file_ctx f = {.file = file, .dir = dir, .top = top};
    int rc = rk_yn_parse(&f.doc, rk_load_file_name(L, file), text, len, L->diag);
    if (rc == 0) {
        rc = walk_file(L, &f, rk_yn_root(&f.doc));
        rk_yn_free(&f.doc);
    }
    return rc;
}

/* ---- phase two: symbols and compiling --------------------------------- */

int rk_load_keep_expr(file_ctx *f, const yaml_node_t *n, expr_src *out)
{
    *out = (expr_src){.len = n->data.scalar.length, .file = f->file};
    rk_yn_text_pos(&f->doc, n, &out->line, &out->col, &out->cont_col);
    out->text = memdup0(rk_yn_str(n), out->len);
    return out->text ? 0 : RK_ENOMEM;
}

int rk_load_compile(loader *L, const expr_src *s, rk_type want, int nvisible, const char *why,
                    const char *msg, rk_expr **out)
{
    const rk_ruleset *rs = L->rs;
    rk_expr_env env = {.syms = rs->syms,
                       .nsyms = rs->nsyms,
                       .lists = rs->list_env,
                       .nlists = rs->nlists,
                       .file = rk_load_file_name(L, s->file),
                       .line = s->line,
                       .col = s->col,
                       .cont_col = s->cont_col,
                       .nvisible = nvisible,
                       .hidden_why = why,
                       .hidden_msg = msg};
    return rk_expr_compile(s->text, s->len, &env, want, out, L->diag);
}

/* What expressions resolve names against: the fields, then the counters, then
 * model.score (slot = index), and every list with how `in` reaches its
 * members. model.score is a name even without a model file (rules then
 * cannot read it), so that reading it says what is missing rather than
 * "unknown field". */
static int build_env(loader *L)
{
    rk_ruleset *rs = L->rs;
    rs->model_slot = rs->counter_base + rs->ncounters;
    rs->nsyms = rs->model_slot + 1;
    rs->syms = calloc((size_t)rs->nsyms, sizeof *rs->syms);
    rs->list_env = calloc((size_t)rs->nlists + 1, sizeof *rs->list_env);
    if (!rs->syms || !rs->list_env)
        return RK_ENOMEM;
    for (int i = 0; i < RK_F__STD; i++)
        rs->syms[i] = (rk_sym){.name = rk_field_name(i), .type = rk_field_type(i), .slot = i};
    for (int i = 0; i < rs->schema.n; i++)
        rs->syms[RK_F__STD + i] = (rk_sym){
            .name = rs->schema.f[i].name, .type = rs->schema.f[i].type, .slot = RK_F__STD + i};
    for (int i = 0; i < rs->ncounters; i++)
        rs->syms[rs->counter_base + i] = (rk_sym){.name = rk_counters_def(rs->counters, i)->name,
                                                  .type = RK_T_INT,
                                                  .slot = rs->counter_base + i};
    rs->syms[rs->model_slot] =
        (rk_sym){.name = "model.score", .type = RK_T_FLOAT, .slot = rs->model_slot};
    for (int i = 0; i < rs->nlists; i++)
        rs->list_env[i] = (rk_named_list){.name = rs->lists[i].name,
                                          .list = rs->lists[i].list,
                                          .dynamic = rs->lists[i].dynamic,
                                          .dyn_index = rs->lists[i].dyn_index};
    return 0;
}

static int finish(loader *L)
{
    rk_ruleset *rs = L->rs;
    int rc = rk_load_state_resolve(L);
    if (!rc)
        rc = build_env(L);
    if (!rc)
        rc = rk_load_state_compile(L);
    if (!rc)
        rc = rk_load_model_compile(L);
    /* Rules read everything, model.score only when a model file gives it. */
    int nvisible = rs->model ? 0 : rs->model_slot;
    for (int i = 0; !rc && i < rs->nrules; i++)
        rc = rk_load_compile(L, &L->src[i], RK_T_BOOL, nvisible, NULL, NO_MODEL_MSG,
                             &rs->rules[i].when);
    if (rc)
        return rc;
    size_t n = strlen(rs->name) + strlen(rs->version) + 2;
    if (!(rs->label = malloc(n)))
        return RK_ENOMEM;
    snprintf(rs->label, n, "%s@%s", rs->name, rs->version);
    return 0;
}

/* Loads the top file from text; shown is its name in diagnostics, identity
 * its canonical path (NULL for text that came from memory: its relative paths
 * then start from the current directory). */
static int load_top(const char *shown, char *identity, const char *text, size_t len,
                    rk_ruleset **out, rk_diag *diag)
{
    loader L = {.diag = diag};
    rk_diag_clear(diag);
    int rc = (L.rs = calloc(1, sizeof *L.rs)) ? 0 : RK_ENOMEM;
    if (!rc)
        rc = add_file(&L, shown) < 0 ? RK_ENOMEM : 0;
    if (!rc && identity) {
        rc = rk_load_grow((void **)&L.seen, &L.cap_seen, 0, sizeof *L.seen);
        if (!rc) {
            L.seen[L.nseen++] = identity;
            identity = NULL;
        }
    }
    char *dir = NULL;
    if (!rc && !(dir = L.nseen ? dir_of(shown) : strdup("")))
        rc = RK_ENOMEM;
    if (!rc) {
        L.chain[L.depth++] = (chain_link){.identity = L.nseen ? L.seen[0] : NULL, .file = 0};
        rc = load_text(&L, 0, dir, text, len, true);
    }
    free(dir);
    if (!rc)
        rc = finish(&L);
    if (rc == RK_ENOMEM && diag && !diag->msg[0])
        rk_diag_set(diag, shown, 0, 0, "out of memory while loading the rule set");
    for (int i = 0; L.rs && i < L.rs->nrules; i++)
        free(L.src[i].text);
    free(L.src);
    rk_load_state_free(&L);
    rk_load_model_free(&L);
    for (int i = 0; i < L.nseen; i++)
        free(L.seen[i]);
    free(L.seen);
    free(identity);
    if (rc) {
        rk_ruleset_free(L.rs);
        return rc;
    }
    *out = L.rs;
    return 0;
}

int rk_ruleset_load(const char *path, rk_ruleset **out, rk_diag *diag)
{
    char *text = NULL;
    size_t len = 0;
    const char *why = NULL;
    int rc = rk_load_read_file(path, RULE_FILE_MAX, &text, &len, &why);
    if (rc) {
        if (rc == RK_EIO)
            rk_diag_set(diag, path, 0, 0, "cannot read rule file: %s", why);
        else
            rk_diag_set(diag, path, 0, 0, "out of memory while loading the rule set");
        return rc;
    }
    char *identity = identity_of(path);
    rc = identity ? load_top(path, identity, text, len, out, diag) : RK_ENOMEM;
    free(text);
    return rc;
}

int rk_ruleset_load_mem(const char *name, const char *text, size_t len, rk_ruleset **out,
                        rk_diag *diag)
{
    return load_top(name ? name : "<memory>", NULL, text, len, out, diag);
}
