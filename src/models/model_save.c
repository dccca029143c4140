/* Saving a (trained) model as a Hugging Face folder: model.safetensors with every bound
 * weight under its state-dict name (written atomically), plus config.json and the
 * tokenizer files copied from the folder it was loaded from. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "models/model.h"

static int copy_file(const char *from, const char *to, vene_error *err) {
    FILE *in = fopen(from, "rb");
    if (!in) return VENE_OK; /* optional file */
    char tmp[8400];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", to, (long)getpid());
    FILE *out = fopen(tmp, "wb");
    if (!out) {
        fclose(in);
        return vene_errorf(err, VENE_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    char buf[65536];
    size_t n;
    int ok = 1;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) ok &= fwrite(buf, 1, n, out) == n;
    ok &= !ferror(in);
    fclose(in);
    ok &= fclose(out) == 0;
    if (!ok || rename(tmp, to) != 0) {
        unlink(tmp);
        return vene_errorf(err, VENE_ERR_IO, "%s: write failed", to);
    }
    return VENE_OK;
}

int vene_model_save(const vene_model *m, const char *dir, vene_error *err) {
    if (!m || !dir) return vene_errorf(err, VENE_ERR_ARG, "vene_model_save: NULL model or folder");
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return vene_errorf(err, VENE_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    st_writer *w = st_writer_new();
    if (!w) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    int rc = VENE_OK;
    for (int i = 0; i < m->n_param_tensors && !rc; i++) {
        const vene_param *p = &m->params[i];
        vene_tensor t = vene_tensor_view((float *)p->data, p->ndim, p->shape);
        rc = st_writer_add_f32(w, p->name, &t, err);
    }
    char path[8300], from[8300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!rc) rc = st_writer_save(w, path, err);
    st_writer_free(w);
    static const char *const files[] = {"config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                                        "special_tokens_map.json", "generation_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0] && !rc; i++) {
        snprintf(from, sizeof from, "%s/%s", m->dir, files[i]);
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (strcmp(from, path) != 0) rc = copy_file(from, path, err);
    }
    return rc;
}
