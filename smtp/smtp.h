/*
 * NAME
 *	smtp.h - private interface of the outbound SMTP delivery agent
 * DESCRIPTION
 *	smtp_qmgr.c     qmgr connections: requests in, replies out, a lost
 *	                qmgr abandons its delivery; the before-sleep hook
 *	smtp_deliver.c  one delivery request: next hop, MX and address
 *	                lookups, which host to try next, per-recipient
 *	                results, log lines, the reply
 *	smtp_session.c  one SMTP client session: life cycle, connect,
 *	                input, timeouts, failures, cache hand-over, QUIT
 *	smtp_proto.c    the reply handler of each session state: EHLO,
 *	                STARTTLS, MAIL/RCPT/DATA (pipelined), the body
 *	smtp_body.c     the message from the queue file: 8-bit scan,
 *	                CRLF conversion and dot-stuffing in bounded chunks
 *	smtp_cache.c    idle sessions kept per next hop for the next request
 *	main.c          parameters and server hooks
 */
#ifndef POSTERN_SMTP_H
#define POSTERN_SMTP_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "attr.h"
#include "conn.h"
#include "dns.h"
#include "event.h"
#include "smtp_reply.h"

/* ---- parameters (main.c), read once: master restarts us on reload ---- */

enum smtp_tls_level { SMTP_TLS_NONE, SMTP_TLS_MAY, SMTP_TLS_ENCRYPT };

struct smtp_params {
    int default_port;               /* smtp_tcp_port */
    const char *helo_name;          /* smtp_helo_name */
    const char *myhostname;
    int bind_set;                   /* smtp_bind_address given */
    struct in_addr bind_addr;
    long long connect_ms, helo_ms, starttls_ms, mail_ms, rcpt_ms;
    long long data_init_ms, data_xfer_ms, data_done_ms, quit_ms;
    long long mx_address_limit;     /* 0: no limit */
    long long mx_session_limit;     /* 0: no limit */
    long long cache_ms;             /* 0: no connection cache */
    long long reuse_limit;          /* 0: no limit */
    enum smtp_tls_level tls_level;
    SSL_CTX *tls_ctx;               /* NULL: no TLS (none, or set-up failed) */
    struct smtp_reply_limits reply_limits;
    char *active_prefix;            /* "$queue_directory/active/" */
    long long client_limit;         /* qmgr connections per process */
    struct dns_resolver *resolver;
    int draining;                   /* SIGHUP/SIGTERM: no new work */
};
extern struct smtp_params smtp_var;

/* Bounded buffers: replies are at most 4 KiB a line; body output is
   refilled below SMTP_OUT_FILL and reading from the server continues
   meanwhile (out_limit is far above it). */
#define SMTP_IN_MAX      (16 * 1024)
#define SMTP_OUT_FILL    (128 * 1024)
#define SMTP_OUT_LIMIT   (1024 * 1024)
/* Longest server text quoted in a reason (logs, DSNs). */
#define SMTP_REASON_TEXT_MAX 1000

/* ---- a delivery request ---- */

enum smtp_status { SMTP_STATUS_SENT, SMTP_STATUS_DEFERRED, SMTP_STATUS_BOUNCED };

struct smtp_rcpt {
    char *address;        /* sent in RCPT TO */
    char *orig;           /* as in the queue file, for orig_to= */
    int done;             /* status, dsn and reason are final */
    int accepted;         /* 2xx to RCPT in the current transaction */
    enum smtp_status status;
    char dsn[SMTP_REPLY_ENHANCED_SIZE];
    char *reason;
};

/* One address of one host to connect to. */
struct smtp_target {
    char *host;                       /* MX host or next-hop host name */
    struct sockaddr_storage addr;     /* port set */
    char addr_text[64];
    int port;
};

struct smtp_client;
struct smtp_session;

struct smtp_delivery {
    struct event_loop *loop;
    struct smtp_client *client;       /* qmgr connection (NULL once detached) */
    char *id, *queue_id, *path, *sender, *nexthop, *cache_key;
    off_t offset, length;
    double arrival, received;         /* unix seconds */
    int need_smtputf8;                /* flag smtputf8 */
    int declared_8bit;                /* flag 8bitmime */
    int body_8bit;                    /* -1 not scanned yet, 0, 1 */
    int msg_fd;
    size_t rcpt_count;
    struct smtp_rcpt *rcpts;

    /* Route. */
    char *domain;                     /* next-hop host or domain */
    int use_mx, port;
    int implicit_mx;                  /* no MX records: the domain itself */
    struct dns_query *query;
    struct dns_mx *mx;                /* hosts to try, in order (copies) */
    size_t mx_count, mx_next;
    struct smtp_target *targets;      /* addresses of the host being tried */
    size_t target_count, target_next;
    long long addrs_tried, sessions_greeted;
    struct smtp_session *session;

