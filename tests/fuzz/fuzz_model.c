/* libFuzzer target for the model loaders, on every input:
 *   - as an .rmdl file, as is: the checksum turns away nearly everything,
 *     which checks the header and trailer paths;
 *   - as an .rmdl file with its checksum made right (the trailer appended or
 *     its CRC recomputed), so that the body parser and the tree validation
 *     see the mutations;
 *   - as JSON for the importer (XGBoost or logistic regression).
 * A model that loads is scored on a few feature vectors (all missing, zeros,
 * infinities, values from the input): predict and explain must agree on the
 * margin and the contributions must add up to it; and it must encode to bytes
 * that load again and encode to the same bytes. A failure must leave a
 * message in the diag.
 *
 *   build-fuzz/fuzz_model -max_len=65536 tests/fuzz/corpus/model */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "model/model.h"
#include "model/model_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static void score(const rk_model *m, const uint8_t *data, size_t size)
{
    size_t nf = rk_model_nfeatures(m);
    float *x = malloc(nf * sizeof *x);
    double *c = malloc((nf + 1) * sizeof *c);
    rk_model_contrib *top = malloc(nf * sizeof *top);
    for (int v = 0; v < 5; v++) {
        for (size_t i = 0; i < nf; i++) {
            switch (v) {
            case 0:
                x[i] = NAN;
                break;
            case 1:
                x[i] = 0;
                break;
            case 2:
                x[i] = i % 2 ? INFINITY : -INFINITY;
                break;
            default: /* bytes of the input, as floats */
                x[i] = 0;
                if (size >= 4) {
                    size_t at = (i * 4 + (size_t)v * 7) % (size - 3);
                    memcpy(&x[i], data + at, 4);
                }
            }
        }
        double margin;
        double p = rk_model_predict(m, x, &margin);
        double e = rk_model_explain(m, x, c);
        check(e == margin || (isnan(e) && isnan(margin)));
        check(isnan(p) || (p >= 0 && p <= 1));
        if (isfinite(margin)) {
            double sum = 0, mag = 1;
            for (size_t i = 0; i <= nf; i++) {
                sum += c[i];
                mag += fabs(c[i]);
            }
            check(!isfinite(sum) || fabs(sum - margin) <= 1e-9 * mag);
        }
        size_t n = rk_model_top(m, c, nf, top);
        check(n <= nf);
        for (size_t i = 1; i < n; i++)
            check(fabs(top[i - 1].value) >= fabs(top[i].value));
    }
    free(x);
    free(c);
    free(top);
}

/* Encodes m, loads the bytes, encodes again: same bytes. */
static void round_trip(const rk_model *m)
{
    uint8_t *a, *b;
    size_t alen, blen;
    if (rk_model_encode(m, &a, &alen) < 0)
        return;
    rk_model *back = NULL;
    rk_diag diag;
    check(rk_model_load_mem("again.rmdl", a, alen, &back, &diag) == 0);
    check(rk_model_encode(back, &b, &blen) == 0);
    check(alen == blen && memcmp(a, b, alen) == 0);
    free(a);
    free(b);
    rk_model_free(back);
}

static void try_load(const uint8_t *buf, size_t len)
{
    rk_model *m = NULL;
    rk_diag diag;
    rk_diag_clear(&diag);
    int rc = rk_model_load_mem("fuzz.rmdl", buf, len, &m, &diag);
    if (rc < 0) {
        check(m == NULL && diag.msg[0] != '\0');
        return;
    }
    score(m, buf, len);
    round_trip(m);
    rk_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_load(data, size);

    /* The same bytes with a valid checksum: recomputed in place when the
     * input already ends like an .rmdl file, appended otherwise. */
    static const uint8_t key[8] = {0xa6, 'c', 'r', 'c', '3', '2', 'c', 0xce};
    bool sealed = size >= 12 && memcmp(data + size - 12, key, 8) == 0;
    size_t len = sealed ? size : size + 12;
    uint8_t *buf = malloc(len);
    memcpy(buf, data, size);
    if (!sealed)
        memcpy(buf + size, key, 8);
    uint32_t crc = rk_model_crc32c(0, buf, len - 4);
    buf[len - 4] = (uint8_t)(crc >> 24);
    buf[len - 3] = (uint8_t)(crc >> 16);
    buf[len - 2] = (uint8_t)(crc >> 8);
    buf[len - 1] = (uint8_t)crc;
    try_load(buf, len);
    free(buf);

    rk_model *m = NULL;
    rk_diag diag;
    rk_diag_clear(&diag);
    if (rk_model_import_mem("fuzz.json", (const char *)data, size, &m, &diag) == 0) {
        score(m, data, size);
        round_trip(m);
        rk_model_free(m);
    } else {
        check(m == NULL && diag.msg[0] != '\0');
    }
    return 0;
}
