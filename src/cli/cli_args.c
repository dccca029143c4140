/* Option values shared by the commands: whole numbers, and --max-memory SIZE (parsing the
 * size, and what is left for the forward once the model's weights are counted). */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/tensor.h"
#include "vene.h"

/* "512M", "2G", "1.5GiB", "100000" (bytes); K, M, G, T are powers of 1024. 0 on success. */
int vene_cli_parse_size(const char *s, size_t *out) {
    if (!s || !isdigit((unsigned char)*s)) return 1;
    char *end = NULL;
    double v = strtod(s, &end);
    double mult = 1;
    const char *units = "KMGT";
    const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    if (u) {
        mult = pow(1024, (double)(u - units + 1));
        end++;
        if (*end == 'i' || *end == 'I') end++;
        if (*end == 'B' || *end == 'b') end++;
    } else if (*end == 'B' || *end == 'b') {
        end++;
    }
    if (*end || !(v * mult >= 1) || v * mult >= (double)SIZE_MAX) return 1;
    *out = (size_t)(v * mult);
    return 0;
}

int vene_cli_int_arg(const char *cmd, const char *opt, const char *arg, int lo, int hi, int *out) {
    char *end = NULL;
    long v = strtol(arg, &end, 10);
    if (end == arg || *end || v < lo || v > hi)
        return vene_cli_fail("%s: %s: expected an integer in %d..%d, got \"%s\"", cmd, opt, lo, hi, arg);
    *out = (int)v;
    return 0;
}

int vene_cli_size_arg(const char *cmd, const char *arg, size_t *out) {
    if (!vene_cli_parse_size(arg, out)) return 0;
    return vene_cli_fail("%s: --max-memory: \"%s\" is not a size (for example 512M, 2G or 1.5G; K, M, G, T are powers of 1024)",
                         cmd, arg);
}

int vene_cli_memory_left(const vene_model *m, const char *arg, size_t max_memory, size_t extra, size_t *left) {
    vene_model_info in;
    vene_model_get_info(m, &in);
    uint64_t used = (uint64_t)in.weight_bytes + extra;
    if (used < max_memory) {
        *left = max_memory - (size_t)used;
        return 0;
    }
    char a[64];
    return vene_cli_fail("--max-memory %s: the model's weights%s already take %s", arg, extra ? " and the --site copies" : "",
                         vene_bytes_str(used, a, sizeof a));
}
