/*
 * NAME
 *	master - private interfaces of the supervisor
 */
#ifndef POSTERN_MASTER_H
#define POSTERN_MASTER_H

#include <sys/types.h>

#include "event.h"
#include "master_cf.h"

struct master_child {
    pid_t pid;
    int busy;
    long long started_ms;
    struct master_child *next;
};

struct master_proc {
    char *name;            /* service name, e.g. "smtp" */
    char *type;            /* inet | unix */
    char *command;         /* program name in daemon_directory */
    char **args;           /* extra words from master.cf (-o name=value ...) */
    int maxproc;
    int wakeup;            /* > 0: started with master, kept running */
    int chroot;            /* master.cf chroot = y: children get -j */
    int listen_fd;
    int status_fd[2];      /* children write 'B'/'I' to [1]; master reads [0] */
    int watching_listener; /* listener registered with the loop to spawn on demand */
    int child_count;
    int busy_count;
    int throttle_ms;       /* current restart back-off, 0 = none */
    long long throttled_until_ms;
    struct event_timer *respawn_timer;
    struct master_child *children;
    int stale;             /* removed by a reload, waiting for children to go */
    struct master_proc *next;
};

extern struct event_loop *master_loop;
extern struct master_proc *master_procs;
extern const char *master_config_dir;
extern int master_verbose;
extern int master_foreground;

/* master_service.c */
int master_services_start(const char *master_cf_path, char **error_r);
void master_services_reload(const char *master_cf_path);
void master_services_stop(void);
void master_reap_children(void);
int master_children_total(void);

#endif
