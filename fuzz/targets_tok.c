/* Tokenizer fuzz targets (GGUF vocabularies, tokenizer.json + tokenizer_config.json),
 * included by targets.c before its dispatch table; same conventions. */
#include "io/gguf.h"
#include "tok/tok_internal.h"

/* Whether decode(encode(x)) == x must hold for tokenizer t with these flags: byte-level
 * symbols, no text rewrites, decoding that keeps every byte, and no added token that
 * could match (an added token decodes to its vocab spelling, and lstrip/rstrip drop
 * spaces). Other tokenizers lose information by design (unk, "▁" in the text,
 * SentencePiece's prefix space, NFC). */
static int vf_tok_lossless(const vene_tokenizer *t, unsigned flags) {
    return t->symbols == TOK_SYM_BYTES && t->n_ops == 0 && !t->dec_from && !t->dec_byte_fallback &&
           !t->dec_strip_start && !t->dec_strip_first && !(flags & VENE_TOK_ADD_SPECIAL) &&
           ((flags & VENE_TOK_PARSE_SPECIAL) ? t->n_added == 0 : t->n_added_plain == 0);
}

/* Encodes x with every flag combination: ids in range, they decode (with and without
 * special tokens), and the round trip holds where it must. Encoding may fail cleanly (a
 * character with no token, no byte token and no unk). */
static void vf_tok_exercise(const vene_tokenizer *t, const char *x, size_t n) {
    int V = vene_tokenizer_vocab_size(t);
    for (unsigned flags = 0; flags < 4; flags++) {
        int32_t *ids = NULL;
        size_t nid = 0;
        vene_error err = {0};
        if (vene_tokenize_ex(t, x, n, flags, &ids, &nid, &err) != VENE_OK) {
            if (!err.msg[0] || ids) vf_fail("vene_tokenize_ex failed without a message or left ids");
            continue;
        }
        for (size_t i = 0; i < nid; i++)
            if (ids[i] < 0 || ids[i] >= V || !vene_token_piece(t, ids[i]))
                vf_fail("id %d out of range (vocab %d) or without a piece", ids[i], V);
        for (unsigned d = 0; d < 2; d++) {
            char *back = NULL;
            size_t blen = 0;
            if (vene_detokenize_ex(t, ids, nid, d ? VENE_TOK_SKIP_SPECIAL : 0, &back, &blen, &err) != VENE_OK)
                vf_fail("ids from vene_tokenize_ex do not decode: %s", err.msg);
            if (!d && vf_tok_lossless(t, flags) && (blen != n || memcmp(back, x, n)))
                vf_fail("decode(encode(x)) != x (flags %u, %zu -> %zu bytes)", flags, n, blen);
            vene_free(back);
        }
        vene_free(ids);
    }
}

static void vf_tok_check(const vene_tokenizer *t, const uint8_t *data, size_t size) {
    vene_tokenizer_info info;
    vene_tokenizer_get_info(t, &info);
    int V = vene_tokenizer_vocab_size(t);
    if (V <= 0 || info.n_vocab != V) vf_fail("a loaded tokenizer has vocab size %d (info %d)", V, info.n_vocab);
    for (int i = 0; i < info.n_prefix; i++)
        if (info.prefix[i] < 0 || info.prefix[i] >= V) vf_fail("BOS-side id %d out of range", info.prefix[i]);
    for (int i = 0; i < info.n_suffix; i++)
        if (info.suffix[i] < 0 || info.suffix[i] >= V) vf_fail("EOS-side id %d out of range", info.suffix[i]);
    static const char *fixed[] = {"Hello world", " the capital of Spain is", "\xff\xfe\x00 \xc3\xa9!",
                                  "aaaaaaaaaaaaaaaa", "e\xcc\x81 <s>\xe2\x96\x81 1234 <|endoftext|>"};
    for (int k = 0; k < 5; k++) vf_tok_exercise(t, fixed[k], k == 2 ? 7 : strlen(fixed[k]));
    vf_tok_exercise(t, (const char *)data, size < 256 ? size : 256);
    for (int32_t id = -1; id <= V && id < 64; id++) {
        size_t len = 0;
        vene_token_piece(t, id), vene_token_text(t, id, &len), vene_token_is_special(t, id);
    }
}

