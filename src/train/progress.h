/* A progress line on stderr: a bar with rate and ETA redrawn in place on a terminal,
 * plain lines at most every few seconds otherwise (logs stay readable). */
#ifndef VENE_TRAIN_PROGRESS_H
#define VENE_TRAIN_PROGRESS_H

#include <stdint.h>

typedef struct vene_progress {
    int tty, quiet;
    double t0, last;
    int64_t total;
    char label[48];
} vene_progress;

double vene_now(void);
void vene_progress_start(vene_progress *p, const char *label, int64_t total, int quiet);
/* extra: e.g. "loss 0.312 iia 0.91" (may be NULL). */
void vene_progress_update(vene_progress *p, int64_t done, const char *extra);
void vene_progress_end(vene_progress *p, const char *extra);

#endif
