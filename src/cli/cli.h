/* Subcommands of the `vene` tool. Each returns the process exit status. */
#ifndef VENE_CLI_H
#define VENE_CLI_H

#include <stddef.h>

#include "vene.h"

int vene_cmd_info(int argc, char **argv);
int vene_cmd_tokenize(int argc, char **argv);
int vene_cmd_forward(int argc, char **argv);
int vene_cmd_run(int argc, char **argv);
int vene_cmd_train(int argc, char **argv);
int vene_cmd_init(int argc, char **argv);
int vene_cmd_dataset(int argc, char **argv);
int vene_cmd_generate(int argc, char **argv);
int vene_cmd_trace(int argc, char **argv); /* sweeps */
int vene_cmd_patch(int argc, char **argv); /* sweeps */
int vene_cmd_facts(int argc, char **argv);
int vene_cmd_train_lm(int argc, char **argv);

/* Print "vene: <msg>" on stderr and return 1. */
int vene_cli_fail(const char *fmt, ...);
/* "1.2 MB" style size into buf. */
const char *vene_cli_bytes(double bytes, char *buf, int n);

/* Option values (cli_args.c). parse_size: --max-memory's SIZE, 0 on success; size_arg
 * prints the error for command `cmd` and returns 1; memory_left: what the forward may use
 * once the model's weights and `extra` bytes are counted, or prints why nothing is left and
 * returns 1. */
int vene_cli_parse_size(const char *s, size_t *out);
/* A whole number option value in lo..hi into *out, or prints the error and returns 1. */
int vene_cli_int_arg(const char *cmd, const char *opt, const char *arg, int lo, int hi, int *out);
int vene_cli_size_arg(const char *cmd, const char *arg, size_t *out);
int vene_cli_memory_left(const vene_model *m, const char *arg, size_t max_memory, size_t extra, size_t *left);

#endif
