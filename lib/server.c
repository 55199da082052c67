/*
 * NAME
 *	server - the skeleton every daemon's main() hands control to
 * DESCRIPTION
 *	See server.h. Argument parsing, configuration, logging, privilege
 *	drop and the accept loop live here once, so a daemon's main.c is
 *	only its hooks.
 *
 *	Signals: SIGTERM ends the process (event servers get on_stop
 *	first and exit at once after it), and so does SIGINT (a Ctrl-C
 *	under `postern foreground` reaches every process of the group).
 *	SIGHUP asks an event server to stop accepting and exit when its
 *	last session ends (master sends it on reload, then starts a
 *	process with the new configuration, so established sessions are
 *	not dropped). Signals reach the event loop through a self-pipe.
 *
 *	When accept fails for lack of descriptors or memory, the listener
 *	is left alone for SERVER_ACCEPT_PAUSE_MS: the waiting connection
 *	keeps it readable, and retrying at once would spin and flood the
 *	log. Daemons keep their own session limits below the descriptor
 *	limit so that this stays the exception.
 *	Chroot (-j, from master.cf's chroot column): the process must be
 *	able to do its work inside $queue_directory alone, so everything
 *	that needs the outside world happens first, with the effective
 *	identity of mail_owner (real and saved uid stay root, so that
 *	the chroot itself is still possible): tzset(), a chdir to the
 *	queue, every file-backed table any parameter names
 *	(table_jail_preload), and on_init, which reads certificates and
 *	keys, starts c-ares and opens whatever else the daemon needs.
 *	Then chroot("."), and the final, irrevocable drop to mail_owner.
 *	From the start of that sequence the daemon sees queue_directory
 *	as "." (its working directory, which becomes the root), so every
 *	path built from it means the same before and after the chroot;
 *	server_queue_directory_outside() keeps the real name for what
 *	goes to processes outside the jail (paths in delivery requests).
 *	glibc applies set*id to every thread and threads share the root,
 *	so worker threads started by on_init end up jailed and
 *	unprivileged too. Only daemons that set chroot_ok accept -j: one
 *	that reads mailboxes would fail at its first delivery, so asking
 *	it to chroot is fatal at start, in the log and at every restart.
 *	Started by a normal user, -j logs a warning and does nothing, as
 *	the privilege drop does nothing.
 * DIAGNOSTICS
 *	Bad arguments, a missing listener or a failed privilege drop or
 *	chroot are fatal: master logs the exit and restarts with back-off.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "server.h"
#include "table.h"
#include "xalloc.h"

static const char *server_service = "";
static struct event_loop *server_event_loop;
static const struct server_hooks *server_hook;
static int server_listen_fd = -1;
static int server_status_fd = -1;
static int server_draining;
static int server_sessions;
static int signal_pipe[2] = {-1, -1};
static volatile sig_atomic_t single_stop;
static struct event_timer *accept_pause_timer;
static int server_jailed;             /* chroot after on_init (-j, started as root) */
static char *server_outside_queue;    /* queue_directory as named outside the jail */
static uid_t jail_uid;
static gid_t jail_gid;

#define SERVER_ACCEPT_PAUSE_MS 250

const char *server_service_name(void)
{
    return server_service;
}

struct event_loop *server_loop(void)
{
    return server_event_loop;
}

int server_chrooted(void)
{
    return server_jailed;
}

const char *server_queue_directory_outside(void)
{
    return server_outside_queue != NULL ? server_outside_queue : config_str("queue_directory");
}

void server_session_count(int open_sessions)
{
    server_sessions = open_sessions;
    if (server_draining && open_sessions == 0 && server_event_loop != NULL)
        event_loop_stop(server_event_loop);
}

static void server_usage(const char *program)
{
    msg_fatal("usage: %s -c config_dir [-n service] [-t type] [-o name=value]... "
              "[-s address] [-j] [-v]", program);
}

/* Binds a listener for running a daemon by hand: a path or host:port. */
static int server_bind_own(const char *address)
{
    int fd;
    if (address[0] == '/') {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(address) >= sizeof(sun.sun_path))
            msg_fatal("socket path too long: %s", address);
        memcpy(sun.sun_path, address, strlen(address) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        unlink(address);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
            msg_fatal("bind %s: %m", address);
        /* Bound before the privilege drop: peers run as mail_owner too. */
        if (chmod(address, 0666) < 0)
            msg_warn("chmod %s: %m", address);
    } else {
        char *copy = xstrdup(address);
        char *colon = strrchr(copy, ':');
        if (colon == NULL)
            msg_fatal("-s wants host:port or a path: %s", address);
        *colon = '\0';
        char *host = copy;
        if (*host == '[') {
            host++;
            host[strcspn(host, "]")] = '\0';
        }
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
        struct addrinfo *res;
        int err = getaddrinfo(host, colon + 1, &hints, &res);
        if (err != 0)
            msg_fatal("%s: %s", address, gai_strerror(err));
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int on = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0)
            msg_fatal("bind %s: %m", address);
        freeaddrinfo(res);
        free(copy);
    }
    if (listen(fd, 1024) < 0)
        msg_fatal("listen %s: %m", address);
    return fd;
}

