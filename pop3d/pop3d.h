/*
 * NAME
 *	pop3d.h - private interface of the POP3 server daemon
 * DESCRIPTION
 *	pop3d_session.c   session life cycle, the state machine, replies,
 *	                  timers, the error budget, the input loop and the
 *	                  before-sleep flush (which also feeds RETR/TOP)
 *	pop3d_commands.c  the command table (which command in which state)
 *	                  and one handler per command, SASL included
 *	pop3d_mailbox.c   the mailbox snapshot (index, lock, sync), UIDLs,
 *	                  RETR/TOP streaming with CRLF and dot-stuffing,
 *	                  and the UPDATE state's changes at QUIT
 *	main.c            parameters and server hooks
 */
#ifndef POSTERN_POP3D_H
#define POSTERN_POP3D_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "conn.h"
#include "event.h"
#include "mailbox_index.h"
#include "pop3_command.h"

/* Parameters, read once at start (master restarts us on reload). */
struct pop3d_params {
    long long timeout_ms;
    long long error_limit;
    long long session_limit;
    const char *tls_cert_file;
    const char *tls_key_file;
    int wrappermode;
    SSL_CTX *tls_ctx;           /* NULL: no usable certificate, no STLS */
};
extern struct pop3d_params pop3d_var;

enum pop3d_state {
    POP3D_STATE_TLS,            /* handshake (POP3S or after STLS): no commands */
    POP3D_STATE_AUTHORIZATION,  /* RFC 1939 4 */
    POP3D_STATE_SASL,           /* AUTH exchange: the next line is a SASL response */
    POP3D_STATE_AUTH_CHECK,     /* password hashed on a worker thread: input paused */
    POP3D_STATE_AUTH_DELAY,     /* failed login: reply held back, input paused */
    POP3D_STATE_TRANSACTION,    /* RFC 1939 5 */
    POP3D_STATE_UPDATE,         /* RFC 1939 6: QUIT is applying DELE */
    POP3D_STATE_CLOSING,        /* last reply queued; close once flushed */
};
#define POP3D_STATE_BIT(s) (1u << (s))

/* One message of the session's snapshot, in RFC 1939 numbering order.
   Kept to 16 bytes: a session may hold tens of thousands of these. The
   file name, base name (UIDL) and flags stay in the mailbox index and
   are looked up by uid when needed (mailbox_index_find, which reads
   LMDB: the index's array is dropped after the snapshot). */
struct pop3d_msg {
    uint32_t uid;
    unsigned deleted : 1;    /* DELE (undone by RSET) */
    unsigned retrieved : 1;  /* RETR: gets the S flag at QUIT */
    unsigned accessed : 1;   /* RETR or TOP: moves new/ -> cur/ at QUIT */
    uint64_t size;           /* octets as sent: CRLF line endings, before dot-stuffing */
};

/* RFC 1939: a unique-id is 1 to 70 characters. */
#define POP3D_UIDL_SIZE 71

/* RETR/TOP in progress: the file is converted chunk by chunk as the
   client reads, never loaded whole. */
struct pop3d_stream {
    int fd;                  /* -1: no stream */
    struct pop3d_msg *msg;
    int at_bol;              /* next byte starts a line (dot-stuffing) */
    int prev_cr;             /* last byte was CR (CRLF already on disk) */
    int in_header;           /* TOP: still in the header section */
    size_t line_len;         /* bytes of the current line, CR excluded */
    long long body_lines;    /* TOP: body lines still to send; -1 = all */
    uint64_t sent;           /* message octets sent (unstuffed) */
};

struct auth_request;

enum pop3d_sasl_mech { POP3D_SASL_PLAIN, POP3D_SASL_LOGIN };

struct pop3d_session {
    struct event_loop *loop;
    struct conn *conn;
    char addr[64];
    enum pop3d_state state;
    int greeted;             /* greeting sent (POP3S: after the handshake) */
    int freed;               /* free already scheduled */
    int errors;
    struct pop3_command_parser *parser;
    struct event_timer *idle_timer;
    struct event_timer *delay_timer;
    char *delayed_reply;     /* sent when delay_timer fires */

