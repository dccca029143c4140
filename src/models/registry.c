/* The read-only table of built-in architectures. */
#include <string.h>

#include "models/model.h"

extern const vene_arch vene_arch_gpt2;

static const vene_arch *const builtin[] = {&vene_arch_gpt2};

const vene_arch *vene_arch_find(const char *model_type) {
    if (!model_type) return NULL;
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (strcmp(builtin[i]->model_type, model_type) == 0) return builtin[i];
    return NULL;
}
