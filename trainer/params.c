/* params.c — parameters and batches read from safetensors files into a model's leaves. */
#include "trainer/trainer.h"
#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* values[i] = tensor i by its parameter's name. Every declared parameter must be in the
 * file with its shape, and nothing else; a tensor the model does not declare is reported
 * first (often a model/config mismatch). A gradient file has none of a frozen parameter
 * (values[i] NULL; a tensor named after one is refused). */
static int load_by_name(const Program *p, const char *path, bool grads, double **values, char *err, size_t errlen) {
    StFile f;
    if (st_open(&f, path, err, errlen) != 0) return -1;
    int rc = 0;
    for (int i = 0; i < p->nparams; i++) values[i] = NULL;
    for (int t = 0; t < f.ntensors && rc == 0; t++) {
        bool known = false;
        for (int i = 0; i < p->nparams && !known; i++)
            known = !strcmp(p->params[i].name, f.tensors[t].name) && (!grads || fe_param_trainable(&p->params[i]));
        if (!known) {
            snprintf(err, errlen, "%s: tensor '%s' is not a %s of this model", path, f.tensors[t].name,
                     grads ? "trainable parameter" : "parameter");
            rc = -1;
        }
    }
    for (int i = 0; i < p->nparams && rc == 0; i++) {
        const ParamDecl *d = &p->params[i];
        if (grads && !fe_param_trainable(d)) continue;
        values[i] = xmalloc(sizeof(double) * (size_t)fe_param_count(d));
        rc = st_read_f64(&f, d->name, d->ndim, d->shape, values[i], err, errlen);
    }
    st_close(&f);
    if (rc != 0) values_free(values, p->nparams);
    return rc;
}

int params_load(const Program *p, const char *path, double **values, char *err, size_t errlen) {
    return load_by_name(p, path, false, values, err, errlen);
}

int grads_load(const Program *p, const char *path, double **values, char *err, size_t errlen) {
    return load_by_name(p, path, true, values, err, errlen);
}

void values_free(double **values, int n) {
    for (int i = 0; i < n; i++) {
        free(values[i]);
        values[i] = NULL;
    }
}

/* The batch file holds an i32-convertible tensor for every INPUT leaf, by name, with the
 * leaf's shape; token ids must index the tables they are looked up in. */
int batch_load(const IrGraph *g, const char *path, int32_t **data, IrNode **leaves, int max, int *count,
                  char *err, size_t errlen) {
    StFile f;
    if (st_open(&f, path, err, errlen) != 0) return -1;
    int n = 0, rc = 0;
    for (int i = 0; i < g->n && rc == 0; i++) {
        IrNode *leaf = g->nodes[i];
        if (leaf->op != IR_INPUT) continue;
        if (n == max) {
            snprintf(err, errlen, "%s: the model has more than %d inputs", path, max);
            rc = -1;
            break;
        }
        data[n] = xmalloc(sizeof(int32_t) * (size_t)ir_numel(leaf));
        leaves[n] = leaf;
        rc = st_read_i32(&f, leaf->name, leaf->ndim, leaf->shape, data[n], err, errlen);
        n++;
    }
    st_close(&f);
    *count = n;
    if (rc == 0) rc = batch_check_ids(g, path, data, leaves, n, err, errlen);
    if (rc != 0) {
        for (int i = 0; i < n; i++) free(data[i]);
        *count = 0;
    }
    return rc;
}

/* Every id an INPUT feeds into a GATHER (as index) or CROSS_ENTROPY (as target) must be
 * below that table's rows / the logits' width. */
int batch_check_ids(const IrGraph *g, const char *path, int32_t *const *data, IrNode *const *leaves, int n,
                       char *err, size_t errlen) {
    for (int i = 0; i < g->n; i++) {
        const IrNode *u = g->nodes[i];
        if ((u->op != IR_GATHER && u->op != IR_CROSS_ENTROPY) || u->in[1]->op != IR_INPUT) continue;
        int64_t limit = u->op == IR_GATHER ? u->in[0]->shape[0] : u->in[0]->shape[1];
        for (int k = 0; k < n; k++) {
            if (leaves[k] != u->in[1]) continue;
            for (int64_t t = 0; t < ir_numel(leaves[k]); t++)
                if (data[k][t] < 0 || data[k][t] >= limit) {
                    snprintf(err, errlen, "%s: '%s' has id %d at position %lld, outside [0, %lld)", path,
                             leaves[k]->name, data[k][t], (long long)t, (long long)limit);
                    return -1;
                }
        }
    }
    return 0;
}