    char *user;              /* USER argument awaiting PASS */
    enum pop3d_sasl_mech sasl_mech;
    int sasl_step;
    char *sasl_user;
    char *login;             /* canonical address once logged in */
    struct auth_request *auth;   /* POP3D_STATE_AUTH_CHECK */
    char *auth_user;             /* the name being checked, for the log */
    const char *auth_method;     /* "PLAIN" / "LOGIN", for the log */

    /* Mailbox (TRANSACTION and UPDATE). */
    char *maildir;
    struct mailbox_index *index;
    struct pop3d_msg *msgs;
    size_t msg_count;
    uint64_t total_size;     /* all messages at login */
    size_t last_accessed;    /* LAST (RFC 1725) */
    size_t last_seen;        /* highest message seen in earlier sessions (flag S) */
    struct pop3d_stream stream;

    /* For the disconnect line. */
    unsigned top_count;
    unsigned retr_count;
    uint64_t retr_bytes;
    unsigned del_count;

    struct pop3d_session *prev, *next;
};

/* pop3d_session.c */
void pop3d_session_init(struct event_loop *loop);
void pop3d_session_accept(struct event_loop *loop, int fd, const struct sockaddr *peer,
                          socklen_t peer_len);
void pop3d_session_stop_all(struct event_loop *loop);
/* Appends a reply line, CRLF added. */
void pop3d_reply(struct pop3d_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends an -ERR line ("-ERR " is added) that counts toward
   pop3d_error_limit. */
void pop3d_reply_error(struct pop3d_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void pop3d_set_state(struct pop3d_session *s, enum pop3d_state state);
/* Takes input again after a pause the commands made (the password
   check), handling what the client pipelined meanwhile. */
void pop3d_resume(struct pop3d_session *s);
/* Closes once the queued output is flushed. */
void pop3d_close(struct pop3d_session *s);
/* Holds reply back for auth_failure_delay with input paused. */
void pop3d_delay_reply(struct pop3d_session *s, long long msec, const char *reply);
/* STLS: the +OK is queued; starts the handshake (input discarded). */
void pop3d_start_tls(struct pop3d_session *s);
int pop3d_tls_active(const struct pop3d_session *s);

/* pop3d_commands.c */
void pop3d_command_dispatch(struct pop3d_session *s, struct pop3_command *cmd);
/* One SASL response line (state SASL). */
void pop3d_sasl_response(struct pop3d_session *s, const char *line, size_t len);

/* pop3d_mailbox.c */
/* Opens, locks and snapshots the user's mailbox. Returns 0, 1 when
   another session holds the lock, -1 on failure (logged). */
int pop3d_mailbox_open(struct pop3d_session *s, const char *user);
/* Releases the lock and forgets the snapshot (no changes made). */
void pop3d_mailbox_close(struct pop3d_session *s);
/* Starts sending message idx; body_lines -1 for RETR, else TOP's n.
   Returns 0 (the +OK line is queued) or -1 (an -ERR was queued). */
int pop3d_mailbox_stream_start(struct pop3d_session *s, size_t idx, long long body_lines);
/* Appends converted bytes to conn->out up to about limit bytes queued.
   Returns 1 while more is to come, 0 when the message and its ".\r\n"
   are queued, -1 on a read error (the session must close). */
int pop3d_mailbox_stream_fill(struct pop3d_session *s, size_t limit);
void pop3d_mailbox_stream_stop(struct pop3d_session *s);
/* UPDATE: removes DELE'd messages, moves accessed ones to cur/ with S
   for retrieved ones. Returns the number of failures. */
int pop3d_mailbox_update(struct pop3d_session *s);
/* Message idx's unique-id, built into buf from its Maildir base name. */
const char *pop3d_mailbox_uidl(struct pop3d_session *s, size_t idx, char buf[POP3D_UIDL_SIZE]);

#endif
