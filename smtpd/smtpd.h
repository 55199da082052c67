/*
 * NAME
 *	smtpd.h - private interface of the SMTP server daemon
 * DESCRIPTION
 *	smtpd_session.c   session life cycle, I/O through lib/conn, timers,
 *	                  errors, the input loop (commands, DATA bytes, SASL
 *	                  response lines), STARTTLS / SMTPS handshakes
 *	smtpd_commands.c  the command table and one handler per command
 *	smtpd_auth.c      SMTP AUTH (RFC 4954): PLAIN and LOGIN exchanges,
 *	                  the password check on lib/auth's worker thread
 *	smtpd_queue.c     queue file writing during DATA, content checks
 *	                  (lib/content_filter), group commit, qmgr notification
 *	smtpd_policy.c    the restriction engine (lib/policy) and the
 *	                  per-client limits (lib/anvil) at each SMTP stage
 *	main.c            parameters and server hooks
 */
#ifndef POSTERN_SMTPD_H
#define POSTERN_SMTPD_H

#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "conn.h"
#include "event.h"
#include "queue_file.h"
#include "smtp_command.h"
#include "smtp_data.h"

/* Parameters, read once at start (master restarts us on reload). */
struct smtpd_params {
    const char *queue_directory;
    const char *myhostname;
    const char *myorigin;
    const char *mail_name;
    const char *smtpd_banner;
    long long message_size_limit;
    long long recipient_limit;
    long long timeout_ms;
    long long hard_error_limit;
    long long soft_error_limit;
    long long error_sleep_ms;
    long long process_session_limit;
    long long greet_wait_ms;     /* smtpd_greet_wait: pre-greeting talker test */
    long long hopcount_limit;
    long long line_length_limit;
    int disable_vrfy;
    int helo_required;
    int forbid_bare_newline;
    int smtputf8_enable;
    /* TLS (smtpd_tls_*) */
    int tls_level;              /* SMTPD_TLS_NONE / MAY / ENCRYPT */
    int tls_wrappermode;        /* SMTPS: TLS from the first byte */
    int tls_ask_ccert;
    int tls_received_header;
    SSL_CTX *tls_ctx;           /* NULL: no usable certificate, no TLS */
    /* SASL (smtpd_sasl_*) */
    int sasl_enable;
    int tls_auth_only;          /* AUTH only over TLS */
    /* Restrictions, limits and content checks (smtpd_policy.c,
       smtpd_queue.c), created once per process. */
    struct policy *policy;
    struct anvil *anvil;
    struct content_checks *content_checks;   /* NULL: a table failed to open */
    int content_checks_broken;
    const char *service;
};

enum { SMTPD_TLS_NONE, SMTPD_TLS_MAY, SMTPD_TLS_ENCRYPT };
extern struct smtpd_params smtpd_var;

enum smtpd_state {
    SMTPD_STATE_INIT,         /* greeting sent, no HELO/EHLO yet */
    SMTPD_STATE_HELO,         /* HELO/EHLO done, no transaction */
    SMTPD_STATE_MAIL,         /* MAIL FROM accepted */
    SMTPD_STATE_RCPT,         /* at least one RCPT TO accepted */
    SMTPD_STATE_DATA,         /* reading message content */
    SMTPD_STATE_WAIT_COMMIT,  /* queued, waiting for the group commit; input paused */
    SMTPD_STATE_CLOSING,      /* final reply queued; close once flushed */
    SMTPD_STATE_TLS,          /* TLS handshake (SMTPS or after STARTTLS): no commands */
    SMTPD_STATE_SASL,         /* AUTH exchange: the next line is a SASL response */
    SMTPD_STATE_AUTH_CHECK,   /* password check or failure delay: input paused */
};
#define SMTPD_STATE_BIT(s) (1u << (s))

/* Per-command counters for the "disconnect from" line. */
enum smtpd_counter {
    SMTPD_CNT_HELO, SMTPD_CNT_EHLO, SMTPD_CNT_STARTTLS, SMTPD_CNT_AUTH, SMTPD_CNT_MAIL,
    SMTPD_CNT_RCPT, SMTPD_CNT_DATA, SMTPD_CNT_BDAT, SMTPD_CNT_RSET, SMTPD_CNT_NOOP,
    SMTPD_CNT_VRFY, SMTPD_CNT_EXPN, SMTPD_CNT_HELP, SMTPD_CNT_ETRN, SMTPD_CNT_QUIT,
    SMTPD_CNT_UNKNOWN, SMTPD_CNT_COUNT
};

struct auth_request;
struct policy_session;
struct policy_check;
struct content_filter;

/* What a pending restriction check continues with. */
enum smtpd_pending {
    SMTPD_PENDING_NONE,
    SMTPD_PENDING_CONNECT,
    SMTPD_PENDING_HELO,
    SMTPD_PENDING_MAIL,
    SMTPD_PENDING_RCPT,
    SMTPD_PENDING_VRFY,
    SMTPD_PENDING_DATA,
    SMTPD_PENDING_END_OF_DATA,
};

