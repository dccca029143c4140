/* The normalizer, pre_tokenizer and decoder of a tokenizer.json, as the rewrites, splits
 * and decoding options of tok_internal.h. Supported: the pieces GPT-2, Llama 2/3,
 * Mistral, Qwen2, GPT-NeoX and Gemma use (see each function). */
#include "tok/tok_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static const cJSON *get(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }

static const char *type_of(const cJSON *o) {
    const cJSON *t = get(o, "type");
    return cJSON_IsString(t) ? t->valuestring : "(no type)";
}

static int unsupported(const char *file, const char *what, const char *type, vene_error *err) {
    return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: %s type \"%s\" is not supported", file, what, type);
}

/* {"String": s} or {"Regex": r}: the text, and whether it is a regex. */
static const char *pattern_of(const cJSON *o, int *regex) {
    const cJSON *p = get(o, "pattern"), *s = get(p, "String"), *r = get(p, "Regex");
    *regex = cJSON_IsString(r);
    return cJSON_IsString(s) ? s->valuestring : *regex ? r->valuestring : NULL;
}

/* A string option with a default ("replacement": "▁"). */
static const char *str_opt(const cJSON *o, const char *key, const char *dflt) {
    const cJSON *v = get(o, key);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

/* ---------------------------------------------------------------- normalizer */

/* Sequence, Prepend, Replace (string pattern), NFC. */
static int normalizer(vene_tokenizer *t, const cJSON *n, const char *file, vene_error *err) {
    if (!n || cJSON_IsNull(n)) return VENE_OK;
    const char *ty = type_of(n);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = get(n, "normalizers");
        for (const cJSON *e = cJSON_IsArray(list) ? list->child : NULL; e; e = e->next)
            if (normalizer(t, e, file, err)) return err->code;
        return VENE_OK;
    }
    if (!strcmp(ty, "Prepend")) {
        const char *p = str_opt(n, "prepend", NULL);
        if (!p) return vene_errorf(err, VENE_ERR_FORMAT, "%s: normalizer Prepend has no \"prepend\" string", file);
        return tok_add_op(t, TOK_OP_PREPEND, NULL, 0, p, strlen(p), err);
    }
    if (!strcmp(ty, "Replace")) {
        int regex;
        const char *from = pattern_of(n, &regex), *to = str_opt(n, "content", NULL);
        if (!from || !to || regex)
            return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                               "%s: normalizer Replace: only a {\"String\": ...} pattern and a content are supported",
                               file);
        return tok_add_op(t, TOK_OP_REPLACE, from, strlen(from), to, strlen(to), err);
    }
    if (!strcmp(ty, "NFC")) return tok_add_op(t, TOK_OP_NFC, NULL, 0, NULL, 0, err);
    return unsupported(file, "normalizer", ty, err);
}

/* ---------------------------------------------------------------- pre-tokenizer */

/* The split that keeps each replacement character with the word after it (Metaspace's
 * split = true, MergedWithNext): "▁a▁▁b" -> "▁a", "▁", "▁b". */
static int metaspace_split(vene_tokenizer *t, const char *rep, const char *file, vene_error *err) {
    const unsigned char *r = (const unsigned char *)rep;
    uint32_t cp = r[0];
    int n = r[0] < 0x80 ? 1 : r[0] >= 0xF0 ? 4 : r[0] >= 0xE0 ? 3 : r[0] >= 0xC0 ? 2 : 0;
    if (!n || strlen(rep) != (size_t)n)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: pre_tokenizer Metaspace: replacement must be one character", file);
    if (n > 1) cp &= 0x3Fu >> (n - 1);
    for (int i = 1; i < n; i++) cp = cp << 6 | (r[i] & 0x3F);
    char pat[96];
    snprintf(pat, sizeof pat, "\\x{%x}[^\\x{%x}]*|[^\\x{%x}]+", cp, cp, cp);
    return tok_add_split(t, pat, strlen(pat), 0, err);
}

/* A rewrite must happen on the whole stretch, before any split. */
static int rewrites_first(const vene_tokenizer *t, const char *file, const char *what, vene_error *err) {
    if (!t->n_splits) return VENE_OK;
    return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: pre_tokenizer %s after a split is not supported", file, what);
}

/* Metaspace's prepend_scheme ("always", "first", "never"; older files: add_prefix_space). */
static int prepend_scheme(const cJSON *p, const char *file, tok_op_kind *kind, int *prepend, vene_error *err) {
    const cJSON *old = get(p, "add_prefix_space");
    const char *s = str_opt(p, "prepend_scheme", cJSON_IsFalse(old) ? "never" : "always");
    *prepend = strcmp(s, "never") != 0;
    *kind = !strcmp(s, "first") ? TOK_OP_PREPEND_FIRST : TOK_OP_PREPEND_UNLESS;
    if (*prepend && *kind == TOK_OP_PREPEND_UNLESS && strcmp(s, "always") != 0)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: Metaspace prepend_scheme \"%s\" (expected always, first or never)",
                           file, s);
    return VENE_OK;
}

