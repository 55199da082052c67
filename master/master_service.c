/*
 * NAME
 *	master_service - listeners, child processes, restarts
 * DESCRIPTION
 *	For every master.cf service master owns the listening socket (an
 *	inet address or a UNIX socket under $queue_directory/private or
 *	public) and hands it to children as fd 3, with a status pipe as
 *	fd 4. A child writes 'B' when it is busy (a single server serving
 *	a connection) and 'I' when it is idle again; event servers never
 *	say busy. While a service has no idle child and is below maxproc,
 *	master watches the listener and spawns one more process when a
 *	connection waits. Services with a wakeup time (qmgr) start with
 *	master and are kept running.
 *
 *	A child that exits abnormally throttles its service: the next
 *	spawn waits 1 s, doubling up to master_restart_max_backoff; a
 *	child that ran a minute or more resets the back-off.
 *
 *	A service with chroot = y gets -j on its command line: the child
 *	chroots itself into $queue_directory once it has read what it
 *	needs from outside (lib/server.h), and refuses to start when it is
 *	a daemon that cannot work there (local, pop3d, imapd).
 *
 *	Reload (SIGHUP): services that are unchanged keep their listener;
 *	their children get SIGHUP, stop accepting and exit when their
 *	sessions end, and new children start with the new configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "server.h"
#include "xalloc.h"

struct master_proc *master_procs;

static void proc_listener_cb(struct event_loop *loop, int fd, int events, void *ctx);
static void proc_status_cb(struct event_loop *loop, int fd, int events, void *ctx);
static void proc_update_watch(struct master_proc *proc);

static int bind_inet(const char *service_name, char **error_r)
{
    char *host = NULL, *port = NULL;
    if (master_cf_inet_address(service_name, &host, &port) < 0) {
        *error_r = xasprintf("bad inet service name: %s", service_name);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int err = getaddrinfo(host, port, &hints, &res);
    if (err != 0) {
        *error_r = xasprintf("%s: %s", service_name, gai_strerror(err));
        free(host);
        free(port);
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int on = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (fd >= 0 && res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        *error_r = xasprintf("bind %s: %s", service_name, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    free(host);
    free(port);
    return fd;
}

static int bind_unix(const char *service_name, int private_, char **error_r)
{
    const char *queue_dir = config_str("queue_directory");
    char *path = xasprintf("%s/%s/%s", queue_dir, private_ ? "private" : "public",
                           service_name);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sun.sun_path)) {
        *error_r = xasprintf("socket path too long: %s", path);
        free(path);
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    mode_t old = umask(private_ ? 0077 : 0);
    int r = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (r < 0 || listen(fd, 1024) < 0) {
        *error_r = xasprintf("bind %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        free(path);
        return -1;
    }
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam(config_str("mail_owner"));
        if (pw != NULL && chown(path, pw->pw_uid, pw->pw_gid) < 0)
            msg_warn("chown %s: %m", path);
    }
    free(path);
    return fd;
}

static char **copy_args(char **args)
{
    size_t n = 0;
    while (args && args[n])
        n++;
    char **copy = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        copy[i] = xstrdup(args[i]);
    return copy;
}

static void proc_free(struct master_proc **proc_p)
{
    struct master_proc *proc = *proc_p;
    free(proc->name);
    free(proc->type);
    free(proc->command);
    for (size_t i = 0; proc->args[i]; i++)
        free(proc->args[i]);
    free(proc->args);
    free(proc);
    *proc_p = NULL;
}

static void proc_spawn(struct master_proc *proc)
{
    const char *daemon_dir = config_str("daemon_directory");
    char *path = xasprintf("%s/%s", daemon_dir, proc->command);
    size_t nargs = 0;
    while (proc->args[nargs])
        nargs++;
    char **argv = xcalloc(nargs + 10, sizeof(char *));
    size_t a = 0;
    argv[a++] = path;
    argv[a++] = "-c";
    argv[a++] = (char *)master_config_dir;
    argv[a++] = "-n";
    argv[a++] = proc->name;
    argv[a++] = "-t";
    argv[a++] = proc->type;
    if (proc->chroot)
        argv[a++] = "-j";
    for (size_t i = 0; i < nargs; i++)
        argv[a++] = proc->args[i];
    if (master_verbose)
        argv[a++] = "-v";
    argv[a] = NULL;

    pid_t pid = fork();
    if (pid < 0) {
        msg_warn("fork: %m");
        free(argv);
        free(path);
        return;
    }
    if (pid == 0) {
        /* Child: fd 3 = listener, fd 4 = status pipe; nothing else leaks. */
        int listen_copy = proc->listen_fd >= 0 ? fcntl(proc->listen_fd, F_DUPFD_CLOEXEC, 10) : -1;
        int status_copy = fcntl(proc->status_fd[1], F_DUPFD_CLOEXEC, 10);
        if (listen_copy >= 0) {
            dup2(listen_copy, SERVER_LISTEN_FD);
        } else {
            close(SERVER_LISTEN_FD);
        }
        dup2(status_copy, SERVER_STATUS_FD);
        /* Children never hold the terminal or a pipe of whoever started
           master (`postern start | cat` must end); in the foreground
           (-d) they keep stderr and copy their log lines there. */
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            if (!master_foreground)
                dup2(devnull, 2);
            if (devnull > 2)
                close(devnull);
        }
        if (master_foreground)
            setenv("POSTERN_LOG_STDERR", "1", 1);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execv(path, argv);
        msg_fatal("exec %s: %m", path);
    }
    struct master_child *child = xcalloc(1, sizeof(*child));
    child->pid = pid;
    child->started_ms = event_now_ms(master_loop);
    child->next = proc->children;
    proc->children = child;
    proc->child_count++;
    msg_debug("spawned %s (%s) pid %d", proc->name, path, (int)pid);
    free(argv);
    free(path);
}

