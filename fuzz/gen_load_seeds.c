/* Seeds for fuzz_intervenable_load: every fuzz_experiment seed is run, the intervenable it
 * built is saved by the library (vene_intervenable_save), and the folder is packed into one
 * input: config.json, then "\nVFSEP!!\n" + intkey_<sorted_keys[k]>.safetensors for each k
 * (empty when that intervention has no file). Built and run by `make -C fuzz seeds`.
 * Usage: gen_load_seeds OUT_DIR EXPERIMENT_SEED... */
#include "targets.c"

#include <libgen.h>

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    if (!b || fread(b, 1, (size_t)len, f) != (size_t)len) vf_fail("read %s", path);
    fclose(f);
    b[len] = 0;
    *n = (size_t)len;
    return b;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s OUT_DIR EXPERIMENT_SEED...\n", argv[0]);
        return 2;
    }
    char save[PATH_MAX], path[PATH_MAX + 300], out[PATH_MAX + 300];
    vf_scratch("gen", save, sizeof save);
    vf_save_dir = save;
    int made = 0;
    for (int a = 2; a < argc; a++) {
        size_t n = 0;
        uint8_t *in = slurp(argv[a], &n);
        if (!in) continue;
        vf_clear_dir(save);
        int rc = vene_fuzz_experiment(in, n);
        free(in);
        snprintf(path, sizeof path, "%s/config.json", save);
        size_t cn = 0;
        uint8_t *cfg = rc == 0 ? slurp(path, &cn) : NULL;
        if (!cfg) continue;
        cJSON *c = cJSON_Parse((char *)cfg);
        const cJSON *keys = cJSON_GetObjectItemCaseSensitive(c, "sorted_keys");
        char name[PATH_MAX];
        snprintf(name, sizeof name, "%s", argv[a]);
        snprintf(out, sizeof out, "%s/saved-%s", argv[1], basename(name));
        FILE *o = fopen(out, "wb");
        if (!o) vf_fail("cannot write %s", out);
        fwrite(cfg, 1, cn, o);
        int nk = cJSON_GetArraySize(keys), any = 0;
        for (int k = 0; k < nk; k++) {
            const cJSON *key = cJSON_GetArrayItem(keys, k);
            snprintf(path, sizeof path, "%s/intkey_%s.safetensors", save, cJSON_IsString(key) ? key->valuestring : "");
            size_t pn = 0;
            uint8_t *p = slurp(path, &pn);
            if (p) any = 1;
            fwrite(vf_sep, 1, sizeof vf_sep - 1, o);
            if (p) fwrite(p, 1, pn, o);
            free(p);
        }
        fclose(o);
        cJSON_Delete(c);
        free(cfg);
        made++;
        (void)any;
    }
    fprintf(stderr, "gen_load_seeds: %d seeds\n", made);
    vene_fuzz_cleanup();
    return 0;
}
