/* Refusing JSON objects with a repeated key (see json_keys.c). */
#ifndef VENE_IO_JSON_KEYS_H
#define VENE_IO_JSON_KEYS_H

#include <cjson/cJSON.h>

#include "vene.h"

/* VENE_ERR_FORMAT "<what>: key "k" appears twice in <path>" for the first repeated key
 * anywhere in the tree (what may be "" or NULL); VENE_OK otherwise (and for a NULL root). */
int vene_json_unique_keys(const cJSON *root, const char *what, vene_error *err);

#endif