static void proc_respawn_cb(struct event_loop *loop, void *ctx)
{
    struct master_proc *proc = ctx;
    proc->respawn_timer = NULL;
    proc_update_watch(proc);
}

/* Decides whether to spawn now, watch the listener, or wait. */
static void proc_update_watch(struct master_proc *proc)
{
    if (proc->stale)
        return;
    long long now = event_now_ms(master_loop);
    int throttled = proc->throttled_until_ms > now;
    if (throttled) {
        if (proc->respawn_timer == NULL)
            proc->respawn_timer = event_timer_add(master_loop, proc->throttled_until_ms - now,
                                                  proc_respawn_cb, proc);
    } else if (proc->wakeup > 0 && proc->child_count == 0) {
        proc_spawn(proc);
    }
    int want_watch = !throttled && proc->listen_fd >= 0 &&
                     proc->child_count - proc->busy_count <= 0 &&
                     proc->child_count < proc->maxproc;
    if (want_watch && !proc->watching_listener) {
        event_fd_add(master_loop, proc->listen_fd, EVENT_READ, proc_listener_cb, proc);
        proc->watching_listener = 1;
    } else if (!want_watch && proc->watching_listener) {
        event_fd_del(master_loop, proc->listen_fd);
        proc->watching_listener = 0;
    }
}

static void proc_listener_cb(struct event_loop *loop, int fd, int events, void *ctx)
{
    struct master_proc *proc = ctx;
    if (proc->child_count < proc->maxproc)
        proc_spawn(proc);
    proc_update_watch(proc);
}

static void proc_status_cb(struct event_loop *loop, int fd, int events, void *ctx)
{
    struct master_proc *proc = ctx;
    char status[256];
    ssize_t n = read(fd, status, sizeof(status));
    for (ssize_t i = 0; i < n; i++) {
        if (status[i] == 'B' && proc->busy_count < proc->child_count)
            proc->busy_count++;
        else if (status[i] == 'I' && proc->busy_count > 0)
            proc->busy_count--;
    }
    proc_update_watch(proc);
}

