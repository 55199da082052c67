/*
 * NAME
 *	imapd.h - private interface of the IMAP server daemon
 * DESCRIPTION
 *	imapd is an event server (lib/server.c) like pop3d: one process,
 *	many IMAP4rev1 sessions (RFC 3501) on lib/conn, commands parsed by
 *	lib/imap_parser, passwords checked by lib/auth on its worker
 *	thread, folders are Maildir++ (lib/maildir_folders), every folder
 *	has its lib/mailbox_index, message items come from lib/imap_msg.
 *
 *	imapd_session.c   session life cycle, the state machine, the input
 *	                  pump, replies, timers, STARTTLS, the error budget,
 *	                  commands that run over several loop rounds (a big
 *	                  FETCH resumes when the client has read the output)
 *	imapd_commands.c  the command table (which command in which state)
 *	                  and the handlers of the not-authenticated and
 *	                  authenticated states: CAPABILITY, NOOP, LOGOUT,
 *	                  STARTTLS, AUTHENTICATE, LOGIN, ID, ENABLE,
 *	                  NAMESPACE, CREATE, DELETE, RENAME, SUBSCRIBE,
 *	                  UNSUBSCRIBE, LIST, LSUB, STATUS
 *	imapd_auth.c      LOGIN, AUTHENTICATE PLAIN (SASL-IR), the password
 *	                  check on the worker thread, the user's Maildir
 *	imapd_mailbox.c   the selected mailbox: the session's view (message
 *	                  sequence numbers <-> UIDs, \Recent, flags as last
 *	                  told to the client), untagged EXISTS / RECENT /
 *	                  EXPUNGE / FETCH updates, SELECT, EXAMINE, CLOSE,
 *	                  UNSELECT, CHECK, EXPUNGE, UID EXPUNGE
 *	imapd_fetch.c     FETCH, STORE, SEARCH (and their UID forms)
 *	imapd_copy.c      APPEND, COPY, MOVE (UIDPLUS answers)
 *	imapd_idle.c      IDLE: inotify on the selected folder's new/ and cur/
 *	main.c            parameters and server hooks
 */
#ifndef POSTERN_IMAPD_H
#define POSTERN_IMAPD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "conn.h"
#include "event.h"
#include "imap_parser.h"
#include "mailbox_index.h"

/* Parameters, read once at start (master restarts us on reload). */
struct imapd_params {
    long long timeout_ms;          /* imapd_timeout: not authenticated / between commands */
    long long idle_timeout_ms;     /* imapd_idle_timeout: an IDLE lasts at most this */
    long long error_limit;         /* imapd_error_limit: BAD replies before disconnect */
    long long session_limit;       /* imapd_session_limit */
    long long message_size_limit;  /* APPEND limit (message_size_limit) */
    const char *tls_cert_file;
    const char *tls_key_file;
    int wrappermode;               /* imapd_tls_wrappermode: IMAPS */
    SSL_CTX *tls_ctx;              /* NULL: no usable certificate, no STARTTLS */
};
extern struct imapd_params imapd_var;

enum imapd_state {
    IMAPD_STATE_TLS,           /* handshake (IMAPS or after STARTTLS): no commands */
    IMAPD_STATE_NOT_AUTH,      /* RFC 3501 3.1 */
    IMAPD_STATE_SASL,          /* AUTHENTICATE exchange: the next line is a SASL response */
    IMAPD_STATE_AUTH_CHECK,    /* password hashed on a worker thread: input paused */
    IMAPD_STATE_AUTH_DELAY,    /* failed login: reply held back, input paused */
    IMAPD_STATE_AUTH,          /* RFC 3501 3.2 */
    IMAPD_STATE_SELECTED,      /* RFC 3501 3.3 */
    IMAPD_STATE_LOGOUT,        /* BYE queued; close once flushed */
};
#define IMAPD_STATE_BIT(s) (1u << (s))

/* What a session is doing inside its state, besides waiting for a
   command. */
enum imapd_busy {
    IMAPD_BUSY_NONE,
    IMAPD_BUSY_COMMAND,   /* a command resumes when the output drains (s->resume) */
    IMAPD_BUSY_APPEND,    /* an APPEND literal is streaming into tmp/ (s->append) */
    IMAPD_BUSY_IDLE,      /* IDLE: only DONE is read (s->idle) */
};

/* ENABLE (RFC 5161) bits. */
#define IMAPD_ENABLED_CONDSTORE 0x01u

/* Handlers a command that runs over several loop rounds leaves in
   s->resume: called again before the loop sleeps, once conn->out holds
   less than IMAPD_OUTPUT_LOW bytes. It returns IMAPD_CMD_MORE to be
   called again, or IMAPD_CMD_DONE once it queued its tagged reply (the
   session then frees s->resume_cmd and reads the next command). */
enum imapd_cmd_status { IMAPD_CMD_DONE, IMAPD_CMD_MORE };
struct imapd_session;
typedef enum imapd_cmd_status imapd_resume_fn(struct imapd_session *s);

