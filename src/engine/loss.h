/* Loss helpers shared by vene_loss_cross_entropy and the trainer's objectives. */
#ifndef VENE_ENGINE_LOSS_H
#define VENE_ENGINE_LOSS_H

#include <stdint.h>

#include "vene.h"

/* log(sum(exp(row))) in double; *argmax (may be NULL) gets the largest entry's index. */
double vene_logsumexp(const float *row, int64_t V, int64_t *argmax);
/* Cross-entropy of one row against class y; grad (NULL = not wanted) gets
 * scale * (softmax - onehot(y)); *hit (may be NULL) = argmax == y. */
double vene_loss_row(const float *row, int64_t V, int32_t y, float *grad, double scale, int *hit);

#endif
