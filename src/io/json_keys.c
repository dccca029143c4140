/* Duplicate keys in JSON objects. cJSON keeps every copy and lookups return the first,
 * while Python's json (pyvene, Hugging Face) keeps the last: a file with a repeated key
 * would silently mean something else here, so readers refuse it. */
#include "io/json_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static int cmp_key(const void *a, const void *b) {
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* path: where `j` is, e.g. "config.representations[0]" ("" at the root). */
static int check(const cJSON *j, char *path, size_t cap, int depth, const char *what, vene_error *err) {
    if (depth > 1000) return vene_errorf(err, VENE_ERR_FORMAT, "%s%snested too deeply", what, *what ? ": " : "");
    size_t len = strlen(path);
    int n = 0;
    for (const cJSON *c = j->child; c; c = c->next) n++;
    if (cJSON_IsObject(j) && n > 1) {
        const cJSON **keys = malloc(sizeof *keys * (size_t)n);
        if (!keys) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        int k = 0;
        for (const cJSON *c = j->child; c; c = c->next) keys[k++] = c;
        qsort(keys, (size_t)n, sizeof *keys, cmp_key);
        for (int i = 1; i < n; i++)
            if (!strcmp(keys[i]->string, keys[i - 1]->string)) {
                int rc = vene_errorf(err, VENE_ERR_FORMAT, "%s%skey \"%s\" appears twice%s%s", what, *what ? ": " : "",
                                     keys[i]->string, len ? " in " : "", path);
                free(keys);
                return rc;
            }
        free(keys);
    }
    int i = 0, rc = VENE_OK;
    for (const cJSON *c = j->child; c && !rc; c = c->next, i++) {
        if (!c->child) continue;
        if (cJSON_IsObject(j)) snprintf(path + len, cap - len, "%s%s", len ? "." : "", c->string);
        else snprintf(path + len, cap - len, "[%d]", i);
        rc = check(c, path, cap, depth + 1, what, err);
        path[len] = '\0';
    }
    return rc;
}

int vene_json_unique_keys(const cJSON *root, const char *what, vene_error *err) {
    char path[512] = "";
    return root ? check(root, path, sizeof path, 0, what ? what : "", err) : VENE_OK;
}
