/*
 * NAME
 *	server - the skeleton every daemon's main() hands control to
 * SYNOPSIS
 *	#include "server.h"
 * DESCRIPTION
 *	master starts a daemon as
 *	  <daemon_directory>/<command> -c <config_dir> -n <service> -t <type>
 *	      [-o name=value]... [-j] [-v]
 *	with the service's listening socket on fd 3 (SERVER_LISTEN_FD) and a
 *	status pipe to master on fd 4 (SERVER_STATUS_FD). The skeleton
 *	parses argv, loads main.cf and the -o overrides, opens the log,
 *	drops root privileges to mail_owner, then:
 *	  event servers (smtpd, qmgr): accept on fd 3 inside one event loop
 *	    and hand each connection to on_accept; many sessions per process.
 *	  single servers (local): serve one connection at a time with
 *	    blocking I/O; tell master busy/idle through the status pipe, so
 *	    master spawns more processes (up to maxproc) when all are busy;
 *	    exit after max_idle seconds without work or max_use connections.
 *	SIGTERM (or SIGINT, which Ctrl-C sends to the whole process group)
 *	stops a daemon (event servers call on_stop first). SIGHUP asks an
 *	event server to stop accepting, call on_stop, and exit when its
 *	last session ends (server_session_count(0)); master sends it on
 *	reload while a new process takes over the listener.
 *	-j (master.cf chroot = y): when started as root, the process
 *	chroots into $queue_directory after on_init, which runs with
 *	mail_owner's effective identity and must open everything the
 *	daemon needs from outside the queue (certificates, keys, DNS
 *	setup); file-backed tables named by any parameter are opened
 *	before on_init (table_jail_preload), so later table_open() calls
 *	get them. From before on_init on, config_str("queue_directory")
 *	is "." (the working directory, the future root): paths built from
 *	it stay valid across the chroot. Only daemons whose hooks set
 *	chroot_ok accept -j (smtpd, smtp, qmgr); the others exit fatally.
 *	Without fd 3 (run by hand), -s ADDRESS makes the skeleton bind its
 *	own socket (a path, or host:port) for tests.
 */
#ifndef POSTERN_SERVER_H
#define POSTERN_SERVER_H

#include <sys/socket.h>

#include "event.h"

#define SERVER_LISTEN_FD 3
#define SERVER_STATUS_FD 4

struct server_hooks {
    /* Called after config, logging and privilege drop, before serving. */
    void (*on_init)(struct event_loop *loop);
    /* Event servers: a new connection (non-blocking fd, owned by the hook). */
    void (*on_accept)(struct event_loop *loop, int fd, const struct sockaddr *peer,
                      socklen_t peer_len);
    /* Single servers: serve one connection with blocking I/O, then return;
       the skeleton closes fd. */
    void (*serve)(int fd);
    /* Event servers: SIGTERM arrived; finish or drop sessions. */
    void (*on_stop)(struct event_loop *loop);
    /* 1: the daemon works inside $queue_directory alone and may be
       chrooted there (-j); 0: -j is fatal. */
    int chroot_ok;
};

enum server_kind { SERVER_EVENT, SERVER_SINGLE };

/* Never returns. */
void server_main(int argc, char **argv, const char *program, enum server_kind kind,
                 const struct server_hooks *hooks) __attribute__((noreturn));

/* The service name from -n (e.g. "smtp", "submission"). */
const char *server_service_name(void);
/* 1 when the process runs chrooted in the queue directory, or will as
   soon as on_init returns (-j as root); 0 otherwise. */
int server_chrooted(void);
/* queue_directory as processes outside the chroot name it (the
   configured value; the same as config_str("queue_directory") when not
   chrooted). Paths sent to other daemons are built from this. */
const char *server_queue_directory_outside(void);
/* Event servers: stop accepting, exit when the last session ends (as on
   SIGHUP); master starts a fresh process for new connections. For a
   chrooted daemon that notices a file it read before the chroot was
   replaced (logged with why). No-op for single servers. */
void server_restart_soon(const char *why);
/* The loop of an event server (NULL for single servers). */
struct event_loop *server_loop(void);
/* Event servers: number of sessions open, reported by the daemon so the
   skeleton can exit when idle for max_idle after a reload. */
void server_session_count(int open_sessions);

/* Event servers: raises the soft open-file limit so that limit sessions
   of fds_per_session descriptors each, plus reserve, fit; when the hard
   limit does not allow that, returns the number that fits (at least 1)
   and logs a warning naming param (the session limit parameter).
   Otherwise returns limit. Extra clients then get a clean "busy" reply
   instead of accept() failing. */
long long server_fit_session_limit(const char *param, long long limit, int fds_per_session,
                                   int reserve);
/* The same with fds_num / fds_den descriptors per session on average
   (smtpd: every session its socket, at most one in two also a queue
   file at the same time). */
long long server_fit_session_limit_ratio(const char *param, long long limit, int fds_num,
                                         int fds_den, int reserve);

/* Event servers: turns away a client that was accepted but will not get
   a session (session limit, TLS unavailable): one line (CRLF added, at
   most 253 bytes; NULL for none, as on an implicit-TLS port), sent
   without blocking, then the socket is closed. */
void server_refuse(int fd, const char *line);

#endif
