/* libFuzzer entry point for one target of fuzz/targets.c, chosen at compile time with
 * -DVENE_FUZZ_TARGET=<name> (fuzz/Makefile builds fuzz_<name> from this file). */
#include "targets.c"

#ifndef VENE_FUZZ_TARGET
#error "compile with -DVENE_FUZZ_TARGET=safetensors (or tokenizer, config_json, experiment, intervenable_load)"
#endif
#define VF_CAT_(a, b) a##b
#define VF_CAT(a, b) VF_CAT_(a, b)
#define VF_FN VF_CAT(vene_fuzz_, VENE_FUZZ_TARGET)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    /* fixtures: $VENE_FUZZ_ROOT, else two folders above this binary (fuzz/build/fuzz_x) */
    const char *e = getenv("VENE_FUZZ_ROOT");
    if (!e || !*e) {
        char exe[PATH_MAX], root[PATH_MAX + 8];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = 0;
            char *slash = strrchr(exe, '/');
            if (slash) *slash = 0;
            snprintf(root, sizeof root, "%s/../..", exe);
            vene_fuzz_set_root(root);
        }
    }
    /* load the static state (tokenizer, models, scratch folders) before the first input, so
     * that libFuzzer's per-input leak check never sees it */
    VF_FN((const uint8_t *)"", 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    VF_FN(data, size);
    return 0;
}