static struct master_proc *proc_create(const struct master_service *svc, char **error_r)
{
    if (strcmp(svc->type, "inet") != 0 && strcmp(svc->type, "unix") != 0) {
        *error_r = xasprintf("%s, line %d: service type %s is not supported", svc->file,
                             svc->line, svc->type);
        return NULL;
    }
    struct master_proc *proc = xcalloc(1, sizeof(*proc));
    proc->name = xstrdup(svc->name);
    proc->type = xstrdup(svc->type);
    proc->command = xstrdup(svc->command);
    proc->args = copy_args(svc->args);
    proc->maxproc = svc->maxproc > 0 ? svc->maxproc : 1;
    proc->wakeup = svc->wakeup;
    proc->chroot = svc->chroot;
    proc->listen_fd = strcmp(svc->type, "inet") == 0 ? bind_inet(svc->name, error_r)
                                                      : bind_unix(svc->name, svc->private_, error_r);
    if (proc->listen_fd < 0) {
        proc_free(&proc);
        return NULL;
    }
    if (pipe2(proc->status_fd, O_CLOEXEC | O_NONBLOCK) < 0)
        msg_fatal("pipe: %m");
    event_fd_add(master_loop, proc->status_fd[0], EVENT_READ, proc_status_cb, proc);
    return proc;
}

static void proc_close(struct master_proc *proc)
{
    if (proc->watching_listener)
        event_fd_del(master_loop, proc->listen_fd);
    proc->watching_listener = 0;
    if (proc->listen_fd >= 0)
        close(proc->listen_fd);
    proc->listen_fd = -1;
    event_timer_cancel(master_loop, &proc->respawn_timer);
}

static void proc_signal_children(struct master_proc *proc, int sig)
{
    for (struct master_child *c = proc->children; c; c = c->next)
        kill(c->pid, sig);
}

int master_services_start(const char *master_cf_path, char **error_r)
{
    struct master_service *services;
    size_t count;
    if (master_cf_load(master_cf_path, &services, &count, error_r) < 0)
        return -1;
    struct master_proc **tail = &master_procs;
    for (size_t i = 0; i < count; i++) {
        struct master_proc *proc = proc_create(&services[i], error_r);
        if (proc == NULL) {
            master_cf_free(&services, count);
            return -1;
        }
        *tail = proc;
        tail = &proc->next;
    }
    master_cf_free(&services, count);
    for (struct master_proc *p = master_procs; p; p = p->next)
        proc_update_watch(p);
    return 0;
}

static struct master_proc *find_proc(struct master_proc *list, const struct master_service *svc)
{
    for (struct master_proc *p = list; p; p = p->next)
        if (!p->stale && strcmp(p->name, svc->name) == 0 && strcmp(p->type, svc->type) == 0)
            return p;
    return NULL;
}

void master_services_reload(const char *master_cf_path)
{
    struct master_service *services;
    size_t count;
    char *error = NULL;
    if (master_cf_load(master_cf_path, &services, &count, &error) < 0) {
        msg_warn("reload: %s; keeping the old services", error);
        free(error);
        return;
    }
    struct master_proc *old = master_procs;
    master_procs = NULL;
    struct master_proc **tail = &master_procs;
    for (size_t i = 0; i < count; i++) {
        struct master_proc *proc = find_proc(old, &services[i]);
        if (proc != NULL) {
            /* Keep the listener; take the process out of the old list. */
            struct master_proc **pp = &old;
            while (*pp != proc)
                pp = &(*pp)->next;
            *pp = proc->next;
            proc->next = NULL;
            for (size_t j = 0; proc->args[j]; j++)
                free(proc->args[j]);
            free(proc->args);
            proc->args = copy_args(services[i].args);
            free(proc->command);
            proc->command = xstrdup(services[i].command);
            proc->maxproc = services[i].maxproc > 0 ? services[i].maxproc : 1;
            proc->wakeup = services[i].wakeup;
            proc->chroot = services[i].chroot;
            if (proc->wakeup > 0) {
                /* A kept-running service (qmgr) has no sessions to finish:
                   it is restarted with the new configuration when reaped. */
                proc_signal_children(proc, SIGTERM);
                *tail = proc;
                tail = &proc->next;
                continue;
            }
            /* Old children drain and exit; their slots stay counted until
               reaped, so allow new ones next to them. */
            proc_signal_children(proc, SIGHUP);
            for (struct master_child *c = proc->children; c; c = c->next)
                c->busy = -1;   /* draining */
            proc->maxproc += proc->child_count;
            proc->busy_count = proc->child_count;
        } else {
            char *err = NULL;
            proc = proc_create(&services[i], &err);
            if (proc == NULL) {
                msg_warn("reload: %s", err);
                free(err);
                continue;
            }
        }
        *tail = proc;
        tail = &proc->next;
    }
    master_cf_free(&services, count);
    /* Services that went away: close listeners, let children finish. */
    while (old != NULL) {
        struct master_proc *proc = old;
        old = old->next;
        proc_close(proc);
        proc->stale = 1;
        proc_signal_children(proc, SIGHUP);
        proc->next = NULL;
        *tail = proc;
        tail = &proc->next;
    }
    for (struct master_proc *p = master_procs; p; p = p->next)
        proc_update_watch(p);
    msg_info("reload -- version %s, configuration %s", "0.1", master_config_dir);
}

