/* Subcommands of the `vene` tool. Each returns the process exit status. */
#ifndef VENE_CLI_H
#define VENE_CLI_H

int vene_cmd_info(int argc, char **argv);
int vene_cmd_tokenize(int argc, char **argv);
int vene_cmd_forward(int argc, char **argv);
int vene_cmd_run(int argc, char **argv);
int vene_cmd_train(int argc, char **argv);
int vene_cmd_init(int argc, char **argv);
int vene_cmd_facts(int argc, char **argv);
int vene_cmd_train_lm(int argc, char **argv);

/* Print "vene: <msg>" on stderr and return 1. */
int vene_cli_fail(const char *fmt, ...);
/* "1.2 MB" style size into buf. */
const char *vene_cli_bytes(double bytes, char *buf, int n);

#endif