/* Sequence, Split (Isolated), ByteLevel, Metaspace, Digits. */
static int pre_tokenizer(vene_tokenizer *t, const cJSON *p, const char *file, vene_error *err) {
    if (!p || cJSON_IsNull(p)) return VENE_OK;
    const char *ty = type_of(p);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = get(p, "pretokenizers");
        for (const cJSON *e = cJSON_IsArray(list) ? list->child : NULL; e; e = e->next)
            if (pre_tokenizer(t, e, file, err)) return err->code;
        return VENE_OK;
    }
    if (!strcmp(ty, "Split")) {
        int regex;
        const char *pat = pattern_of(p, &regex), *behavior = str_opt(p, "behavior", "");
        if (!pat) return vene_errorf(err, VENE_ERR_FORMAT, "%s: pre_tokenizer Split has no pattern", file);
        if (strcmp(behavior, "Isolated") != 0 || cJSON_IsTrue(get(p, "invert")))
            return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                               "%s: pre_tokenizer Split: behavior \"%s\"%s is not supported (only Isolated)", file,
                               behavior, cJSON_IsTrue(get(p, "invert")) ? " with invert" : "");
        return tok_add_split(t, pat, strlen(pat), !regex, err);
    }
    if (!strcmp(ty, "ByteLevel")) {
        /* Byte-level pieces only make sense decoded back to bytes, decoder or not. */
        t->symbols = TOK_SYM_BYTES;
        t->dec_byte_level = 1;
        if (cJSON_IsTrue(get(p, "add_prefix_space")) &&
            (rewrites_first(t, file, "ByteLevel with add_prefix_space", err) ||
             tok_add_op(t, TOK_OP_PREPEND_UNLESS, NULL, 0, " ", 1, err)))
            return err->code;
        if (cJSON_IsFalse(get(p, "use_regex"))) return VENE_OK;
        return tok_add_split(t, tok_pattern_gpt2, strlen(tok_pattern_gpt2), 0, err);
    }
    if (!strcmp(ty, "Metaspace")) {
        const char *rep = str_opt(p, "replacement", "\xE2\x96\x81");
        tok_op_kind kind;
        int prepend;
        if (rewrites_first(t, file, "Metaspace", err) || prepend_scheme(p, file, &kind, &prepend, err) ||
            tok_add_op(t, TOK_OP_REPLACE, " ", 1, rep, strlen(rep), err) ||
            (prepend && tok_add_op(t, kind, NULL, 0, rep, strlen(rep), err)))
            return err->code;
        return cJSON_IsFalse(get(p, "split")) ? VENE_OK : metaspace_split(t, rep, file, err);
    }
    if (!strcmp(ty, "Digits")) {
        const char *pat = cJSON_IsTrue(get(p, "individual_digits")) ? "\\p{N}" : "\\p{N}+";
        return tok_add_split(t, pat, strlen(pat), 0, err);
    }
    return unsupported(file, "pre_tokenizer", ty, err);
}

/* ---------------------------------------------------------------- decoder */

/* Sequence, ByteLevel, Replace (string), ByteFallback, Fuse, Strip (leading spaces),
 * Metaspace. */
static int decoder(vene_tokenizer *t, const cJSON *d, const char *file, vene_error *err) {
    if (!d || cJSON_IsNull(d)) return VENE_OK;
    const char *ty = type_of(d);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = get(d, "decoders");
        for (const cJSON *e = cJSON_IsArray(list) ? list->child : NULL; e; e = e->next)
            if (decoder(t, e, file, err)) return err->code;
        return VENE_OK;
    }
    if (!strcmp(ty, "ByteLevel")) return t->dec_byte_level = 1, VENE_OK;
    if (!strcmp(ty, "ByteFallback")) return t->dec_byte_fallback = 1, VENE_OK;
    if (!strcmp(ty, "Fuse")) return VENE_OK;
    const char *from = NULL, *to = NULL;
    if (!strcmp(ty, "Replace")) {
        int regex;
        from = pattern_of(d, &regex), to = str_opt(d, "content", NULL);
        if (!from || !to || regex)
            return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                               "%s: decoder Replace: only a {\"String\": ...} pattern and a content are supported", file);
    } else if (!strcmp(ty, "Metaspace")) {
        tok_op_kind kind;
        if (prepend_scheme(d, file, &kind, &t->dec_strip_first, err)) return err->code;
        from = str_opt(d, "replacement", "\xE2\x96\x81"), to = " ";
    } else if (!strcmp(ty, "Strip")) {
        const cJSON *start = get(d, "start"), *stop = get(d, "stop");
        if (strcmp(str_opt(d, "content", ""), " ") != 0 || !cJSON_IsNumber(start) || start->valuedouble < 0 ||
            start->valuedouble > 64 || (cJSON_IsNumber(stop) && stop->valuedouble != 0))
            return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                               "%s: decoder Strip: only leading spaces (content \" \", start 0..64, stop 0)", file);
        t->dec_strip_start = (int)start->valuedouble;
        return VENE_OK;
    } else {
        return unsupported(file, "decoder", ty, err);
    }
    if (t->dec_from)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: decoder: more than one Replace/Metaspace", file);
    if (!(t->dec_from = tok_arena_dup(&t->arena, from, strlen(from))) ||
        !(t->dec_to = tok_arena_dup(&t->arena, to, strlen(to))))
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    return VENE_OK;
}

int tok_json_pipeline(vene_tokenizer *t, const void *root_json, const char *file, vene_error *err) {
    const cJSON *root = root_json;
    t->symbols = TOK_SYM_CHARS; /* unless a ByteLevel pre-tokenizer says otherwise */
    if (normalizer(t, get(root, "normalizer"), file, err) || pre_tokenizer(t, get(root, "pre_tokenizer"), file, err) ||
        decoder(t, get(root, "decoder"), file, err))
        return err->code;
    const char *kind = t->symbols == TOK_SYM_BYTES ? "byte-level BPE"
                       : t->byte_fallback || t->dec_from ? "SentencePiece BPE" : "BPE";
    snprintf(t->kind, sizeof t->kind, "%s", kind);
    return VENE_OK;
}
