#include "tok/tok_map.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- arena */

#define TOK_ARENA_BLOCK (64 * 1024)

struct tok_arena_block {
    tok_arena_block *next;
    size_t used, cap;
    char data[];
};

char *tok_arena_dup(tok_arena *a, const char *s, size_t len) {
    tok_arena_block *b = a->head;
    if (!b || b->cap - b->used < len + 1) {
        /* Start a new block (sized to fit an oversized string); the tail left in the
         * previous block is abandoned, which costs little for short pieces. */
        size_t cap = len + 1 > TOK_ARENA_BLOCK ? len + 1 : TOK_ARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    char *p = b->data + b->used;
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    b->used += len + 1;
    return p;
}

void tok_arena_free(tok_arena *a) {
    tok_arena_block *b = a->head;
    while (b) {
        tok_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

/* ---------------------------------------------------------------- string map */

/* FNV-1a: keys are short pieces and words, where a simple byte loop is fast enough. */
static uint32_t hash_bytes(const char *s, uint32_t len) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static int strmap_grow(tok_strmap *m) {
    uint32_t cap = m->cap ? m->cap * 2 : 64;
    if (cap < m->cap) return -1;
    tok_str_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (uint32_t i = 0; i < m->cap; i++) {
        tok_str_slot *s = &m->slots[i];
        if (!s->key) continue;
        uint32_t j = s->hash & (cap - 1);
        while (slots[j].key) j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int tok_strmap_put(tok_strmap *m, const char *key, uint32_t len, int32_t val, int32_t *old) {
    if ((m->count + 1) * 2 > m->cap && strmap_grow(m) != 0) return -1;
    uint32_t h = hash_bytes(key, len), j = h & (m->cap - 1);
    for (; m->slots[j].key; j = (j + 1) & (m->cap - 1)) {
        tok_str_slot *s = &m->slots[j];
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
            if (old) *old = s->val;
            return 1;
        }
    }
    m->slots[j] = (tok_str_slot){key, len, h, val};
    m->count++;
    return 0;
}

int32_t tok_strmap_get(const tok_strmap *m, const char *key, uint32_t len) {
    if (!m->cap) return -1;
    uint32_t h = hash_bytes(key, len), j = h & (m->cap - 1);
    for (; m->slots[j].key; j = (j + 1) & (m->cap - 1)) {
        const tok_str_slot *s = &m->slots[j];
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) return s->val;
    }
    return -1;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

/* ---------------------------------------------------------------- pair map */

/* Fibonacci hashing spreads the (small, dense) id pairs over the table. */
static uint32_t pair_slot(uint64_t key, uint32_t cap) {
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

static int pairmap_grow(tok_pairmap *m) {
    uint32_t cap = m->cap ? m->cap * 2 : 64;
    if (cap < m->cap) return -1;
    tok_pair_slot *slots = malloc((size_t)cap * sizeof *slots);
    if (!slots) return -1;
    for (uint32_t i = 0; i < cap; i++) slots[i].val = -1;
    for (uint32_t i = 0; i < m->cap; i++) {
        if (m->slots[i].val < 0) continue;
        uint32_t j = pair_slot(m->slots[i].key, cap);
        while (slots[j].val >= 0) j = (j + 1) & (cap - 1);
        slots[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int tok_pairmap_put(tok_pairmap *m, uint64_t key, int32_t val, int32_t *old) {
    if ((m->count + 1) * 2 > m->cap && pairmap_grow(m) != 0) return -1;
    uint32_t j = pair_slot(key, m->cap);
    for (; m->slots[j].val >= 0; j = (j + 1) & (m->cap - 1)) {
        if (m->slots[j].key == key) {
            if (old) *old = m->slots[j].val;
            return 1;
        }
    }
    m->slots[j].key = key;
    m->slots[j].val = val;
    m->count++;
    return 0;
}

int32_t tok_pairmap_get(const tok_pairmap *m, uint64_t key) {
    if (!m->cap) return -1;
    uint32_t j = pair_slot(key, m->cap);
    for (; m->slots[j].val >= 0; j = (j + 1) & (m->cap - 1)) {
        if (m->slots[j].key == key) return m->slots[j].val;
    }
    return -1;
}

void tok_pairmap_free(tok_pairmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}
