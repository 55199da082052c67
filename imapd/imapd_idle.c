/*
 * NAME
 *	imapd_idle - IDLE (RFC 2177): push mailbox changes as they happen
 * DESCRIPTION
 *	IDLE answers "+ idling" and, in the selected state, watches the
 *	folder's new/ and cur/ with inotify: a delivery (a rename into
 *	new/), a flag change (a rename in cur/) or an expunge (an unlink)
 *	wakes the session, which waits COALESCE_MS more so that a burst of
 *	changes gives one update, then brings its view up to date and sends
 *	EXISTS / RECENT / FETCH / EXPUNGE (imapd_mailbox_notify with
 *	expunges allowed). Every KEEPALIVE_MS an "* OK Still here" keeps NAT
 *	boxes from dropping the connection. In the authenticated state IDLE
 *	only waits for DONE.
 *
 *	One inotify instance serves the whole process (the kernel allows
 *	few instances per user, 128 by default, but many watches). The
 *	kernel hands out one watch descriptor per directory and instance,
 *	so sessions idling on the same folder share it; a table counts the
 *	users of each descriptor and removes it with the last one.
 * DIAGNOSTICS
 *	When inotify cannot be used (no instance, no watch) the session
 *	polls instead, every POLL_MS (a staleness check is two stat()
 *	calls), and the fallback is logged once per process. When the
 *	folder's lock is held by another process the update is retried
 *	every POLL_MS until it goes through.
 * LIMITS
 *	IDLE itself lasts at most imapd_idle_timeout (imapd_session.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "imapd.h"
#include "imapd_mailbox_private.h"
#include "log.h"
#include "xalloc.h"

#define COALESCE_MS 50
#define POLL_MS 500
#define KEEPALIVE_MS (120 * 1000)
#define WATCH_MASK (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB)

struct imapd_idle {
    struct imapd_session *s;
    int wd[2];                      /* new/, cur/; -1 when not watched */
    int polling;                    /* no inotify: poll_timer runs */
    struct event_timer *coalesce;   /* an update is due */
    struct event_timer *poll_timer;
    struct event_timer *keepalive;
    struct imapd_idle *prev, *next;
};

struct watch_ref {
    int wd;
    int refs;
    int dead;   /* the kernel dropped it (IN_IGNORED): do not remove it */
};

static int inotify_fd = -1;
static struct event_loop *inotify_loop;
static int inotify_failed_logged;
static struct watch_ref *watches;
static size_t watch_count, watch_alloc;
static struct imapd_idle *idle_list;

static void idle_update(struct event_loop *loop, void *ctx);

static void schedule_update(struct imapd_idle *idle, long long msec)
{
    if (idle->coalesce == NULL)
        idle->coalesce = event_timer_add(idle->s->loop, msec, idle_update, idle);
}

static void inotify_readable(struct event_loop *loop, int fd, int events, void *ctx)
{
    (void)loop;
    (void)events;
    (void)ctx;
    char chunk[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int woken[64];
    size_t nwoken = 0;
    int all = 0;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (char *p = chunk; p < chunk + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                all = 1;
                continue;
            }
            if (ev->mask & IN_IGNORED) {
                for (size_t i = 0; i < watch_count; i++)
                    if (watches[i].wd == ev->wd)
                        watches[i].dead = 1;
            }
            size_t i = 0;
            while (i < nwoken && woken[i] != ev->wd)
                i++;
            if (i == nwoken) {
                if (nwoken < sizeof(woken) / sizeof(woken[0]))
                    woken[nwoken++] = ev->wd;
                else
                    all = 1;
            }
        }
    }
    for (struct imapd_idle *idle = idle_list; idle != NULL; idle = idle->next) {
        int hit = all;
        for (size_t i = 0; i < nwoken && !hit; i++)
            hit = woken[i] == idle->wd[0] || woken[i] == idle->wd[1];
        if (hit)
            schedule_update(idle, COALESCE_MS);
    }
}

/* The process's inotify instance, created on first use. */
static int inotify_get(struct event_loop *loop)
{
    if (inotify_fd >= 0)
        return inotify_fd;
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0)
        return -1;
    if (event_fd_add(loop, fd, EVENT_READ, inotify_readable, NULL) < 0) {
        close(fd);
        return -1;
    }
    inotify_fd = fd;
    inotify_loop = loop;
    return fd;
}

static int watch_add(struct event_loop *loop, const char *dir)
{
    int fd = inotify_get(loop);
    if (fd < 0)
        return -1;
    int wd = inotify_add_watch(fd, dir, WATCH_MASK | IN_ONLYDIR);
    if (wd < 0)
        return -1;
    for (size_t i = 0; i < watch_count; i++) {
        if (watches[i].wd == wd) {
            if (watches[i].dead) {
                /* The number came back for a new directory. */
                watches[i].dead = 0;
                watches[i].refs = 0;
            }
            watches[i].refs++;
            return wd;
        }
    }
    if (watch_count == watch_alloc) {
        watch_alloc = watch_alloc ? watch_alloc * 2 : 16;
        watches = xreallocarray(watches, watch_alloc, sizeof(*watches));
    }
    watches[watch_count++] = (struct watch_ref){ .wd = wd, .refs = 1 };
    return wd;
}