struct smtpd_session {
    struct event_loop *loop;
    struct conn *conn;          /* input in conn->in, replies in conn->out */
    char addr[64];              /* client IP text, or "127.0.0.1" for UNIX sockets */
    const char *name;           /* "localhost" or "unknown" (no DNS here) */
    enum smtpd_state state;
    int closing;                /* free once the output is flushed */
    int freed;                  /* free already scheduled */
    int lost;                   /* peer went away; nothing more to write */
    int output_held;            /* conn_hold_output() in force (error delay) */

    struct smtp_command_parser *parser;
    struct event_timer *idle_timer;
    struct event_timer *sleep_timer;   /* error delay: input and output paused */
    struct event_timer *greet_timer;   /* smtpd_greet_wait before the banner */
    int banner_sent;            /* 220 (or the CONNECT rejection) queued */
    char *connect_reject;       /* CONNECT rejected: the reply instead of 220 */
    int access_denied;          /* ... and every later command gets 503 */
    int anvil_counted;          /* anvil_connect() done: disconnect at free */
    long long accept_ms;        /* event_now_ms() at accept */
    long long data_progress;    /* DATA bytes since the timer was last restarted */
    const char *where;          /* last command, for "lost connection after X" */
    int errors;
    long long rcpt_overshoot;
    int pipelining_logged;
    int unauth_pipelining;      /* sticky: input came before a reply it needed */
    int cmd_unauth_pipelining;  /* the command being handled was pipelined too early */

    /* Restriction checks (smtpd_policy.c): at most one outstanding,
       input is paused meanwhile. */
    struct policy_session *psess;
    struct policy_check *pcheck;
    enum smtpd_pending pending;
    enum smtpd_counter pending_counter;
    char *pending_path;         /* MAIL / RCPT / VRFY address as sent */
    int pending_smtputf8;
    int pending_body_8bit;
    unsigned counts_ok[SMTPD_CNT_COUNT];
    unsigned counts_all[SMTPD_CNT_COUNT];

    char *helo;                 /* sanitized HELO/EHLO argument */
    int esmtp;

    /* TLS, once the handshake is done (forgotten by nothing: a session
       cannot leave TLS). */
    int tls;
    char *tls_info;             /* "TLSv1.3 with cipher ... (256/256 bits)" */
    char *tls_peer;             /* "No client certificate requested", ... */

    /* SMTP AUTH. sasl_username is set once authenticated. */
    char *sasl_username;
    const char *sasl_method;    /* "PLAIN" / "LOGIN" (static) */
    const char *sasl_pending;   /* mechanism of the exchange in progress */
    int sasl_step;              /* LOGIN: 0 user, 1 password */
    int sasl_skipping;          /* discarding the rest of an overlong response */
    char *sasl_user;            /* LOGIN: the user name given in step 0 */
    struct auth_request *auth;  /* AUTH_CHECK: password being checked */
    struct event_timer *auth_timer;   /* AUTH_CHECK: failure delay */
    char *auth_reply;           /* sent when auth_timer fires */
    int auth_close;             /* ... and then close (throttled) */
    unsigned auth_failures;

    /* Transaction (MAIL .. end of DATA). */
    char *sender;               /* NULL outside a transaction; "" for <> */
    char *sender_raw;           /* MAIL FROM as sent (not qualified) */
    int discard;                /* policy DISCARD: accept, never queue */
    int hold;                   /* policy or content HOLD: queue into hold/ */
    char **prepend;             /* policy PREPEND header lines */
    size_t prepend_count;
    struct content_filter *cf;  /* content checks of the message in DATA */
    char **rcpts;
    size_t rcpt_count;
    size_t rcpt_alloc;
    int smtputf8;
    int body_8bit;
    struct queue_writer *qw;
    char queue_id[QUEUE_ID_LEN + 1];
    struct smtp_data_decoder data;
    struct buf piece;
    int hdr_in_header;
    int hdr_at_bol;
    int hdr_msgid_next;         /* Message-ID value is on the continuation line */
    long long hdr_received;
    char *message_id;
    int write_errno;            /* first queue write error, 0 if none */

    struct smtpd_session *prev, *next;        /* all sessions */
    struct smtpd_session *commit_next;        /* pending group commit */
};

/* smtpd_session.c */
void smtpd_session_init(struct event_loop *loop);
void smtpd_session_accept(struct event_loop *loop, int fd, const struct sockaddr *peer,
                          socklen_t peer_len);
void smtpd_session_stop_all(struct event_loop *loop);
/* Appends a reply line ("250 2.0.0 Ok"), CRLF added; 4xx/5xx replies
   count as errors and may start the error delay. */
