/* `vene tokenize MODEL TEXT [--ids] [--special] [--parse-special]`: the ids a model would
 * see for a text. MODEL is a model folder, a tokenizer.json or a GGUF file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "vene.h"

#define USAGE "vene tokenize MODEL TEXT [--ids] [--special] [--parse-special]"

static void usage(void) {
    printf("usage: " USAGE "\n\n"
           "Encodes TEXT with the tokenizer of MODEL: a model folder (tokenizer.json, vocab.json +\n"
           "merges.txt, or encoder.json + vocab.bpe), a tokenizer.json file, or a llama.cpp GGUF file\n"
           "(its vocabulary). By default no BOS/EOS is added and special-token text such as\n"
           "<|endoftext|> or <s> is not parsed as special.\n"
           "Prints one line per token: the id, a tab, and the text the token stands for, quoted\n"
           "(bytes that are not printable UTF-8 by themselves show as \\xNN).\n"
           "--ids            prints only the ids, space-separated, on one line\n"
           "--special        adds BOS/EOS as the tokenizer is configured (tokenizer_config.json,\n"
           "                 the post-processor, or the GGUF metadata)\n"
           "--parse-special  encodes special-token text in TEXT as those tokens\n"
           "TEXT may start with '-'; put `--` before a TEXT that is exactly an option name.\n");
}

/* Length of the valid UTF-8 sequence at s (n bytes left) if it is one of at least two
 * bytes, else 0: a token often holds part of a character, which must not reach the
 * terminal raw. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    size_t k = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 && s[0] < 0xE0 ? 2 : 0;
    if (!k || k > n) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    unsigned c1 = s[1];
    if ((s[0] == 0xE0 && c1 < 0xA0) || (s[0] == 0xED && c1 >= 0xA0) || (s[0] == 0xF0 && c1 < 0x90) ||
        (s[0] == 0xF4 && c1 >= 0x90))
        return 0; /* overlong, surrogate or past U+10FFFF */
    return k;
}

static void print_quoted(const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)text;
    putchar('"');
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        size_t k = c >= 0x80 ? utf8_seq(s + i, len - i) : 0;
        if (k) {
            fwrite(s + i, 1, k, stdout);
            i += k;
            continue;
        }
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c < 0x20 || c >= 0x7F) printf("\\x%02x", c);
        else putchar((int)c);
        i++;
    }
    putchar('"');
}

int vene_cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL, *text = NULL;
    int ids_only = 0, options = 1;
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            usage();
            return 0;
        } else if (options && !strcmp(a, "--ids")) {
            ids_only = 1;
        } else if (options && !strcmp(a, "--special")) {
            flags |= VENE_TOK_ADD_SPECIAL;
        } else if (options && !strcmp(a, "--parse-special")) {
            flags |= VENE_TOK_PARSE_SPECIAL;
        } else if (options && !strcmp(a, "--")) {
            options = 0;
        } else if (options && !strncmp(a, "--", 2)) {
            return vene_cli_fail("tokenize: unknown option \"%s\"", a);
        } else if (!dir) {
            dir = a;
        } else if (!text) {
            text = a;
        } else {
            return vene_cli_fail("tokenize: unexpected argument \"%s\" (quote TEXT as one argument)", a);
        }
    }
    if (!dir || !text) return vene_cli_fail("tokenize: usage: " USAGE);
    if (!text[0]) return vene_cli_fail("tokenize: empty text");
    vene_error err = {0};
    vene_tokenizer *t = NULL;
    if (vene_tokenizer_load(dir, &t, &err)) return vene_cli_fail("%s", err.msg);
    int32_t *ids = NULL;
    size_t n = 0;
    if (vene_tokenize_ex(t, text, strlen(text), flags, &ids, &n, &err)) {
        vene_tokenizer_free(t);
        return vene_cli_fail("%s", err.msg);
    }
    for (size_t i = 0; i < n; i++) {
        if (ids_only) {
            printf(i ? " %d" : "%d", ids[i]);
            continue;
        }
        size_t len = 0;
        const char *piece = vene_token_text(t, ids[i], &len);
        printf("%d\t", ids[i]);
        print_quoted(piece ? piece : "", piece ? len : 0);
        putchar('\n');
    }
    if (ids_only) putchar('\n');
    vene_free(ids);
    vene_tokenizer_free(t);
    return 0;
}
