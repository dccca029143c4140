/* Hugging Face's tokenizer.json (BPE models) and the BOS/EOS settings of
 * tokenizer_config.json. The normalizer, pre-tokenizer and decoder are read by
 * tok_pipeline.c. Anything that would change the encoding and is not implemented is
 * refused rather than silently ignored. */
#include "tok/tok_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cJSON *get(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }
static int is_true(const cJSON *o, const char *key) { return cJSON_IsTrue(get(o, key)); }

static int nonempty_string(const cJSON *o, const char *key) {
    const cJSON *v = get(o, key);
    return cJSON_IsString(v) && v->valuestring[0];
}

/* Ids must be whole numbers in [0, TOK_MAX_ID). */
static int json_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d < TOK_MAX_ID) || floor(d) != d) return 0;
    *id = (int32_t)d;
    return 1;
}

static int check_model(const cJSON *model, const char *file, vene_error *err) {
    const cJSON *type = get(model, "type"), *dropout = get(model, "dropout");
    if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "BPE") == 0))
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: model.type %s is not supported (only BPE)", file,
                           cJSON_IsString(type) ? type->valuestring : "(not a string)");
    if (nonempty_string(model, "continuing_subword_prefix") || nonempty_string(model, "end_of_word_suffix"))
        return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                           "%s: model.continuing_subword_prefix/end_of_word_suffix are not supported", file);
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: model.dropout is not supported (must be null)", file);
    return VENE_OK;
}

static int load_vocab(vene_tokenizer *t, const cJSON *vocab, const cJSON *added, const char *file, vene_error *err) {
    if (!cJSON_IsObject(vocab)) return vene_errorf(err, VENE_ERR_FORMAT, "%s: model.vocab is not a JSON object", file);
    int32_t id, max = -1;
    for (const cJSON *e = vocab->child; e; e = e->next)
        if (json_id(e, &id) && id > max) max = id;
    for (const cJSON *e = added ? added->child : NULL; e; e = e->next)
        if (json_id(get(e, "id"), &id) && id > max) max = id;
    if (max < 0) return vene_errorf(err, VENE_ERR_FORMAT, "%s: the vocab is empty", file);
    t->n_vocab = max + 1;
    if (!(t->tok = calloc((size_t)t->n_vocab, sizeof *t->tok)))
        return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", file);
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!json_id(e, &id))
            return vene_errorf(err, VENE_ERR_FORMAT, "%s: model.vocab key \"%s\": id must be an integer in 0..%d",
                               file, e->string, TOK_MAX_ID - 1);
        if (tok_set_token(t, id, e->string, strlen(e->string), TOK_NORMAL, err))
            return vene_error_prefix(err, "%s: model.vocab key \"%s\"", file, e->string);
    }
    int i = 0;
    for (const cJSON *e = added ? added->child : NULL; e; e = e->next, i++) {
        const cJSON *content = get(e, "content");
        if (!json_id(get(e, "id"), &id) || !cJSON_IsString(content))
            return vene_errorf(err, VENE_ERR_FORMAT,
                               "%s: added_tokens[%d]: needs an integer \"id\" and a string \"content\"", file, i);
        if (is_true(e, "single_word"))
            return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: added_tokens[%d] (\"%s\"): single_word is not supported",
                               file, i, content->valuestring);
        int special = is_true(e, "special");
        const char *c = content->valuestring, *piece = t->tok[id].piece;
        size_t len = strlen(c);
        /* An added token may respell a vocab token (GPT-NeoX's runs of spaces are "ĠĠĠ"
         * in the vocab): the vocab spelling stays, the added one is what is matched. */
        int respelled = piece && strcmp(piece, c) != 0;
        if ((!respelled && tok_set_token(t, id, c, len, special ? TOK_CONTROL : TOK_USER, err)) ||
            tok_add_added(t, id, c, len, special, is_true(e, "lstrip"), is_true(e, "rstrip"), err))
            return vene_error_prefix(err, "%s: added_tokens[%d]", file, i);
    }
    return VENE_OK;
}