static const struct passwd *server_mail_owner(void)
{
    const char *owner = config_str("mail_owner");
    struct passwd *pw = getpwnam(owner);
    if (pw == NULL)
        msg_fatal("mail_owner %s: no such user", owner);
    if (pw->pw_uid == 0)
        msg_fatal("mail_owner %s must not be root", owner);
    return pw;
}

static void server_drop_to(uid_t uid, gid_t gid)
{
    const char *owner = config_str("mail_owner");
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
        msg_fatal("cannot drop privileges to %s: %m", owner);
    if (setuid(0) == 0 || seteuid(0) == 0)
        msg_fatal("privilege drop to %s did not stick", owner);
}

/* Drops root to mail_owner (DESIGN.md invariant 3). */
static void server_drop_privileges(void)
{
    if (geteuid() != 0)
        return;
    const struct passwd *pw = server_mail_owner();
    server_drop_to(pw->pw_uid, pw->pw_gid);
}

/* First half of a chrooted start: see the DESCRIPTION. */
static void server_jail_prepare(const char *program, const struct server_hooks *hooks)
{
    const char *queue_dir = config_str("queue_directory");
    if (!hooks->chroot_ok)
        msg_fatal("service %s: master.cf says chroot = y, but %s reads files outside "
                  "queue_directory (mailboxes) and cannot run chrooted; set the chroot "
                  "column of this service to n", server_service, program);
    if (geteuid() != 0) {
        msg_warn("service %s: chroot = y has no effect: not started as root", server_service);
        return;
    }
    const struct passwd *pw = server_mail_owner();
    jail_uid = pw->pw_uid;
    jail_gid = pw->pw_gid;
    if (queue_dir[0] != '/')
        msg_fatal("queue_directory %s must be an absolute path to chroot into", queue_dir);
    /* localtime_r() loads the zone once, at its first call; inside the
       jail there is no /etc/localtime to load. */
    tzset();
    if (chdir(queue_dir) < 0)
        msg_fatal("chdir %s: %m", queue_dir);
    server_outside_queue = xstrdup(queue_dir);
    config_override("queue_directory", ".");
    /* Tables and on_init read files as mail_owner, as without chroot. */
    if (setgroups(1, &jail_gid) < 0 || setegid(jail_gid) < 0 || seteuid(jail_uid) < 0)
        msg_fatal("cannot switch to mail_owner %s before the chroot: %m",
                  config_str("mail_owner"));
    table_jail_preload();
    server_jailed = 1;
}

/* Second half, after on_init: nothing outside the queue is opened again. */
static void server_jail_enter(void)
{
    if (!server_jailed)
        return;
    table_jail_seal();
    if (seteuid(0) < 0)
        msg_fatal("seteuid 0 for the chroot: %m");
    if (chroot(".") < 0)
        msg_fatal("chroot %s: %m", server_outside_queue);
    if (chdir("/") < 0)
        msg_fatal("chdir / in the chroot %s: %m", server_outside_queue);
    server_drop_to(jail_uid, jail_gid);
    msg_debug("chrooted to %s", server_outside_queue);
}

static void server_status(char what)
{
    if (server_status_fd >= 0 && write(server_status_fd, &what, 1) < 0 && errno != EAGAIN)
        server_status_fd = -1;   /* master went away; it will reap us */
}

static void on_signal(int sig)
{
    int saved = errno;
    /* Ctrl-C on `postern foreground` reaches the whole process group:
       stop as master's SIGTERM would, not die in the middle of work. */
    if (sig == SIGINT)
        sig = SIGTERM;
    unsigned char c = (unsigned char)sig;
    if (signal_pipe[1] >= 0 && write(signal_pipe[1], &c, 1) < 0) {
        /* pipe full: a signal is already pending */
    }
    if (sig == SIGTERM)
        single_stop = 1;
    errno = saved;
}

