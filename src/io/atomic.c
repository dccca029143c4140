#include "io/atomic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

int vene_write_atomic(const char *path, const void *data, size_t n, vene_error *err) {
    size_t tl = strlen(path) + 16;
    char *tmp = malloc(tl);
    if (!tmp) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
    snprintf(tmp, tl, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int rc = vene_errorf(err, VENE_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        free(tmp);
        return rc;
    }
    const unsigned char *p = data;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    int ok = done == n && fchmod(fd, 0644) == 0 && fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0) ok = 0;
    int rc = VENE_OK;
    if (!ok) rc = vene_errorf(err, VENE_ERR_IO, "%s: write failed: %s", path, strerror(saved ? saved : errno));
    else if (rename(tmp, path) != 0)
        rc = vene_errorf(err, VENE_ERR_IO, "%s: cannot rename the temporary file into place: %s", path, strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}