    /* The most recent failure of a host ("last failure wins"). */
    char *fail_reason;
    char fail_dsn[SMTP_REPLY_ENHANCED_SIZE];
    int fail_permanent;
    char *fail_relay;

    char *relay;                      /* host[addr]:port of the transaction, or NULL */
    int dest_dead;
    double setup_done;                /* when a session was ready for MAIL (0: never) */
    int finished;                     /* results reported or abandoned */
};

/* smtp_deliver.c */
/* Starts a delivery (request parsed, rcpts filled). */
void smtp_delivery_start(struct smtp_delivery *d);
/* qmgr went away: stop everything, no reply; frees d later. */
void smtp_delivery_abandon(struct smtp_delivery *d);
/* Frees a delivery that never started or is finished. */
void smtp_delivery_free(struct smtp_delivery **d_p);
/* Records a final per-recipient result (first one wins). */
void smtp_rcpt_result(struct smtp_delivery *d, size_t i, enum smtp_status status,
                      const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Every recipient not done yet gets this result. */
void smtp_rcpt_result_all(struct smtp_delivery *d, enum smtp_status status, const char *dsn,
                          const char *reason);

/* Up-calls from a session (never with the session freed already). */
/* The session greeted, said EHLO/HELO (and STARTTLS): pre-MAIL checks,
   then a transaction. */
void smtp_delivery_session_ready(struct smtp_delivery *d, struct smtp_session *s);
/* The session failed before any recipient was decided; it has detached
   itself. permanent: a 5xx that bounces if no later host does better;
   retry_plain: TLS failed with level may, try this address again
   without STARTTLS. relay: the server reached, or NULL. */
void smtp_delivery_host_failed(struct smtp_delivery *d, int permanent, int retry_plain,
                               const char *dsn, const char *relay, const char *reason);
/* A session taken from the cache was dead before its first reply:
   forget it and connect afresh (not a failure). */
void smtp_delivery_session_stale(struct smtp_delivery *d);
/* Every recipient is done; the session (still d->session, or NULL if
   it died) is handed back through smtp_session_release(). */
void smtp_delivery_transaction_done(struct smtp_delivery *d);

/* ---- a session ---- */

enum smtp_state {
    SMTP_ST_CONNECT,    /* TCP connect in progress */
    SMTP_ST_GREETING,   /* waiting for 220 */
    SMTP_ST_EHLO,
    SMTP_ST_HELO,
    SMTP_ST_STARTTLS,   /* waiting for the reply to STARTTLS */
    SMTP_ST_TLS,        /* handshake */
    SMTP_ST_READY,      /* between transactions, owned by a delivery */
    SMTP_ST_MAIL,       /* waiting for the MAIL FROM reply */
    SMTP_ST_RCPT,       /* waiting for RCPT TO replies */
    SMTP_ST_DATA,       /* waiting for the DATA reply */
    SMTP_ST_BODY,       /* sending the message */
    SMTP_ST_DOT,        /* waiting for the reply to "." */
    SMTP_ST_RSET,       /* detached: RSET before going into the cache */
    SMTP_ST_CACHED,     /* idle in the connection cache */
    SMTP_ST_QUIT,       /* detached: QUIT sent, waiting for the close */
    SMTP_ST_DEAD,       /* closed; freed after this round */
};

/* Message streaming state (smtp_body.c). */
struct smtp_body {
    int fd;
    off_t pos, end;       /* next byte to read, end of the message */
    int at_bol;           /* next byte starts a line: dot-stuff a '.' */
    int pending_cr;       /* a CR was read; decide when the next byte comes */
    int last_nl;          /* the last byte sent ended a line */
    int finished;         /* ".\r\n" appended */
};

struct smtp_session {
    struct event_loop *loop;
    struct smtp_delivery *delivery;   /* NULL when detached (cache, RSET, QUIT) */
    enum smtp_state state;
    int fd;                           /* during CONNECT; then conn->fd */
    struct conn *conn;
    struct smtp_reply_parser *parser;
    struct event_timer *timer;
    struct event_timer *connect_timer;
    char *host;
    char addr[64];
    int port;
    char *relay;                      /* "host[addr]:port" */
    char *label;                      /* "host[addr]" */
    struct smtp_ehlo ehlo;
    int tls_active;
    int no_tls;                       /* plaintext retry after a failed handshake */
    int reusable;                     /* no 421, no protocol doubt */
    int reused;                       /* taken from the cache, no reply yet */
    long long transactions;
    int connect_errno;                /* immediate connect failure, reported async */

    /* Transaction. */
    size_t *tx_rcpts;                 /* indices of the recipients in it */
    size_t tx_count;
    int pipelining;
    size_t rcpt_sent, rcpt_replied;
    int mail_failed;                  /* MAIL rejected: RCPT/DATA replies are noise */
    size_t accepted;
    int tx_started;                   /* a RCPT reply decided a recipient */
    int needs_rset;                   /* ended without the reply to "." */
    int empty_data;                   /* 354 with nobody accepted: "." sent alone */
    struct smtp_body body;
    size_t last_out_len;              /* for data_xfer progress */
    long long progress_ms;

    char *cache_key;                  /* set while in the cache */
    char *cache_key_pending;          /* where RSET -> CACHED will put it */
    struct smtp_session *cache_prev, *cache_next;
    struct smtp_session *prev, *next; /* all sessions */
};

/* smtp_session.c */
/* Starts a TCP connection to t for d; the session reports back through
   the up-calls above. no_tls: do not use STARTTLS (plaintext retry). */
struct smtp_session *smtp_session_connect(struct smtp_delivery *d, const struct smtp_target *t,
                                          int no_tls);
/* Hands a cached session to d (state READY, then ready up-call runs
   asynchronously). */
void smtp_session_attach(struct smtp_session *s, struct smtp_delivery *d);
/* Sends MAIL FROM, RCPT TO (pipelined when offered) and DATA for d's
   recipients that are not done. */
void smtp_session_transaction(struct smtp_session *s);
/* The delivery is done with s: RSET/cache it or QUIT. */
void smtp_session_release(struct smtp_session *s);
/* Closes at once (qmgr went away, shutdown); frees after this round. */
void smtp_session_abort(struct smtp_session *s);
/* Stop or reload: QUIT every cached session (sessions at work go on:
   on SIGTERM the process exits anyway). */
void smtp_session_stop_all(void);
/* Before-sleep: feeds message bodies and flushes output. */
void smtp_session_before_sleep(void);
int smtp_session_count(void);

/* smtp_session.c, for smtp_proto.c */
/* Enters state and starts its timer. */
void smtp_session_set_state(struct smtp_session *s, enum smtp_state state);
/* Restarts the current state's timer (the next pipelined reply). */
void smtp_session_rearm(struct smtp_session *s);
/* Queues a command line (CRLF added). */
void smtp_session_send(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The session failed while working for its delivery (see smtp_proto.c
   and smtp_session.c). polite: in step with the server, so QUIT is
   sent; else the connection is just closed. */
void smtp_session_fail(struct smtp_session *s, int permanent, const char *dsn, int polite,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Closes now; freed after this round. */
void smtp_session_close(struct smtp_session *s);
/* Sends QUIT and closes on its reply (or quit timeout). */
void smtp_session_quit(struct smtp_session *s);
/* Unlinks from the delivery without telling it; returns it. */
struct smtp_delivery *smtp_session_detach(struct smtp_session *s);
/* "receiving the initial server greeting", ... */
const char *smtp_session_phase(enum smtp_state state);

/* smtp_proto.c */
void smtp_proto_reply(struct smtp_session *s, const struct smtp_reply *reply);
void smtp_proto_tls_ready(struct smtp_session *s);
/* The STARTTLS handshake failed (CLOSED in state TLS). */
void smtp_proto_tls_failed(struct smtp_session *s);

/* smtp_body.c */
/* 1 if length bytes at offset of fd hold an octet >= 0x80, 0 if not,
   -1 on a read error (errno). */
int smtp_body_scan_8bit(int fd, off_t offset, off_t length);
void smtp_body_start(struct smtp_body *b, int fd, off_t offset, off_t length);
/* Appends converted message bytes to out until it holds at least
   fill bytes or the message and ".\r\n" are in. Returns 1 while more
   is to come, 0 when finished, -1 on a read error (errno). */
int smtp_body_fill(struct smtp_body *b, struct buf *out, size_t fill);

/* smtp_cache.c */
/* Takes the newest idle session for key out of the cache, or NULL. */
struct smtp_session *smtp_cache_take(const char *key);
/* Puts s (state CACHED, detached) in the cache under key. Returns 0,
   or -1 when the cache is full (the caller QUITs the session). */
int smtp_cache_put(struct smtp_session *s, const char *key);
/* Removes s from the cache (it died or expired). */
void smtp_cache_remove(struct smtp_session *s);

/* smtp_qmgr.c */
void smtp_qmgr_init(struct event_loop *loop);
void smtp_qmgr_accept(struct event_loop *loop, int fd, const struct sockaddr *peer,
                      socklen_t peer_len);
/* Sends d's reply to its qmgr connection (if still there). */
void smtp_qmgr_reply(struct smtp_delivery *d);
void smtp_qmgr_stop(void);
/* Sessions and qmgr connections, for server_session_count(). */
void smtp_update_session_count(void);

/* Wall clock in seconds (for delay=). */
double smtp_now(void);

#endif