static void watch_release(int wd)
{
    if (wd < 0)
        return;
    for (size_t i = 0; i < watch_count; i++) {
        if (watches[i].wd != wd)
            continue;
        if (--watches[i].refs > 0)
            return;
        if (!watches[i].dead && inotify_fd >= 0)
            (void)inotify_rm_watch(inotify_fd, wd);
        watches[i] = watches[--watch_count];
        break;
    }
    if (watch_count == 0 && inotify_fd >= 0) {
        /* Nobody idles: give the instance back. */
        event_fd_del(inotify_loop, inotify_fd);
        close(inotify_fd);
        inotify_fd = -1;
        inotify_loop = NULL;
    }
}

static void poll_tick(struct event_loop *loop, void *ctx)
{
    struct imapd_idle *idle = ctx;
    idle->poll_timer = NULL;
    schedule_update(idle, 0);
    idle->poll_timer = event_timer_add(loop, POLL_MS, poll_tick, idle);
}

static void idle_update(struct event_loop *loop, void *ctx)
{
    struct imapd_idle *idle = ctx;
    idle->coalesce = NULL;
    struct imapd_session *s = idle->s;
    if (s->freed || s->mbox == NULL || s->state != IMAPD_STATE_SELECTED)
        return;
    if (imapd_mbox_refresh(s, 1) && !idle->polling)
        /* Locked by another process: try again soon. */
        idle->coalesce = event_timer_add(loop, POLL_MS, idle_update, idle);
}

static void keepalive(struct event_loop *loop, void *ctx)
{
    struct imapd_idle *idle = ctx;
    idle->keepalive = NULL;
    if (!idle->s->freed)
        imapd_untagged(idle->s, "OK Still here");
    idle->keepalive = event_timer_add(loop, KEEPALIVE_MS, keepalive, idle);
}

int imapd_idle_start(struct imapd_session *s, const char *tag)
{
    if (s->idle != NULL)
        msg_panic("imapd_idle_start: already idling");
    struct imapd_idle *idle = xcalloc(1, sizeof(*idle));
    idle->s = s;
    idle->wd[0] = idle->wd[1] = -1;
    snprintf(s->idle_tag, sizeof(s->idle_tag), "%s", tag);
    s->idle = idle;
    idle->next = idle_list;
    if (idle_list != NULL)
        idle_list->prev = idle;
    idle_list = idle;

    buf_append_str(imapd_out(s), "+ idling\r\n");
    idle->keepalive = event_timer_add(s->loop, KEEPALIVE_MS, keepalive, idle);
    if (s->mbox == NULL)
        return 0;

    static const char *const subdirs[2] = { "new", "cur" };
    int ok = 1;
    for (int i = 0; i < 2 && ok; i++) {
        char *dir = xasprintf("%s/%s", s->mbox->path, subdirs[i]);
        idle->wd[i] = watch_add(s->loop, dir);
        ok = idle->wd[i] >= 0;
        if (!ok && !inotify_failed_logged) {
            msg_warn("imapd: inotify on %s: %m; IDLE polls every %d ms instead", dir, POLL_MS);
            inotify_failed_logged = 1;
        }
        free(dir);
    }
    if (!ok) {
        for (int i = 0; i < 2; i++) {
            watch_release(idle->wd[i]);
            idle->wd[i] = -1;
        }
        idle->polling = 1;
        idle->poll_timer = event_timer_add(s->loop, POLL_MS, poll_tick, idle);
    }
    /* What changed between the last command and the watch. */
    imapd_mbox_refresh(s, 1);
    return 0;
}

void imapd_idle_stop(struct imapd_session *s, int send_reply)
{
    struct imapd_idle *idle = s->idle;
    if (idle == NULL)
        return;
    s->idle = NULL;
    event_timer_cancel(s->loop, &idle->coalesce);
    event_timer_cancel(s->loop, &idle->poll_timer);
    event_timer_cancel(s->loop, &idle->keepalive);
    for (int i = 0; i < 2; i++)
        watch_release(idle->wd[i]);
    if (idle->prev != NULL)
        idle->prev->next = idle->next;
    else
        idle_list = idle->next;
    if (idle->next != NULL)
        idle->next->prev = idle->prev;
    free(idle);
    if (!send_reply || s->freed)
        return;
    if (s->mbox != NULL && s->state == IMAPD_STATE_SELECTED)
        imapd_mailbox_notify(s, 1);
    imapd_tagged(s, s->idle_tag, "OK", "Idle completed.");
}
