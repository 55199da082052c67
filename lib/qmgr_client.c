/*
 * NAME
 *	qmgr_client - one blocking request to the queue manager
 * DESCRIPTION
 *	See qmgr_client.h. The connect itself is non-blocking and bounded by
 *	the same timeout as the reply, so a wedged qmgr cannot hang an
 *	operator's command.
 * DIAGNOSTICS
 *	Errors are returned as text, never logged: the caller decides
 *	whether "qmgr is not running" matters (postsuper -r ignores it).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "buf.h"
#include "qmgr_client.h"
#include "xalloc.h"

static int fail(char **reason_r, int err, char *text)
{
    if (reason_r != NULL)
        *reason_r = text;
    else
        free(text);
    errno = err;
    return -1;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int qmgr_connect(const char *queue_dir, int timeout_ms, char **reason_r)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    char *path = xasprintf("%s/public/qmgr", queue_dir);
    if (strlen(path) >= sizeof(sun.sun_path)) {
        fail(reason_r, ENAMETOOLONG, xasprintf("socket path too long: %s", path));
        free(path);
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int err = errno;
        free(path);
        return fail(reason_r, err, xasprintf("socket: %s", strerror(err)));
    }
    int r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    if (r < 0 && errno == EAGAIN) {
        /* Backlog full: a busy qmgr, wait for it. */
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int pr = poll(&pfd, 1, timeout_ms);
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (pr == 0)
            errno = ETIMEDOUT;
        else if (pr > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0)
            errno = soerr;
        r = (pr > 0 && soerr == 0) ? 0 : -1;
    }
    if (r < 0) {
        int err = errno;
        close(fd);
        if (err == ECONNREFUSED || err == ENOENT) {
            free(path);
            return fail(reason_r, err, xstrdup("qmgr is not running"));
        }
        fail(reason_r, err, xasprintf("connect %s: %s", path, strerror(err)));
        free(path);
        return -1;
    }
    free(path);
    return fd;
}

int qmgr_request(const char *queue_dir, const char *request, const char *queue_id,
                 int timeout_ms, char **reason_r)
{
    if (reason_r != NULL)
        *reason_r = NULL;
    long long deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;
    int fd = qmgr_connect(queue_dir, timeout_ms, reason_r);
    if (fd < 0)
        return -1;

    struct attr_msg msg;
    attr_msg_init(&msg);
    attr_msg_add(&msg, "id", "1");
    attr_msg_add(&msg, "request", request);
    if (queue_id != NULL)
        attr_msg_add(&msg, "queue_id", queue_id);
    int r = attr_msg_write_fd(fd, &msg);
    attr_msg_clear(&msg);
    if (r < 0) {
        int err = errno;
        close(fd);
        return fail(reason_r, err, xasprintf("send request to qmgr: %s", strerror(err)));
    }

    struct buf in;
    buf_init(&in, 0);
    int left = -1;
    if (timeout_ms >= 0) {
        long long ms = deadline - now_ms();
        left = ms > 0 ? (int)ms : 0;
    }
    r = attr_msg_read_fd(fd, &in, &msg, left);
    int err = errno;
    buf_free(&in);
    close(fd);
    if (r < 0) {
        attr_msg_clear(&msg);
        if (err == ETIMEDOUT)
            return fail(reason_r, err, xstrdup("timeout waiting for qmgr"));
        if (err == ECONNRESET)
            return fail(reason_r, err, xstrdup("qmgr closed the connection"));
        return fail(reason_r, err, xasprintf("read reply from qmgr: %s", strerror(err)));
    }
    const char *id = attr_msg_get(&msg, "id");
    const char *status = attr_msg_get(&msg, "status");
    if (id == NULL || strcmp(id, "1") != 0 || status == NULL) {
        attr_msg_clear(&msg);
        return fail(reason_r, EPROTO, xstrdup("malformed reply from qmgr"));
    }
    if (strcmp(status, "ok") == 0) {
        attr_msg_clear(&msg);
        return 0;
    }
    const char *reason = attr_msg_get(&msg, "reason");
    char *text = xstrdup(reason != NULL ? reason : status);
    attr_msg_clear(&msg);
    return fail(reason_r, EINVAL, text);
}