/* Output is produced in rounds: a FETCH of 100,000 messages queues a few
   messages' responses, then waits until the client has read them. */
#define IMAPD_OUTPUT_LOW (256u * 1024u)

struct imapd_mailbox;   /* imapd_mailbox.c */
struct imapd_append;    /* imapd_copy.c */
struct imapd_idle;      /* imapd_idle.c */
struct auth_request;

struct imapd_session {
    struct event_loop *loop;
    struct conn *conn;
    char addr[64];
    enum imapd_state state;
    enum imapd_busy busy;
    int greeted;               /* greeting sent (IMAPS: after the handshake) */
    int freed;                 /* free already scheduled */
    int errors;                /* BAD replies, toward imapd_error_limit */
    struct imap_parser *parser;
    struct event_timer *idle_timer;
    struct event_timer *delay_timer;
    char *delayed_reply;       /* sent when delay_timer fires */

    /* AUTHENTICATE / LOGIN */
    char sasl_tag[IMAP_TAG_MAX + 1];
    struct auth_request *auth;
    char *auth_user;           /* the name being checked, for the log */
    const char *auth_method;   /* "PLAIN" / "LOGIN" (the command), for the log */
    char auth_tag[IMAP_TAG_MAX + 1];

    /* Authenticated. */
    char *login;               /* canonical address */
    char *maildir;             /* the user's Maildir (INBOX), absolute, no trailing '/' */
    unsigned enabled;          /* IMAPD_ENABLED_* */

    /* Selected (NULL otherwise). */
    struct imapd_mailbox *mbox;

    /* IMAPD_BUSY_COMMAND */
    imapd_resume_fn *resume;
    struct imap_command *resume_cmd;   /* owned while resuming */
    void *resume_state;                /* the handler's own state; freed by it */
    /* Set by the handler if the session may end mid-command (client gone,
       timeout): frees resume_state then; NULL means free(resume_state). */
    void (*resume_free)(void *state);
    /* IMAPD_BUSY_APPEND */
    struct imapd_append *append;
    /* IMAPD_BUSY_IDLE */
    struct imapd_idle *idle;
    char idle_tag[IMAP_TAG_MAX + 1];

    /* For the disconnect line. */
    unsigned fetch_count;
    uint64_t fetch_bytes;
    unsigned append_count;
    unsigned expunge_count;

    struct imapd_session *prev, *next;
};

/*
 * imapd_session.c
 */
void imapd_session_init(struct event_loop *loop);
void imapd_session_accept(struct event_loop *loop, int fd, const struct sockaddr *peer,
                          socklen_t peer_len);
