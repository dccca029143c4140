/* The weights of a Hugging Face model folder: model.safetensors, or the shards listed in
 * model.safetensors.index.json, looked up by state-dict name as float32. */
#ifndef VENE_IO_WEIGHTS_H
#define VENE_IO_WEIGHTS_H

#include <stdint.h>

#include "io/safetensors.h"
#include "vene.h"

typedef struct vene_weights vene_weights;

/* Open every safetensors file of the folder (mmap; nothing copied yet). */
int vene_weights_open(const char *dir, vene_weights **out, vene_error *err);
void vene_weights_free(vene_weights *w);
/* Let bound weight pointers be written (training): private copy-on-write pages. */
int vene_weights_make_writable(vene_weights *w, vene_error *err);

/* Find `name`, also trying it with each of the given prefixes stripped/added (e.g.
 * "transformer."), so folders saved from GPT2Model and GPT2LMHeadModel both load.
 * Checks the shape (ndim, dims) and returns a float32 pointer: F32 data is used in place
 * from the mapping; F16/BF16/F64 are converted once into memory owned by `w`.
 * Errors name the tensor, the file and the expected vs actual shape or dtype. */
int vene_weights_get(vene_weights *w, const char *name, int ndim, const int64_t *shape,
                     const float **out, vene_error *err);
/* Same without a shape check; *t receives the stored tensor (dtype, shape). */
int vene_weights_find(const vene_weights *w, const char *name, const st_tensor **t);
int vene_weights_has(const vene_weights *w, const char *name);
/* Bytes of float32 data converted into owned memory (for memory reports). */
int64_t vene_weights_owned_bytes(const vene_weights *w);
/* Set the list of prefixes tried by get/find, e.g. {"transformer.", NULL}. */
void vene_weights_set_prefixes(vene_weights *w, const char *const *prefixes);

#endif