/* Loads the tokenizer in folder dir; NULL (after checking the refusal is clean) if it
 * does not load. */
static vene_tokenizer *vf_tok_load(const char *dir) {
    vene_tokenizer *t = NULL;
    vene_error err = {0};
    if (vene_tokenizer_load(dir, &t, &err) == VENE_OK) return t;
    if (t) vf_fail("vene_tokenizer_load failed but returned a tokenizer");
    if (!err.msg[0]) vf_fail("vene_tokenizer_load failed (%s) without a message", vene_status_name(err.code));
    vf_rejected("vene_tokenizer_load", &err);
    return NULL;
}

/* ---------------------------------------------------------------- 8. GGUF vocabularies */

/* Input: a GGUF file. The reader must accept it or refuse it with a message naming the
 * file; an accepted file's entries are all read back (every array element); then a
 * tokenizer is made from it, and a tokenizer that loads is exercised as above. */
int vene_fuzz_gguf(const uint8_t *data, size_t size) {
    gguf_file *g = NULL;
    vene_error err = {0};
    if (gguf_open_memory(data, size, "fuzz.gguf", &g, &err) != VENE_OK) {
        if (g) vf_fail("gguf_open_memory failed but returned a file");
        if (!strstr(err.msg, "fuzz.gguf")) vf_fail("gguf error does not name the file: %s", err.msg);
        return vf_rejected("gguf_open_memory", &err);
    }
    for (uint64_t i = 0; i < gguf_kv_count(g); i++) {
        const gguf_kv *kv = gguf_kv_at(g, i);
        if (!kv || !kv->key.len || kv->type >= GGUF_TYPE_COUNT) vf_fail("entry %llu is malformed", (unsigned long long)i);
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 127 ? kv->key.len : 127), kv->key.ptr);
        if (kv->key.len < 127 && !memchr(kv->key.ptr, 0, kv->key.len) && gguf_find(g, key) != kv)
            vf_fail("gguf_find does not find key \"%s\"", key);
        for (uint64_t e = 0; kv->type == GGUF_ARRAY && e < kv->n; e++) {
            if (kv->elem == GGUF_STRING) {
                gguf_str s = gguf_arr_str(kv, e);
                if (s.len && (s.ptr < (const char *)data || s.ptr + s.len > (const char *)data + size))
                    vf_fail("string element outside the file");
            } else if (kv->elem == GGUF_FLOAT32) {
                gguf_arr_f32(kv, e);
            } else if (kv->elem <= GGUF_INT32 || kv->elem >= GGUF_UINT64) {
                gguf_arr_int(kv, e);
            }
        }
    }
    vene_tokenizer *t = NULL;
    int rc = tok_from_gguf(g, &t, &err);
    gguf_close(g);
    if (rc != VENE_OK) {
        if (t) vf_fail("tok_from_gguf failed but returned a tokenizer");
        if (!strstr(err.msg, "fuzz.gguf")) vf_fail("tokenizer error does not name the file: %s", err.msg);
        return vf_rejected("tok_from_gguf", &err);
    }
    vf_tok_check(t, data, size);
    vene_tokenizer_free(t);
    return 0;
}

/* ---------------------------------------------------------------- 9. tokenizer.json */

/* Input: tokenizer.json [\nVFSEP!!\n tokenizer_config.json [\nVFSEP!!\n text]], written to
 * a folder and loaded with vene_tokenizer_load. A tokenizer that loads is exercised on
 * fixed strings and the text (else the input's first 256 bytes). */
int vene_fuzz_tokenizer_json(const uint8_t *data, size_t size) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    vf_scratch("tokenizer_json", dir, sizeof dir);
    vf_clear_dir(dir);
    const uint8_t *end = data + size, *sep = vf_find_sep(data, end), *text = data;
    size_t text_len = size;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    vf_write(path, data, (size_t)((sep ? sep : end) - data));
    if (sep) {
        const uint8_t *p = sep + sizeof vf_sep - 1, *q = vf_find_sep(p, end);
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        vf_write(path, p, (size_t)((q ? q : end) - p));
        if (q) text = q + sizeof vf_sep - 1, text_len = (size_t)(end - text);
    }
    vene_tokenizer *t = vf_tok_load(dir);
    if (!t) return 1;
    vf_tok_check(t, text, text_len);
    vene_tokenizer_free(t);
    return 0;
}
