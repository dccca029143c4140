/* Which passes and rows an intervention acts on while generating: pyvene's gating
 * (spec §10) narrowed by a per-intervention schedule (vene_intervenable_set_schedule). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine.h"

void vene_schedule_clear(vene_schedule *s) {
    free((void *)s->list);
    free((void *)s->rows);
    memset(s, 0, sizeof *s);
}

int vene_intervenable_set_schedule(vene_intervenable *iv, int i, const vene_schedule *s, vene_error *err) {
    if (i < 0 || i >= iv->n) return vene_errorf(err, VENE_ERR_RANGE, "intervention %d out of range (%d configured)", i, iv->n);
    if (s) {
        if (s->steps < VENE_STEPS_ALL || s->steps > VENE_STEPS_FN)
            return vene_errorf(err, VENE_ERR_ARG, "schedule of intervention %d: unknown steps kind %d", i, s->steps);
        if (s->steps == VENE_STEPS_LIST && (s->n_list < 0 || (s->n_list && !s->list)))
            return vene_errorf(err, VENE_ERR_ARG, "schedule of intervention %d: list of %d steps without steps", i, s->n_list);
        if (s->steps == VENE_STEPS_RANGE && (s->first < 0 || (s->last >= 0 && s->last < s->first)))
            return vene_errorf(err, VENE_ERR_ARG, "schedule of intervention %d: range %d..%d is empty or negative", i, s->first,
                               s->last);
        if (s->steps == VENE_STEPS_FN && !s->fn)
            return vene_errorf(err, VENE_ERR_ARG, "schedule of intervention %d: VENE_STEPS_FN without a function", i);
        if (s->rows && s->n_rows <= 0)
            return vene_errorf(err, VENE_ERR_ARG, "schedule of intervention %d: rows given with n_rows %d", i, s->n_rows);
    }
    vene_schedule copy = {0};
    if (s) {
        copy = *s;
        copy.list = NULL;
        copy.rows = NULL;
        if (s->steps == VENE_STEPS_LIST && s->n_list) {
            int *l = malloc(sizeof(int) * (size_t)s->n_list);
            if (!l) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
            memcpy(l, s->list, sizeof(int) * (size_t)s->n_list);
            copy.list = l;
        }
        if (s->rows) {
            uint8_t *r = malloc((size_t)s->n_rows);
            if (!r) {
                free((void *)copy.list);
                return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
            }
            memcpy(r, s->rows, (size_t)s->n_rows);
            copy.rows = r;
        }
    }
    vene_schedule_clear(&iv->slots[i].sched);
    iv->slots[i].sched = copy;
    return VENE_OK;
}

static int step_listed(const vene_schedule *s, int step) {
    switch (s->steps) {
    case VENE_STEPS_LIST:
        for (int k = 0; k < s->n_list; k++)
            if (s->list[k] == step) return 1;
        return 0;
    case VENE_STEPS_RANGE: return step >= s->first && (s->last < 0 || step <= s->last);
    default: return 1;
    }
}

int vene_slot_rows(const vene_slot *s, int B, uint8_t *on) {
    const vene_intervenable *iv = s->owner;
    const vene_schedule *sc = &s->sched;
    int gen = iv->gen_mode;
    /* pyvene: with base locations, the prompt pass is intervened iff intervene_on_prompt and
     * the decoding steps iff not; without (None), every pass is */
    if (gen && s->base_loc.present && (iv->gen_step == 0) != (iv->gen_intervene_on_prompt != 0)) return 0;
    if (gen && !step_listed(sc, iv->gen_step)) return 0;
    int n = 0;
    for (int b = 0; b < B; b++) {
        int yes = !sc->rows || (b < sc->n_rows && sc->rows[b]);
        if (yes && gen && sc->steps == VENE_STEPS_FN)
            yes = sc->fn(sc->user, s->index, iv->gen_step, b, iv->gen_ids ? iv->gen_ids + (size_t)b * iv->gen_ld : NULL,
                         iv->gen_len) != 0;
        on[b] = (uint8_t)yes;
        n += yes;
    }
    return n;
}