void master_services_stop(void)
{
    for (struct master_proc *p = master_procs; p; p = p->next) {
        proc_close(p);
        p->stale = 1;
        proc_signal_children(p, SIGTERM);
    }
}

int master_children_total(void)
{
    int n = 0;
    for (struct master_proc *p = master_procs; p; p = p->next)
        n += p->child_count;
    return n;
}

static void child_exited(struct master_proc *proc, struct master_child *child, int status)
{
    long long now = event_now_ms(master_loop);
    int abnormal = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
    if (WIFSIGNALED(status))
        msg_warn("process %s/%s pid %d killed by signal %d", config_str("daemon_directory"),
                 proc->command, (int)child->pid, WTERMSIG(status));
    else if (abnormal)
        msg_warn("process %s/%s pid %d exit status %d", config_str("daemon_directory"),
                 proc->command, (int)child->pid, WEXITSTATUS(status));
    if (child->busy == -1) {
        /* A draining child from before a reload. */
        proc->maxproc--;
        if (proc->busy_count > 0)
            proc->busy_count--;
    } else if (proc->busy_count > proc->child_count - 1) {
        proc->busy_count = proc->child_count - 1;
    }
    proc->child_count--;
    if (abnormal && !proc->stale) {
        if (now - child->started_ms >= 60000)
            proc->throttle_ms = 0;
        long long cap = config_time("master_restart_max_backoff") * 1000;
        proc->throttle_ms = proc->throttle_ms ? proc->throttle_ms * 2
                                          : (int)(config_time("master_restart_min_backoff") * 1000);
        if (proc->throttle_ms > cap)
            proc->throttle_ms = (int)cap;
        proc->throttled_until_ms = now + proc->throttle_ms;
        msg_warn("%s/%s: back-off %d ms before the next start", proc->type, proc->name,
                 proc->throttle_ms);
    } else if (!abnormal && now - child->started_ms >= 60000) {
        proc->throttle_ms = 0;
    }
}

void master_reap_children(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct master_proc **pp = &master_procs;
        while (*pp != NULL) {
            struct master_proc *proc = *pp;
            struct master_child **cp = &proc->children;
            while (*cp && (*cp)->pid != pid)
                cp = &(*cp)->next;
            if (*cp != NULL) {
                struct master_child *child = *cp;
                *cp = child->next;
                child_exited(proc, child, status);
                free(child);
                if (proc->stale && proc->child_count == 0) {
                    *pp = proc->next;
                    if (proc->status_fd[0] >= 0) {
                        event_fd_del(master_loop, proc->status_fd[0]);
                        close(proc->status_fd[0]);
                        close(proc->status_fd[1]);
                    }
                    proc_free(&proc);
                } else {
                    proc_update_watch(proc);
                }
                break;
            }
            pp = &proc->next;
        }
    }
}