/* Stops accepting; the process exits when its last session ends. */
static void server_drain(struct event_loop *loop)
{
    if (server_draining)
        return;
    server_draining = 1;
    event_timer_cancel(loop, &accept_pause_timer);
    if (server_listen_fd >= 0) {
        event_fd_del(loop, server_listen_fd);
        close(server_listen_fd);
        server_listen_fd = -1;
    }
    if (server_hook->on_stop)
        server_hook->on_stop(loop);
    if (server_sessions == 0)
        event_loop_stop(loop);
}

void server_restart_soon(const char *why)
{
    if (server_draining || server_event_loop == NULL)
        return;
    msg_info("%s: restarting after the current sessions end", why);
    server_drain(server_event_loop);
}

static void signal_read_cb(struct event_loop *loop, int fd, int events, void *ctx)
{
    unsigned char sigs[16];
    ssize_t n = read(fd, sigs, sizeof(sigs));
    for (ssize_t i = 0; i < n; i++) {
        if (sigs[i] == SIGTERM) {
            if (server_hook->on_stop)
                server_hook->on_stop(loop);
            exit(0);
        }
        if (sigs[i] == SIGHUP)
            server_drain(loop);
    }
}

/* Out of descriptors or kernel memory: the connection stays queued and
   the listener stays readable, so retrying at once would spin. */
