/* The read-only table of built-in architectures. */
#include <stdio.h>
#include <string.h>

#include "models/model.h"

extern const vene_arch vene_arch_gpt2, vene_arch_gptneo;
extern const vene_arch vene_arch_llama, vene_arch_mistral, vene_arch_qwen2, vene_arch_gemma;
extern const vene_arch vene_arch_gptneox;
extern const vene_arch vene_arch_mlp;
extern const vene_arch vene_arch_gru;

static const vene_arch *const builtin[] = {&vene_arch_gpt2,  &vene_arch_gptneo, &vene_arch_gptneox,
                                           &vene_arch_llama, &vene_arch_mistral, &vene_arch_qwen2,
                                           &vene_arch_gemma, &vene_arch_mlp,     &vene_arch_gru};

const vene_arch *vene_arch_find(const char *model_type) {
    if (!model_type) return NULL;
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (strcmp(builtin[i]->model_type, model_type) == 0) return builtin[i];
    return NULL;
}

void vene_arch_names(char *buf, size_t n) {
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0] && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, i ? ", %s" : "%s", builtin[i]->model_type);
}
