/* Subcommands of the `vene` tool. Each returns the process exit status. */
#ifndef VENE_CLI_H
#define VENE_CLI_H

int vene_cmd_info(int argc, char **argv);
int vene_cmd_tokenize(int argc, char **argv);
int vene_cmd_forward(int argc, char **argv);
int vene_cmd_run(int argc, char **argv);
int vene_cmd_generate(int argc, char **argv);
int vene_cmd_trace(int argc, char **argv); /* sweeps */
int vene_cmd_patch(int argc, char **argv); /* sweeps */

/* Print "vene: <msg>" on stderr and return 1. */
int vene_cli_fail(const char *fmt, ...);
/* "1.2 MB" style size into buf. */
const char *vene_cli_bytes(double bytes, char *buf, int n);

#endif