static int accept_exhausted(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static void accept_resume_cb(struct event_loop *loop, void *ctx)
{
    accept_pause_timer = NULL;
    if (server_listen_fd >= 0)
        event_fd_set(loop, server_listen_fd, EVENT_READ);
}

static void accept_cb(struct event_loop *loop, int fd, int events, void *ctx)
{
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int conn = accept4(fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (conn < 0) {
            if (accept_exhausted(errno)) {
                msg_warn("accept: %m; not accepting for %d ms", SERVER_ACCEPT_PAUSE_MS);
                event_fd_set(loop, fd, 0);
                event_timer_cancel(loop, &accept_pause_timer);
                accept_pause_timer = event_timer_add(loop, SERVER_ACCEPT_PAUSE_MS,
                                                     accept_resume_cb, NULL);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                       errno != ECONNABORTED) {
                msg_warn("accept: %m");
            }
            return;
        }
        /* Replies and TLS handshake flights often leave in several
           writes; with Nagle the later ones wait for the client's delayed
           ACK (40 ms on Linux). */
        if (peer.ss_family == AF_INET || peer.ss_family == AF_INET6) {
            int one = 1;
            (void)setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        server_hook->on_accept(loop, conn, (struct sockaddr *)&peer, len);
        /* A table file was rebuilt and the chroot hides the new one. */
        if (server_jailed && table_jail_changed()) {
            server_restart_soon("a table changed since the chroot");
            return;
        }
    }
}

static void install_signals(void)
{
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        msg_fatal("pipe: %m");
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

static void run_event_server(void)
{
    server_event_loop = event_loop_create();
    event_fd_add(server_event_loop, signal_pipe[0], EVENT_READ, signal_read_cb, NULL);
    if (server_hook->on_init)
        server_hook->on_init(server_event_loop);
    server_jail_enter();
    if (server_listen_fd >= 0)
        event_fd_add(server_event_loop, server_listen_fd, EVENT_READ, accept_cb, NULL);
    event_loop_run(server_event_loop);
    exit(0);
}

static void run_single_server(void)
{
    long long max_idle = config_time("max_idle");
    long long max_use = config_int("max_use");
    if (server_hook->on_init)
        server_hook->on_init(NULL);
    server_jail_enter();
    for (long long used = 0; max_use <= 0 || used < max_use;) {
        if (single_stop)
            break;
        struct pollfd p[2] = {{.fd = server_listen_fd, .events = POLLIN},
                              {.fd = signal_pipe[0], .events = POLLIN}};
        int n = poll(p, 2, max_idle > 0 ? (int)(max_idle * 1000) : -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            msg_fatal("poll: %m");
        if (n == 0)
            break;   /* idle for max_idle: let master reap us */
        if (p[1].revents) {
            unsigned char sigs[16];
            ssize_t got = read(signal_pipe[0], sigs, sizeof(sigs));
            for (ssize_t i = 0; i < got; i++)
                if (sigs[i] == SIGTERM || sigs[i] == SIGHUP)
                    exit(0);
        }
        if (!(p[0].revents & POLLIN))
            continue;
        int conn = accept4(server_listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0) {
            if (accept_exhausted(errno)) {
                msg_warn("accept: %m; not accepting for %d ms", SERVER_ACCEPT_PAUSE_MS);
                poll(NULL, 0, SERVER_ACCEPT_PAUSE_MS);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                msg_warn("accept: %m");
            }
            continue;   /* another process took it */
        }
        used++;
        server_status('B');
        server_hook->serve(conn);
        close(conn);
        server_status('I');
    }
    exit(0);
}

void server_main(int argc, char **argv, const char *program, enum server_kind kind,
                 const struct server_hooks *hooks)
{
    const char *config_dir = getenv("POSTERN_CONFIG_DIR");
    const char *own_address = NULL;
    const char *service = program;
    int verbose = 0;
    int jail = 0;
    int c;
    char **overrides = xcalloc((size_t)argc + 1, sizeof(char *));
    size_t override_count = 0;

    log_init(program);
    server_hook = hooks;
    while ((c = getopt(argc, argv, "c:n:t:o:s:jv")) != -1) {
        switch (c) {
        case 'c': config_dir = optarg; break;
        case 'n': service = optarg; break;
        case 't': break;
        case 'o': overrides[override_count++] = optarg; break;
        case 's': own_address = optarg; break;
        case 'j': jail = 1; break;
        case 'v': verbose++; break;
        default: server_usage(program);
        }
    }
    if (config_dir == NULL)
        config_dir = "/etc/postern";
    server_service = service;
    const char *error;
    if (config_load(config_dir, &error) < 0)
        msg_fatal("%s: %s", config_dir, error);
    for (size_t i = 0; i < override_count; i++) {
        char *eq = strchr(overrides[i], '=');
        if (eq == NULL)
            msg_fatal("-o %s: want name=value", overrides[i]);
        *eq = '\0';
        config_override(overrides[i], eq + 1);
        *eq = '=';
    }
    free(overrides);
    log_set_syslog_name(config_str("syslog_name"));
    log_set_file(config_str("maillog_file"));
    log_verbose = verbose;
    if (getenv("POSTERN_LOG_STDERR") != NULL)
        log_set_stderr_copy(1);   /* master -d: the terminal sees every line */

    if (own_address != NULL) {
        server_listen_fd = server_bind_own(own_address);
    } else if (fcntl(SERVER_LISTEN_FD, F_GETFD) >= 0) {
        server_listen_fd = SERVER_LISTEN_FD;
        fcntl(server_listen_fd, F_SETFD, FD_CLOEXEC);
        if (fcntl(SERVER_STATUS_FD, F_GETFD) >= 0) {
            server_status_fd = SERVER_STATUS_FD;
            fcntl(server_status_fd, F_SETFD, FD_CLOEXEC);
        }
    } else if (kind == SERVER_SINGLE || hooks->on_accept != NULL) {
        msg_fatal("no listening socket on fd %d (run from master, or use -s)",
                  SERVER_LISTEN_FD);
    }
    int flags = server_listen_fd >= 0 ? fcntl(server_listen_fd, F_GETFL) : -1;
    if (flags >= 0)
        fcntl(server_listen_fd, F_SETFL, flags | O_NONBLOCK);

    if (jail)
        server_jail_prepare(program, hooks);
    else
        server_drop_privileges();
    install_signals();
    if (kind == SERVER_EVENT)
        run_event_server();
    run_single_server();
    exit(0);
}

long long server_fit_session_limit(const char *param, long long limit, int fds_per_session,
                                   int reserve)
{
    return server_fit_session_limit_ratio(param, limit, fds_per_session, 1, reserve);
}

long long server_fit_session_limit_ratio(const char *param, long long limit, int fds_num,
                                         int fds_den, int reserve)
{
    struct rlimit rl;
    if (fds_num < 1 || fds_den < 1 || limit < 1 || reserve < 0)
        msg_panic("server_fit_session_limit_ratio: bad arguments");
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return limit;
    rlim_t num = (rlim_t)fds_num, den = (rlim_t)fds_den, extra = (rlim_t)reserve;
    rlim_t sessions = (rlim_t)limit;
    if (sessions > (RLIM_INFINITY - 1 - extra - den) / num)
        sessions = (RLIM_INFINITY - 1 - extra - den) / num;
    rlim_t want = (sessions * num + den - 1) / den + extra;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0)
            msg_warn("setrlimit RLIMIT_NOFILE: %m");
    }
    if (rl.rlim_cur >= want)
        return limit;
    long long fit = rl.rlim_cur > extra ? (long long)((rl.rlim_cur - extra) * den / num) : 0;
    if (fit < 1)
        fit = 1;
    msg_warn("%s %lld does not fit in %llu open files; using %lld", param, limit,
             (unsigned long long)rl.rlim_cur, fit);
    return fit;
}

void server_refuse(int fd, const char *line)
{
    if (line != NULL) {
        char text[256];
        int n = snprintf(text, sizeof(text), "%s\r\n", line);
        if (n > 0 && send(fd, text, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            /* best effort: the connection is closed either way */
        }
    }
    close(fd);
}