void imapd_session_stop_all(struct event_loop *loop);
/* "* " + text + CRLF. */
void imapd_untagged(struct imapd_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* tag + " " + status ("OK", "NO", "BAD") + " " + text + CRLF. BAD
   counts toward imapd_error_limit (the session closes with
   "* BYE Too many invalid commands" when it is reached). */
void imapd_tagged(struct imapd_session *s, const char *tag, const char *status,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The output buffer, for responses built piece by piece (literals). */
struct buf *imapd_out(struct imapd_session *s);
void imapd_set_state(struct imapd_session *s, enum imapd_state state);
/* Takes input again after a pause (password check, IDLE, a resumed
   command), handling what the client pipelined meanwhile. */
void imapd_resume_input(struct imapd_session *s);
/* Closes once the queued output is flushed. */
void imapd_close(struct imapd_session *s);
/* Holds reply back for msec with input paused (failed logins). */
void imapd_delay_reply(struct imapd_session *s, long long msec, const char *reply);
/* STARTTLS: the tagged OK is queued; starts the handshake and empties
   the input (commands pipelined behind STARTTLS are discarded). */
void imapd_start_tls(struct imapd_session *s);
int imapd_tls_active(const struct imapd_session *s);
/* Starts a multi-round command: handler is called as described at
   imapd_resume_fn; cmd and state are kept in the session. */
void imapd_begin_resumable(struct imapd_session *s, struct imap_command *cmd,
                           imapd_resume_fn *handler, void *state);

/*
 * imapd_commands.c
 */
/* Checks the command against the state and runs its handler; takes
   ownership of cmd (frees it, or keeps it for a resumable command). */
void imapd_command_dispatch(struct imapd_session *s, struct imap_command *cmd);
/* Checks cmd->cmd against the session's state (the command table); 1
   when allowed, else 0 after a tagged BAD. For the APPEND preview. */
int imapd_command_check_state(struct imapd_session *s, const struct imap_command *cmd);
/* The CAPABILITY list for the session's state and TLS, without "* CAPABILITY ". */
const char *imapd_capabilities(const struct imapd_session *s);
/* The absolute folder path of a mailbox name for the logged-in user,
   or NULL with *error_r (static text for a NO reply). Caller frees. */
char *imapd_folder_path(struct imapd_session *s, const char *name, const char **error_r);

/*
 * imapd_auth.c (split from imapd_commands.c)
 */
void imapd_cmd_login(struct imapd_session *s, struct imap_command *cmd);
void imapd_cmd_authenticate(struct imapd_session *s, struct imap_command *cmd);
/* One AUTHENTICATE continuation line (state SASL). */
void imapd_sasl_response(struct imapd_session *s, const char *line, size_t len);

/*
 * imapd_mailbox.c
 */
/* SELECT / EXAMINE (readonly). On success the session is SELECTED and the
   untagged FLAGS, EXISTS, RECENT, OK [UNSEEN], [UIDVALIDITY], [UIDNEXT],
   [PERMANENTFLAGS], [HIGHESTMODSEQ] are queued; the caller sends the
   tagged "OK [READ-WRITE]" / "[READ-ONLY]". A previous selection is
   closed first (without expunging; RFC 3501 6.3.1). Returns 0, or -1
   with *error_r (static text) and the session AUTH. */
int imapd_mailbox_select(struct imapd_session *s, const char *name, int readonly,
                         int condstore, const char **error_r);
/* Leaves the selected state; expunge 1 (CLOSE on a read-write
   selection) removes \Deleted messages silently first. */
void imapd_mailbox_unselect(struct imapd_session *s, int expunge);
/* Brings the view up to date and queues the untagged updates: EXISTS /
   RECENT for new mail, FETCH FLAGS for flag changes by other sessions,
   and EXPUNGE only when allow_expunge (not during FETCH, STORE, SEARCH:
   RFC 3501 7.4.1). Called before each tagged reply in SELECTED. */
void imapd_mailbox_notify(struct imapd_session *s, int allow_expunge);
void imapd_cmd_check(struct imapd_session *s, struct imap_command *cmd);
void imapd_cmd_expunge(struct imapd_session *s, struct imap_command *cmd); /* + UID EXPUNGE */
/* The mailbox index of the selected folder, and the path of its Maildir. */
struct mailbox_index *imapd_mailbox_index(struct imapd_session *s);
const char *imapd_mailbox_path(struct imapd_session *s);
int imapd_mailbox_readonly(struct imapd_session *s);
/* Number of messages in the view, and the UID of sequence number seq
   (1-based), 0 when out of range. */
uint32_t imapd_mailbox_count(struct imapd_session *s);
uint32_t imapd_mailbox_uid(struct imapd_session *s, uint32_t seq);
/* The sequence number of uid in the view, 0 when it is not there. */
uint32_t imapd_mailbox_seq(struct imapd_session *s, uint32_t uid);
/* 1 when the message is \Recent for this session. */
int imapd_mailbox_recent(struct imapd_session *s, uint32_t seq);
/* Records that the client was told these flags for seq (after a FETCH
   or STORE reply), so notify does not repeat them. */
void imapd_mailbox_flags_told(struct imapd_session *s, uint32_t seq, const char *flags);

/* STATUS of a folder (selected or not). */
struct imapd_status {
    uint32_t messages, recent, uidnext, uidvalidity, unseen;
    uint64_t highestmodseq;
};
int imapd_mailbox_status(struct imapd_session *s, const char *name, struct imapd_status *r,
                         const char **error_r);

/*
 * imapd_fetch.c
 */
void imapd_cmd_fetch(struct imapd_session *s, struct imap_command *cmd);
void imapd_cmd_store(struct imapd_session *s, struct imap_command *cmd);
void imapd_cmd_search(struct imapd_session *s, struct imap_command *cmd);

/*
 * imapd_copy.c
 */
/* The APPEND literal was announced (IMAP_PARSE_APPEND_LITERAL, preview
   holds the arguments): checks the folder and opens a tmp/ file.
   Returns 0 (busy = APPEND; the caller sends "+ Ready" for a
   synchronizing literal), or -1 after queuing the tagged NO (the caller
   then calls imap_parser_reject_literal()). */
int imapd_append_begin(struct imapd_session *s, const struct imap_command *preview);
/* A chunk of the literal (IMAP_PARSE_LITERAL_DATA). */
void imapd_append_data(struct imapd_session *s, const char *data, size_t len);
/* The complete APPEND command arrived: moves the file into new/ or cur/
   with its flags and date, indexes it and queues the tagged
   "OK [APPENDUID uidvalidity uid]". Takes cmd. */
void imapd_append_finish(struct imapd_session *s, struct imap_command *cmd);
/* The command failed after the literal (parser ERROR) or the session
   ends: removes the tmp/ file. */
void imapd_append_abort(struct imapd_session *s);
void imapd_cmd_copy(struct imapd_session *s, struct imap_command *cmd);   /* COPY, MOVE, UID forms */

/*
 * imapd_idle.c
 */
/* IDLE: queues "+ idling", watches the selected folder (if any) and
   sends updates within a second of a change. Returns 0, or -1 after a
   tagged NO. */
int imapd_idle_start(struct imapd_session *s, const char *tag);
/* DONE arrived (or the session ends): stops watching and queues the
   tagged OK (unless closing). */
void imapd_idle_stop(struct imapd_session *s, int send_reply);

#endif