static int load_merges(vene_tokenizer *t, const cJSON *merges, const char *file, vene_error *err) {
    if (!cJSON_IsArray(merges))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: model.merges is missing or not an array", file);
    int i = 0;
    for (const cJSON *m = merges->child; m; m = m->next, i++) {
        const char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        if (cJSON_IsString(m)) { /* "a b" */
            const char *s = m->valuestring, *sp = strchr(s, ' ');
            if (sp && sp != s && sp[1] && !strchr(sp + 1, ' ')) {
                a = s, alen = (size_t)(sp - s);
                b = sp + 1, blen = strlen(b);
            }
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) { /* ["a", "b"] */
            a = m->child->valuestring, alen = strlen(a);
            b = m->child->next->valuestring, blen = strlen(b);
        }
        if (!a || !alen || !blen)
            return vene_errorf(err, VENE_ERR_FORMAT, "%s: model.merges[%d]: expected \"a b\" or [\"a\", \"b\"]", file, i);
        if (tok_add_merge(t, a, alen, b, blen, err)) return vene_error_prefix(err, "%s: model.merges[%d]", file, i);
    }
    return VENE_OK;
}

/* ---------------------------------------------------------------- BOS / EOS */

static int piece_id(const vene_tokenizer *t, const char *piece, const char *file, const char *where, int32_t *id,
                    vene_error *err) {
    *id = tok_strmap_get(&t->vocab, piece, (uint32_t)strlen(piece));
    if (*id < 0) return vene_errorf(err, VENE_ERR_FORMAT, "%s: %s \"%s\" is not in the vocab", file, where, piece);
    return VENE_OK;
}

/* One TemplateProcessing item: a special token goes before or after the sequence. */
static int template_item(vene_tokenizer *t, const cJSON *item, const cJSON *specials, int *after, const char *file,
                         vene_error *err) {
    const cJSON *seq = get(item, "Sequence"), *sp = get(item, "SpecialToken");
    const cJSON *name = get(sp, "id");
    if (seq) return *after = 1, VENE_OK;
    if (!cJSON_IsString(name))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: post_processor.single: expected Sequence or SpecialToken items",
                           file);
    const cJSON *ids = get(get(specials, name->valuestring), "ids");
    int32_t one[1], *list = one, n = 1;
    int32_t from_ids[TOK_MAX_AFFIX];
    if (cJSON_IsArray(ids)) {
        n = 0;
        for (const cJSON *e = ids->child; e; e = e->next) {
            if (n == TOK_MAX_AFFIX || !json_id(e, &from_ids[n]) || from_ids[n] >= t->n_vocab)
                return vene_errorf(err, VENE_ERR_FORMAT, "%s: post_processor.special_tokens \"%s\": bad ids", file,
                                   name->valuestring);
            n++;
        }
        list = from_ids;
    } else if (piece_id(t, name->valuestring, file, "post_processor special token", one, err)) {
        return err->code;
    }
    int32_t *dst = *after ? t->suffix : t->prefix;
    int *cnt = *after ? &t->n_suffix : &t->n_prefix;
    for (int32_t i = 0; i < n; i++) {
        if (*cnt == TOK_MAX_AFFIX)
            return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: post_processor adds more than %d tokens on a side",
                               file, TOK_MAX_AFFIX);
        dst[(*cnt)++] = list[i];
    }
    return VENE_OK;
}

static int post_processor(vene_tokenizer *t, const cJSON *pp, const char *file, vene_error *err) {
    if (!pp || cJSON_IsNull(pp)) return VENE_OK;
    const cJSON *type = get(pp, "type");
    const char *ty = cJSON_IsString(type) ? type->valuestring : "";
    if (!strcmp(ty, "ByteLevel")) return VENE_OK;
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = get(pp, "processors");
        for (const cJSON *e = cJSON_IsArray(list) ? list->child : NULL; e; e = e->next)
            if (post_processor(t, e, file, err)) return err->code;
        return VENE_OK;
    }
    if (!strcmp(ty, "TemplateProcessing")) {
        const cJSON *single = get(pp, "single");
        if (!cJSON_IsArray(single))
            return vene_errorf(err, VENE_ERR_FORMAT, "%s: post_processor.single is not an array", file);
        t->n_prefix = t->n_suffix = 0;
        int after = 0;
        for (const cJSON *e = single->child; e; e = e->next)
            if (template_item(t, e, get(pp, "special_tokens"), &after, file, err)) return err->code;
        if (t->n_prefix) t->bos_id = t->prefix[0];
        if (t->n_suffix) t->eos_id = t->suffix[t->n_suffix - 1];
        return VENE_OK;
    }
    if (!strcmp(ty, "RobertaProcessing") || !strcmp(ty, "BertProcessing")) {
        const cJSON *cls = get(pp, "cls"), *sep = get(pp, "sep");
        if (!cJSON_IsArray(cls) || !cJSON_IsArray(sep) || !json_id(cJSON_GetArrayItem(cls, 1), &t->prefix[0]) ||
            !json_id(cJSON_GetArrayItem(sep, 1), &t->suffix[0]) || t->prefix[0] >= t->n_vocab ||
            t->suffix[0] >= t->n_vocab)
            return vene_errorf(err, VENE_ERR_FORMAT, "%s: post_processor %s: expected cls and sep [token, id]", file, ty);
        t->n_prefix = t->n_suffix = 1;
        t->bos_id = t->prefix[0], t->eos_id = t->suffix[0];
        return VENE_OK;
    }
    return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: post_processor type \"%s\" is not supported", file, ty);
}

