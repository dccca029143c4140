/* Small containers the tokenizer needs: an append-only arena for strings, a map from
 * byte strings to ids, and a map from id pairs to merge ranks. Open addressing with
 * linear probing; capacity is a power of two kept at most half full. */
#ifndef VENE_TOK_MAP_H
#define VENE_TOK_MAP_H

#include <stddef.h>
#include <stdint.h>

/* Strings copied here never move, so maps can point at them. */
typedef struct tok_arena_block tok_arena_block;
typedef struct tok_arena {
    tok_arena_block *head;
} tok_arena;

/* Copies len bytes plus a NUL; NULL when out of memory. */
char *tok_arena_dup(tok_arena *a, const char *s, size_t len);
void tok_arena_free(tok_arena *a);

typedef struct tok_str_slot {
    const char *key; /* borrowed: must outlive the map (arena or vocab storage) */
    uint32_t len;
    uint32_t hash;
    int32_t val;
} tok_str_slot;

typedef struct tok_strmap {
    tok_str_slot *slots;
    uint32_t cap, count;
} tok_strmap;

/* Inserts key -> val unless the key is present. Returns 0 on insert, 1 when the key was
 * already there (its value goes to *old when old is non-NULL), -1 when out of memory. */
int tok_strmap_put(tok_strmap *m, const char *key, uint32_t len, int32_t val, int32_t *old);
/* Value of key, or -1 when absent. */
int32_t tok_strmap_get(const tok_strmap *m, const char *key, uint32_t len);
void tok_strmap_free(tok_strmap *m);

typedef struct tok_pair_slot {
    uint64_t key;
    int32_t val; /* -1 marks an empty slot: keys may legitimately be 0 */
} tok_pair_slot;

typedef struct tok_pairmap {
    tok_pair_slot *slots;
    uint32_t cap, count;
} tok_pairmap;

static inline uint64_t tok_pair_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

/* Same contract as tok_strmap_put. */
int tok_pairmap_put(tok_pairmap *m, uint64_t key, int32_t val, int32_t *old);
int32_t tok_pairmap_get(const tok_pairmap *m, uint64_t key);
void tok_pairmap_free(tok_pairmap *m);

#endif
