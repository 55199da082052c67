/*
 * NAME
 *	master - the Postern supervisor
 * SYNOPSIS
 *	master [-c config_dir] [-d] [-w] [-v]
 * DESCRIPTION
 *	Reads main.cf and master.cf, takes the instance lock, binds every
 *	service's listener and runs the daemons (master_service.c).
 *	-d stays in the foreground and copies the log to stderr; -w
 *	detaches and returns only once the listeners are bound, so
 *	`postern start` can report success truthfully.
 *	Signals: SIGHUP reloads, SIGTERM/SIGINT stop everything (children
 *	get SIGTERM, stragglers SIGKILL after 5 s).
 * DIAGNOSTICS
 *	A second master on the same queue directory exits with status 1:
 *	"the Postern mail system is already running".
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "xalloc.h"

struct event_loop *master_loop;
const char *master_config_dir;
int master_verbose;
int master_foreground;

static char *master_cf_path;
static char *pid_path;
static int stopping;

static void stop_timeout_cb(struct event_loop *loop, void *ctx)
{
    for (struct master_proc *p = master_procs; p; p = p->next)
        for (struct master_child *c = p->children; c; c = c->next)
            kill(c->pid, SIGKILL);
    event_loop_stop(loop);
}

static void signal_cb(struct event_loop *loop, int fd, int events, void *ctx)
{
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            master_reap_children();
            if (stopping && master_children_total() == 0)
                event_loop_stop(loop);
            break;
        case SIGHUP:
            if (!stopping) {
                const char *error;
                if (config_load(master_config_dir, &error) < 0)
                    msg_warn("reload: %s: %s", master_config_dir, error);
                else
                    master_services_reload(master_cf_path);
            }
            break;
        case SIGTERM:
        case SIGINT:
            if (!stopping) {
                stopping = 1;
                msg_info("terminating on signal %d", (int)si.ssi_signo);
                master_services_stop();
                if (master_children_total() == 0)
                    event_loop_stop(loop);
                else
                    event_timer_add(loop, 5000, stop_timeout_cb, NULL);
            }
            break;
        }
    }
}

/* The instance lock: one master per queue directory. */
static int take_lock(const char *queue_dir)
{
    char *lock_path = xasprintf("%s/pid/master.lock", queue_dir);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        msg_fatal("open %s: %m", lock_path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            msg_fatal("the Postern mail system is already running");
        msg_fatal("lock %s: %m", lock_path);
    }
    free(lock_path);
    return fd;
}

static void write_pid(void)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    char *tmp = xasprintf("%s.tmp", pid_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, text, (size_t)n) != n || close(fd) < 0 || rename(tmp, pid_path) < 0)
        msg_fatal("write %s: %m", pid_path);
    free(tmp);
}

int main(int argc, char **argv)
{
    int foreground = 0, wait_ready = 0, c;
    master_config_dir = getenv("POSTERN_CONFIG_DIR");
    log_init("master");
    while ((c = getopt(argc, argv, "c:dwv")) != -1) {
        switch (c) {
        case 'c': master_config_dir = optarg; break;
        case 'd': foreground = 1; break;
        case 'w': wait_ready = 1; break;
        case 'v': master_verbose++; break;
        default:
            fprintf(stderr, "usage: master [-c config_dir] [-d] [-w] [-v]\n");
            return 2;
        }
    }
    if (master_config_dir == NULL)
        master_config_dir = "/etc/postern";
    char *abs_dir = realpath(master_config_dir, NULL);
    if (abs_dir == NULL) {
        fprintf(stderr, "master: %s: %s\n", master_config_dir, strerror(errno));
        return 1;
    }
    master_config_dir = abs_dir;
    const char *error;
    if (config_load(master_config_dir, &error) < 0) {
        fprintf(stderr, "master: %s: %s\n", master_config_dir, error);
        return 1;
    }
    log_set_syslog_name(config_str("syslog_name"));
    log_set_file(config_str("maillog_file"));
    log_verbose = master_verbose;
    if (foreground)
        log_set_stderr_copy(1);
    master_foreground = foreground;
    master_cf_path = xasprintf("%s/master.cf", master_config_dir);
    const char *queue_dir = config_str("queue_directory");
    pid_path = xasprintf("%s/pid/master.pid", queue_dir);

    /* -w: the parent waits for "ready" from the detached child. */
    int ready_pipe[2] = {-1, -1};
    if (wait_ready && !foreground) {
        if (pipe2(ready_pipe, O_CLOEXEC) < 0)
            msg_fatal("pipe: %m");
        pid_t pid = fork();
        if (pid < 0)
            msg_fatal("fork: %m");
        if (pid > 0) {
            close(ready_pipe[1]);
            char ok = 0;
            ssize_t n = read(ready_pipe[0], &ok, 1);
            return n == 1 && ok == 'R' ? 0 : 1;
        }
        close(ready_pipe[0]);
        setsid();
        /* Until ready, fatal errors also reach the waiting terminal. */
        log_set_stderr_copy(1);
    }

    int lock_fd = take_lock(queue_dir);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sig_fd < 0)
        msg_fatal("signalfd: %m");

    master_loop = event_loop_create();
    event_fd_add(master_loop, sig_fd, EVENT_READ, signal_cb, NULL);
    char *services_error = NULL;
    if (master_services_start(master_cf_path, &services_error) < 0)
        msg_fatal("%s", services_error);
    write_pid();
    if (ready_pipe[1] >= 0)
        log_set_stderr_copy(0);
    msg_info("daemon started -- version %s, configuration %s", "0.1", master_config_dir);

    if (ready_pipe[1] >= 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
            if (devnull > 2)
                close(devnull);
        }
        if (write(ready_pipe[1], "R", 1) < 0) {
        }
        close(ready_pipe[1]);
    }

    event_loop_run(master_loop);
    unlink(pid_path);
    msg_info("stopped");
    close(lock_fd);
    return 0;
}