/* tokenizer_config.json: special tokens by text, and add_bos_token / add_eos_token,
 * which (as transformers' Llama tokenizers do) override the post-processor. */
static int load_config(vene_tokenizer *t, const char *path, vene_error *err) {
    void *root_v = NULL;
    int rc = tok_parse_json(path, &root_v, err);
    const cJSON *root = root_v;
    static const char *keys[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    int32_t *ids[] = {&t->bos_id, &t->eos_id, &t->unk_id, &t->pad_id};
    for (int i = 0; i < 4 && !rc; i++) {
        const cJSON *v = get(root, keys[i]);
        if (cJSON_IsObject(v)) v = get(v, "content");
        if (cJSON_IsString(v)) rc = piece_id(t, v->valuestring, path, keys[i], ids[i], err);
    }
    const cJSON *add[] = {get(root, "add_bos_token"), get(root, "add_eos_token")};
    for (int i = 0; i < 2 && !rc; i++) {
        if (!cJSON_IsBool(add[i])) continue;
        int32_t id = i ? t->eos_id : t->bos_id;
        if (cJSON_IsTrue(add[i]) && id < 0)
            rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: %s is true but there is no %s", path,
                             i ? "add_eos_token" : "add_bos_token", i ? "eos_token" : "bos_token");
        else if (i) t->n_suffix = cJSON_IsTrue(add[i]), t->suffix[0] = id;
        else t->n_prefix = cJSON_IsTrue(add[i]), t->prefix[0] = id;
    }
    cJSON_Delete(root_v);
    return rc;
}

/* ---------------------------------------------------------------- the file */

static int from_json(vene_tokenizer *t, const cJSON *root, const char *path, const char *config, vene_error *err) {
    const cJSON *model = get(root, "model"), *added = get(root, "added_tokens");
    if (!cJSON_IsObject(model)) return vene_errorf(err, VENE_ERR_FORMAT, "%s: no \"model\" object", path);
    if (added && !cJSON_IsArray(added))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: added_tokens is not an array", path);
    int word_level = tok_wordlevel_is(model);
    int rc = word_level ? VENE_OK : check_model(model, path, err);
    if (!rc) rc = load_vocab(t, get(model, "vocab"), added, path, err);
    if (!rc && word_level) { /* a vocabulary lookup of Whitespace-split words (tok_wordlevel.c) */
        snprintf(t->source, sizeof t->source, "tokenizer.json");
        return tok_wordlevel_finish(t, root, path, err);
    }
    if (!rc) rc = load_merges(t, get(model, "merges"), path, err);
    if (rc) return rc;
    t->byte_fallback = is_true(model, "byte_fallback");
    t->fuse_unk = is_true(model, "fuse_unk");
    t->ignore_merges = is_true(model, "ignore_merges");
    const cJSON *unk = get(model, "unk_token");
    if (cJSON_IsString(unk) && piece_id(t, unk->valuestring, path, "model.unk_token", &t->unk_id, err))
        return err->code;
    if (tok_json_pipeline(t, root, path, err) || post_processor(t, get(root, "post_processor"), path, err))
        return err->code;
    if (config && load_config(t, config, err)) return err->code;
    snprintf(t->source, sizeof t->source, "tokenizer.json");
    return tok_finish(t, path, err);
}

int tok_load_tokenizer_json(const char *path, const char *config, vene_tokenizer **out, vene_error *err) {
    *out = NULL;
    vene_tokenizer *t = tok_new();
    if (!t) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    void *root = NULL;
    int rc = tok_parse_json(path, &root, err);
    if (!rc) rc = from_json(t, root, path, config, err);
    cJSON_Delete(root);
    if (rc) {
        vene_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return VENE_OK;
}
