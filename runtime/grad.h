/* grad.h — the training graph of a compiled model and its data: forward + backward graph
 * construction, parameter and batch loading from safetensors.
 * Ownership: value arrays returned by the loaders are malloc'ed, one per parameter or
 * input, and released with rt_values_free / free by the caller. */
#ifndef GPTC_RUNTIME_GRAD_H
#define GPTC_RUNTIME_GRAD_H

#include "frontend/frontend.h"
#include "ir/ir.h"
#include "runtime/safetensors.h"

/* Output indices of the training graph: loss (0), one gradient per parameter, one per probe. */
typedef struct {
    int loss_out;
    int *grad_out;
    int *probe_out;
} RtGradGraph;

/* Appends the backward pass to p->graph (gradients of every parameter), optimizes it and
 * refreshes p->probes[].node. 0, or -1 with a message. */
int rt_grad_build(Program *p, RtGradGraph *gg, char *err, size_t errlen);
void rt_grad_graph_free(RtGradGraph *gg);

/* values[i] = parameter i read from path (any float dtype, its declared shape). A missing
 * parameter, a wrong shape or a tensor the model does not declare is an error. */
int rt_params_load(const Program *p, const char *path, double **values, char *err, size_t errlen);
void rt_values_free(double **values, int n);

/* data[k] = INPUT leaf k (leaves[k]) read from the batch file by name; *count inputs. */
int rt_batch_load(const IrGraph *g, const char *path, int32_t **data, IrNode **leaves, int max, int *count,
                  char *err, size_t errlen);
int rt_batch_check_ids(const IrGraph *g, const char *path, int32_t *const *data, IrNode *const *leaves, int n,
                       char *err, size_t errlen);

#endif
