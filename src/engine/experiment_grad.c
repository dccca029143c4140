/* run "backward" of the experiment contract (docs/experiment-format.md §8.2): the forward
 * with gradients, the loss, the backward, and the `loss` and `grad.<name>` outputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor.h"
#include "engine/engine.h"

int vene_exp_backward(vene_intervenable *iv, const cJSON *j, const vene_call *call, float *loss, vene_error *err) {
    const cJSON *emg = cJSON_GetObjectItemCaseSensitive(j, "enable_model_gradients");
    const cJSON *lj = cJSON_GetObjectItemCaseSensitive(j, "loss");
    if (emg && !cJSON_IsNull(emg) && !cJSON_IsBool(emg))
        return vene_errorf(err, VENE_ERR_ARG, "enable_model_gradients: expected true or false");
    if (!cJSON_IsObject(lj)) return vene_errorf(err, VENE_ERR_ARG, "loss: expected an object for run \"backward\"");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(lj, "type"), *on = cJSON_GetObjectItemCaseSensitive(lj, "on");
    if (!cJSON_IsString(type) || !cJSON_IsString(on))
        return vene_errorf(err, VENE_ERR_ARG, "loss: needs \"type\" (\"cross_entropy\" or \"sum\") and \"on\" (an output name)");
    int ce = !strcmp(type->valuestring, "cross_entropy");
    if (!ce && strcmp(type->valuestring, "sum"))
        return vene_errorf(err, VENE_ERR_ARG, "loss.type: unknown \"%s\" (expected \"cross_entropy\" or \"sum\")",
                           type->valuestring);
    int on_logits = !strcmp(on->valuestring, "intervened.logits");
    if (!on_logits && strcmp(on->valuestring, "intervened.last_hidden_state"))
        return vene_errorf(err, VENE_ERR_ARG, "loss.on: \"%s\" (expected \"intervened.logits\" or "
                           "\"intervened.last_hidden_state\")", on->valuestring);
    if (ce && !on_logits) return vene_errorf(err, VENE_ERR_ARG, "loss: cross_entropy needs \"on\": \"intervened.logits\"");
    int rc = vene_intervenable_set_grad(iv, cJSON_IsTrue(emg) ? VENE_GRAD_MODEL : VENE_GRAD_ACTIVATIONS, err);
    if (rc || (rc = vene_intervenable_forward(iv, call, err))) return rc;
    const vene_tensor *out = on_logits ? vene_intervenable_logits(iv, 1) : vene_intervenable_last_hidden(iv, 1);
    if (!out) return vene_errorf(err, VENE_ERR_ARG, "loss.on: the model produced no %s", on->valuestring);
    int64_t n = vene_tensor_numel(out);
    vene_tensor d = *out;
    if (!(d.data = calloc((size_t)n, sizeof(float)))) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    if (ce) {
        const cJSON *pos = cJSON_GetObjectItemCaseSensitive(lj, "position"), *lab = cJSON_GetObjectItemCaseSensitive(lj, "labels");
        int B = (int)out->shape[0];
        int32_t *labels = calloc((size_t)B, sizeof *labels);
        if (!labels) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        else if (!cJSON_IsNumber(pos) || pos->valuedouble != (double)(int)pos->valuedouble)
            rc = vene_errorf(err, VENE_ERR_ARG, "loss.position: expected an integer");
        else if (!cJSON_IsArray(lab) || cJSON_GetArraySize(lab) != B)
            rc = vene_errorf(err, VENE_ERR_ARG, "loss.labels: expected a list of %d label ids (one per example)", B);
        for (int b = 0; !rc && b < B; b++) {
            const cJSON *e = cJSON_GetArrayItem(lab, b);
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 2147483647.0)
                rc = vene_errorf(err, VENE_ERR_ARG, "loss.labels[%d]: expected a non-negative integer", b);
            else labels[b] = (int32_t)e->valuedouble;
        }
        if (!rc) rc = vene_loss_cross_entropy(out, NULL, (int)pos->valuedouble, labels, &d, loss, NULL, err);
        if (rc) vene_error_prefix(err, "loss");
        free(labels);
    } else {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += out->data[i], d.data[i] = 1.0f;
        *loss = (float)s;
    }
    if (!rc) rc = vene_intervenable_backward(iv, on_logits ? &d : NULL, on_logits ? NULL : &d, err);
    free(d.data);
    return rc;
}

int vene_exp_write_grads(vene_intervenable *iv, const cJSON *j, float loss, st_writer *w, vene_error *err) {
    vene_tensor lt = {.data = &loss, .ndim = 0};
    int rc = st_writer_add_f32(w, "loss", &lt, err);
    const cJSON *grads = cJSON_GetObjectItemCaseSensitive(j, "grads"), *g;
    if (grads && !cJSON_IsNull(grads) && !cJSON_IsArray(grads))
        return vene_errorf(err, VENE_ERR_ARG, "grads: expected a list of names");
    int i = 0;
    cJSON_ArrayForEach(g, grads) {
        if (rc) break;
        const cJSON *nm = cJSON_IsObject(g) ? cJSON_GetObjectItemCaseSensitive(g, "name") : g;
        if (!cJSON_IsString(nm)) return vene_errorf(err, VENE_ERR_ARG, "grads[%d]: expected a name or {\"name\", \"rows\"}", i);
        vene_tensor t;
        char key[512];
        if ((rc = vene_intervenable_grad(iv, nm->valuestring, &t, err))) return vene_error_prefix(err, "grads[%d]", i);
        snprintf(key, sizeof key, "grad.%s", nm->valuestring);
        rc = st_writer_add_f32(w, key, &t, err);
        i++;
    }
    return rc;
}