void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends a reply line that is not counted as an error. */
void smtpd_reply_nocount(struct smtpd_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void smtpd_set_state(struct smtpd_session *s, enum smtpd_state state);
/* Queues the final reply and closes after flushing. */
void smtpd_close(struct smtpd_session *s);
/* Forgets the transaction (sender, recipients, queue writer). */
void smtpd_transaction_reset(struct smtpd_session *s);
/* Resumes command processing after WAIT_COMMIT. */
void smtpd_session_resume(struct smtpd_session *s);
/* "name[addr]" in a static buffer (valid until the next call). */
const char *smtpd_client(const struct smtpd_session *s);
/* STARTTLS: the 220 reply is queued; starts the handshake. Input
   pipelined behind the command is discarded (conn_start_tls) and the
   session starts over afterwards (RFC 3207 4.2). */
void smtpd_start_tls(struct smtpd_session *s);
/* Whether STARTTLS is offered (EHLO) and accepted now. */
int smtpd_starttls_offered(const struct smtpd_session *s);
/* Whether AUTH is offered (EHLO) and accepted now. */
int smtpd_auth_offered(const struct smtpd_session *s);
/* AUTH_CHECK: stops reading and the idle timer. */
void smtpd_auth_pause(struct smtpd_session *s);
/* The protocol name for logs, the queue file and Received: ("ESMTPSA"). */
const char *smtpd_protocol(const struct smtpd_session *s);

/* Sends the 220 banner (or the CONNECT rejection) once nothing holds
   it back any more (greet wait, CONNECT check). */
void smtpd_banner(struct smtpd_session *s);

/* smtpd_commands.c */
void smtpd_command_dispatch(struct smtpd_session *s, struct smtp_command *cmd);
/* user -> user@$myorigin, normalized (malloc'd). */
char *smtpd_qualify(const char *address);
/* The EHLO / HELO reply. */
void smtpd_helo_reply(struct smtpd_session *s);
/* DATA accepted: creates the queue file and answers 354. 0, or -1
   after an error reply. */
int smtpd_data_start(struct smtpd_session *s);
/* After the restrictions accepted: the rest of MAIL / RCPT / VRFY. */
void smtpd_mail_accept(struct smtpd_session *s, const char *path, int smtputf8, int body_8bit);
void smtpd_rcpt_accept(struct smtpd_session *s, const char *path);

/* smtpd_policy.c */
void smtpd_policy_init(struct event_loop *loop);
/* Per session: the policy session; at free also the anvil count. */
void smtpd_policy_connect(struct smtpd_session *s);
void smtpd_policy_disconnect(struct smtpd_session *s);
/* 1 when the stage has restrictions to evaluate (and the transaction is
   not being discarded). */
int smtpd_policy_wanted(struct smtpd_session *s, int stage);
/* Starts the check of stage; input pauses until the answer. path: the
   MAIL/RCPT/VRFY address as sent (NULL otherwise). */
void smtpd_policy_start(struct smtpd_session *s, int stage, enum smtpd_pending pending,
                        const char *path);
/* Cancels an outstanding check (the session is being freed). */
void smtpd_policy_forget(struct smtpd_session *s);
/* anvil: counts a MAIL / RCPT / AUTH event. Returns 0, or -1 after the
   450 reply. */
int smtpd_anvil_event(struct smtpd_session *s, int rate);
/* anvil at accept, before the session exists. Returns 0, or -1 with
   the 421 reply in text (the count is already undone). */
int smtpd_anvil_connect(const char *addr, const char *name, char *text, size_t size);

/* smtpd_auth.c */
/* AUTH command (state and offer already checked by the caller). */
int smtpd_auth_command(struct smtpd_session *s, struct smtp_command *cmd);
/* One SASL response line (state SASL), without its line ending. */
void smtpd_auth_response(struct smtpd_session *s, const char *line, size_t len);
/* Session gone: cancels a pending check and the failure delay. */
void smtpd_auth_forget(struct smtpd_session *s);

/* smtpd_queue.c */
/* Creates the queue file and writes envelope and Received header.
   Returns 0, or -1 after replying. */
int smtpd_queue_start(struct smtpd_session *s);
/* Handles one decoded DATA piece. */
void smtpd_queue_piece(struct smtpd_session *s, const char *data, size_t len, int ends_line);
/* End of DATA: replies on rejection, or commits and enters WAIT_COMMIT. */
void smtpd_queue_finish(struct smtpd_session *s);
/* After the END_OF_DATA check: commits (hold/ if held), or replies. */
void smtpd_queue_commit(struct smtpd_session *s);
/* Discards the message: "250 ... queued as ID", nothing kept. */
void smtpd_queue_discard(struct smtpd_session *s);
/* Drops the queue file (END_OF_DATA rejected). */
void smtpd_queue_reject(struct smtpd_session *s);
/* Drops a session from the pending-commit list (session freed). */
void smtpd_queue_forget(struct smtpd_session *s);
/* Before-sleep: one queue_sync() for all pending commits, then replies. */
void smtpd_queue_group_commit(struct event_loop *loop);
/* 1 if messages wait for the group commit. */
int smtpd_queue_pending(void);
void smtpd_queue_init(struct event_loop *loop);

#endif
