/* Replays the fuzzers' saved findings (every file in fuzz/regressions/<target>/) and seed
 * corpora (fuzz/corpus/<target>/) through the same entry points the libFuzzer targets use
 * (fuzz/targets.c), without libFuzzer, so that crashes found once stay fixed.
 *
 * Every input runs in a forked child (with an alarm: 120 s, 20 s for an open finding), so a crash is reported against its
 * file instead of ending the test. Findings whose library fix has not landed yet are listed
 * in known_failing[] below: they are still run, and a failure prints a note instead of
 * failing the test; when such an input passes, a note says so (remove it from the list
 * once the fix is in — in a build without sanitizers some UB findings pass anyway).
 *
 * Runs from tests/ (ctest does), so the files are under ../fuzz. */
#include "../fuzz/targets.c"

#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <sys/wait.h>

#if defined(__SANITIZE_ADDRESS__)
#define VF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VF_ASAN 1
#endif
#endif
#ifdef VF_ASAN
#include <sanitizer/lsan_interface.h>
#endif

#include "test.h"

/* Findings not fixed in the library yet: path under fuzz/regressions, and why. */
static const struct {
    const char *path;
    const char *note;
} known_failing[] = {
    /* {"fuzz_<target>/<file>", "file.c function: what goes wrong"}, while a fix is pending */
    {NULL, NULL},
};

static const char *known_note(const char *rel) {
    for (size_t i = 0; known_failing[i].path; i++)
        if (!strcmp(known_failing[i].path, rel)) return known_failing[i].note;
    return NULL;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (!b || fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

enum { RUN_ACCEPTED, RUN_REJECTED, RUN_FAILED };

/* One input in a child process: RUN_ACCEPTED / RUN_REJECTED (the library said no cleanly)
 * or RUN_FAILED (crash, abort, leak, timeout); `how` describes a failure. */
static int run_one(vene_fuzz_fn fn, const char *path, unsigned limit_s, char *how, size_t hn) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(how, hn, "fork failed");
        return RUN_FAILED;
    }
    if (pid == 0) {
        alarm(limit_s);
#ifndef VF_ASAN
        /* findings that allocate from a size in the input fail fast instead of paging */
        struct rlimit as = {(rlim_t)4 << 30, (rlim_t)4 << 30};
        setrlimit(RLIMIT_AS, &as);
#endif
        size_t n = 0;
        uint8_t *d = slurp(path, &n);
        if (!d) _exit(4);
        int rc = fn(d, n);
        free(d);
#ifdef VF_ASAN
        if (__lsan_do_recoverable_leak_check()) _exit(3);
#endif
        _exit(rc == 0 ? 0 : 10); /* _exit: the parent owns the scratch folder's atexit */
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) {
        snprintf(how, hn, "waitpid failed");
        return RUN_FAILED;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return RUN_ACCEPTED;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 10) return RUN_REJECTED;
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) snprintf(how, hn, "timeout (%u s)", limit_s);
    else if (WIFSIGNALED(st)) snprintf(how, hn, "%s", strsignal(WTERMSIG(st)));
    else snprintf(how, hn, "exit status %d%s", WEXITSTATUS(st), WEXITSTATUS(st) == 3 ? " (leak)" : " (sanitizer report)");
    return RUN_FAILED;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted file names of a folder (NULL-terminated; NULL when the folder is missing). */
static char **list_dir(const char *dir, int *count) {
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **v = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (*count + 1 >= cap) {
            cap = cap ? 2 * cap : 64;
            v = realloc(v, sizeof *v * (size_t)cap);
        }
        v[(*count)++] = strdup(e->d_name);
    }
    closedir(d);
    if (!v) v = calloc(1, sizeof *v);
    else qsort(v, (size_t)*count, sizeof *v, cmp_str);
    v[*count] = NULL;
    return v;
}

int main(void) {
    struct stat st;
    if (stat("../fuzz/targets.c", &st) != 0) {
        fprintf(stderr, "note: ../fuzz not found: run from the tests/ folder (ctest does)\n");
        CHECK(0);
        TEST_MAIN_END();
    }
    vene_fuzz_set_root("..");
    /* the static state (tokenizer, models, scratch folders) is made once here, before the
     * children fork, so each input costs one fork */
    for (size_t t = 0; t < sizeof vene_fuzz_targets / sizeof vene_fuzz_targets[0]; t++)
        vene_fuzz_targets[t].fn((const uint8_t *)"", 0);

    int known_seen = 0;
    for (size_t t = 0; t < sizeof vene_fuzz_targets / sizeof vene_fuzz_targets[0]; t++) {
        const char *name = vene_fuzz_targets[t].name;
        for (int kind = 0; kind < 2; kind++) {
            char dir[512];
            snprintf(dir, sizeof dir, "../fuzz/%s/%s", kind ? "corpus" : "regressions", name);
            int n = 0, acc = 0, rej = 0, known = 0;
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            char **files = list_dir(dir, &n);
            if (kind == 1) CHECK_MSG(files && n > 0, "%s: no seed corpus", dir);
            for (int i = 0; files && i < n; i++) {
                char path[1024], rel[512], how[128] = "";
                snprintf(path, sizeof path, "%s/%s", dir, files[i]);
                snprintf(rel, sizeof rel, "%s/%s", name, files[i]);
                const char *note = kind == 0 ? known_note(rel) : NULL;
                /* an open finding may be a slow one: 20 s is enough to see it fail */
                int r = run_one(vene_fuzz_targets[t].fn, path, note ? 20 : 120, how, sizeof how);
                if (r == RUN_FAILED && note) {
                    printf("KNOWN FAILING (not fixed yet): fuzz/regressions/%s: %s\n    cause: %s\n", rel, how, note);
                    known++;
                    known_seen++;
                } else if (r == RUN_FAILED) {
                    CHECK_MSG(0, "%s: %s (replay: fuzz/build/%s %s)", path, how, name, path + 3);
                } else {
                    if (note)
                        printf("note: known finding fuzz/regressions/%s does not fail in this build (fixed, or it needs "
                               "ASan/UBSan to show)\n", rel);
                    CHECK(1);
                }
                acc += r == RUN_ACCEPTED;
                rej += r == RUN_REJECTED;
                free(files[i]);
            }
            free(files);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (n)
                printf("%-24s %-11s %3d inputs: %3d accepted, %3d rejected cleanly, %d known failing (%.1f s)\n", name,
                       kind ? "seeds" : "regressions", n, acc, rej, known,
                       (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
            /* the seeds are valid inputs: most must load (a broken fixture or harness shows here) */
            if (kind == 1 && n) CHECK_MSG(acc > 0, "%s: no seed was accepted", dir);
        }
    }
    if (known_seen) printf("%d known-failing findings (see fuzz/README.md)\n", known_seen);
    vene_fuzz_cleanup();
    TEST_MAIN_END();
}
