#include "train/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double vene_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void vene_progress_start(vene_progress *p, const char *label, int64_t total, int quiet) {
    memset(p, 0, sizeof *p);
    p->tty = isatty(2);
    p->quiet = quiet;
    p->t0 = p->last = vene_now();
    p->total = total > 0 ? total : 1;
    snprintf(p->label, sizeof p->label, "%s", label);
}

static void fmt_time(double s, char *buf, size_t n) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static void draw(vene_progress *p, int64_t done, const char *extra, int final) {
    double now = vene_now(), el = now - p->t0;
    double frac = (double)done / (double)p->total;
    char eta[32], spent[32];
    fmt_time(frac > 0 ? el / frac - el : 0, eta, sizeof eta);
    fmt_time(el, spent, sizeof spent);
    if (p->tty) {
        char bar[31];
        int fill = (int)(frac * 30 + 0.5);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%s [%s] %3.0f%% %lld/%lld %s%s %s %s\033[K", p->label, bar, frac * 100, (long long)done,
                (long long)p->total, extra ? extra : "", extra ? " |" : "", final ? "took" : "eta", final ? spent : eta);
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s %lld/%lld (%3.0f%%) %s %s %s\n", p->label, (long long)done, (long long)p->total, frac * 100,
                extra ? extra : "", final ? "took" : "eta", final ? spent : eta);
    }
    fflush(stderr);
}

void vene_progress_update(vene_progress *p, int64_t done, const char *extra) {
    if (p->quiet) return;
    double now = vene_now();
    if (now - p->last < (p->tty ? 0.1 : 5.0)) return;
    p->last = now;
    draw(p, done, extra, 0);
}

void vene_progress_end(vene_progress *p, const char *extra) {
    if (!p->quiet) draw(p, p->total, extra, 1);
}
