/* Explanations: how much each feature moved one prediction, for an analyst
 * reviewing a case.
 *
 * For trees this is Saabas's path attribution (XGBoost's pred_contribs with
 * approx_contribs=True): every node stores the expected value of its subtree
 * (the cover-weighted mean of its leaves, computed at import), and walking a
 * tree's decision path, each split's feature is credited with the change in
 * expected value from the node to the child taken. Per tree the credits
 * telescope to "leaf value - expected value of the root", so with the bias
 * (base margin plus every root's expected value) they add up to the margin.
 * Cheap (one path per tree, like a prediction) but not the exact Shapley
 * values: a feature high in a tree gets credit that TreeSHAP would share.
 *
 * For logistic regression a feature's contribution is weight * value.
 *
 * The credits are accumulated in double; the margin the predictor reports is
 * a float32 sum, so the bias also absorbs that rounding (a few 1e-7 at most)
 * and the parts add up to rk_model_predict's margin to double precision. */
#include <math.h>
#include <string.h>

#include "model/model_int.h"

double rk_model_explain(const rk_model *m, const float *x, double *contrib)
{
    uint32_t nf = m->nfeatures;
    memset(contrib, 0, (nf + 1) * sizeof *contrib);
    float margin;
    double base, parts = 0; /* parts: leaf values or weighted features, summed in double */
    if (m->objective == RK_MODEL_TREES) {
        const rk_node *nodes = m->nodes;
        margin = m->base_margin;
        base = m->base_margin;
        for (uint32_t t = 0; t < m->ntrees; t++) {
            uint32_t i = m->root[t];
            base += m->mean[i];
            /* As many steps as the tree is deep, like the predictor: from a
             * leaf a step stays put and credits feature 0 with 0, which
             * costs less than the mispredicted exit of a walk to the leaf. */
            for (int s = m->depth[t]; s > 0; s--) {
                uint32_t next = rk_model_step(nodes, x, i);
                contrib[nodes[i].feature & RK_NODE_FEATURE_MASK] +=
                    (double)m->mean[next] - (double)m->mean[i];
                i = next;
            }
            margin += nodes[i].value;
            parts += (double)nodes[i].value - (double)m->mean[m->root[t]];
        }
    } else {
        margin = m->bias + m->base_margin;
        base = (double)m->bias + (double)m->base_margin;
        for (uint32_t i = 0; i < nf; i++)
            if (x[i] == x[i]) {
                float p = x[i] * m->weights[i];
                margin += p;
                contrib[i] = p;
                parts += p;
            }
    }
    /* Here base + parts is the margin in exact arithmetic (parts being what
     * the contributions add up to); the difference to the float32 margin is
     * its rounding, which the bias takes. */
    double bias = base + ((double)margin - (base + parts));
    contrib[nf] = bias;
    return margin;
}

size_t rk_model_top(const rk_model *m, const double *contrib, size_t k, rk_model_contrib *out)
{
    size_t n = 0;
    if (k == 0)
        return 0;
    for (uint32_t i = 0; i < m->nfeatures; i++) {
        double v = contrib[i], a = fabs(v);
        if (v == 0 || v != v)
            continue;
        if (n == k && !(a > fabs(out[k - 1].value)))
            continue;
        size_t j = n < k ? n++ : k - 1;
        while (j > 0 && fabs(out[j - 1].value) < a) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = (rk_model_contrib){.feature = i, .value = v};
    }
    return n;
}
