/*
 * NAME
 *	safe_file - the one way files are written durably and read whole
 * DESCRIPTION
 *	See safe_file.h. The temporary file lives in the target's own
 *	directory (rename must not cross file systems) and carries a
 *	mkstemp suffix, so two writers never share it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safe_file.h"
#include "xalloc.h"

int safe_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int safe_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return r;
}

int safe_fsync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return safe_fsync_dir(".");
    if (slash == path)
        return safe_fsync_dir("/");
    char *dir = xstrndup(path, (size_t)(slash - path));
    int r = safe_fsync_dir(dir);
    int saved = errno;
    free(dir);
    errno = saved;
    return r;
}

int safe_read_file(const char *path, struct buf *out, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t start = out->len;
    for (;;) {
        ssize_t n = buf_read_fd(out, fd, 65536);
        if (n < 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        if (n == 0)
            break;
        if (out->len - start > max) {
            close(fd);
            errno = EFBIG;
            return -1;
        }
    }
    close(fd);
    return 0;
}

int safe_file_replace(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
                      gid_t gid, const char **step_r)
{
    char *tmp = xasprintf("%s.tmpXXXXXX", path);
    const char *step = "create";
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        goto fail;
    step = "write";
    if (fchmod(fd, mode) < 0)
        goto fail;
    if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0)
        goto fail;
    if (safe_write_all(fd, data, len) < 0)
        goto fail;
    step = "fsync";
    if (fsync(fd) < 0)
        goto fail;
    int r = close(fd);
    fd = -1;
    if (r < 0)
        goto fail;
    step = "rename";
    if (rename(tmp, path) < 0)
        goto fail;
    free(tmp);
    if (safe_fsync_parent(path) < 0) {
        *step_r = "fsync directory";
        return -1;
    }
    return 0;

fail:;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(tmp);
    *step_r = step;
    errno = saved;
    return -1;
}
