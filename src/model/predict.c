/* Prediction: a feature vector in, a probability (and the raw margin) out,
 * with no allocation and no lock.
 *
 * Trees are walked RK_MODEL_GROUP at a time in lock-step: each step advances
 * all eight by one level, for as many steps as the deepest of them has levels.
 * A leaf's children are the leaf itself, so a tree that reaches its leaf early
 * just stays there. The walk has no data-dependent branch (the left/right
 * choice is a conditional move), and eight independent chains of loads keep
 * the CPU busy while each waits on memory: this is what brings a depth-6 tree
 * well under the 25 ns budget of DESIGN.md section 8 (bench_model on the
 * 2-core VM, shipped model: 9.3 ns/tree/row with four chains, 6.6 with
 * eight).
 *
 * The leaf values are then added to the base margin in float32, one tree
 * after another in file order, which is exactly XGBoost's own arithmetic: the
 * margins agree bit for bit, not merely to 1e-6. */
#include <math.h>

#include "model/model_int.h"

static float trees_margin(const rk_model *m, const float *x)
{
    const rk_node *nodes = m->nodes;
    const uint32_t *root = m->root;
    float sum = m->base_margin;
    uint32_t t = 0, grouped = m->ntrees - m->ntrees % RK_MODEL_GROUP;
    for (; t < grouped; t += RK_MODEL_GROUP) {
        uint32_t a = root[t], b = root[t + 1], c = root[t + 2], d = root[t + 3];
        uint32_t e = root[t + 4], f = root[t + 5], g = root[t + 6], h = root[t + 7];
        for (int s = m->group_depth[t / RK_MODEL_GROUP]; s > 0; s--) {
            a = rk_model_step(nodes, x, a);
            b = rk_model_step(nodes, x, b);
            c = rk_model_step(nodes, x, c);
            d = rk_model_step(nodes, x, d);
            e = rk_model_step(nodes, x, e);
            f = rk_model_step(nodes, x, f);
            g = rk_model_step(nodes, x, g);
            h = rk_model_step(nodes, x, h);
        }
        sum += nodes[a].value;
        sum += nodes[b].value;
        sum += nodes[c].value;
        sum += nodes[d].value;
        sum += nodes[e].value;
        sum += nodes[f].value;
        sum += nodes[g].value;
        sum += nodes[h].value;
    }
    for (; t < m->ntrees; t++) {
        uint32_t a = root[t];
        for (int s = m->depth[t]; s > 0; s--)
            a = rk_model_step(nodes, x, a);
        sum += nodes[a].value;
    }
    return sum;
}

/* XGBoost's gblinear: bias plus base margin, then weight times value for each
 * feature present, all in float32. */
static float linear_margin(const rk_model *m, const float *x)
{
    float sum = m->bias + m->base_margin;
    for (uint32_t i = 0; i < m->nfeatures; i++)
        if (x[i] == x[i])
            sum += x[i] * m->weights[i];
    return sum;
}

double rk_model_sigmoid(double margin) { return 1.0 / (1.0 + exp(-margin)); }

double rk_model_predict(const rk_model *m, const float *x, double *margin)
{
    float mg = m->objective == RK_MODEL_TREES ? trees_margin(m, x) : linear_margin(m, x);
    if (margin)
        *margin = mg;
    return rk_model_sigmoid(mg);
}
