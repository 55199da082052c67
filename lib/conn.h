/*
 * NAME
 *	conn - a buffered, non-blocking client connection, plain or TLS
 * SYNOPSIS
 *	#include "conn.h"
 * DESCRIPTION
 *	Protocol daemons (pop3d, smtpd; imapd later) read
 *	and write through a conn so TLS is invisible to the session state
 *	machine: input lands in a bounded struct buf (conn->in) that the
 *	session reads with buf_read_line(); output is appended to conn->out
 *	and flushed by conn_flush() (call it from the before-sleep hook).
 *	The conn registers its fd with the event loop and calls on_event
 *	when new input arrived, when the peer closed or failed, or when the
 *	TLS handshake finished.
 *
 *	STARTTLS/STLS (RFC 2595, 3207): conn_start_tls() discards anything
 *	still in conn->in (commands pipelined behind STARTTLS must not run
 *	after the handshake: the STARTTLS-injection class of attacks) and
 *	makes the server side handshake; the reply to STARTTLS must already
 *	be in conn->out, and it is flushed in plaintext before the
 *	handshake starts.
 *
 *	Reads stop while conn->in is full (the session must consume it) or
 *	while conn->out holds more than out_limit bytes (a client that does
 *	not read its replies cannot make us buffer without bound).
 */
#ifndef POSTERN_CONN_H
#define POSTERN_CONN_H

#include <openssl/ssl.h>
#include <sys/socket.h>

#include "buf.h"
#include "event.h"

enum conn_event {
    CONN_EVENT_INPUT,      /* new bytes in conn->in */
    CONN_EVENT_CLOSED,     /* EOF, reset, TLS failure: free the conn soon */
    CONN_EVENT_TLS_READY,  /* handshake finished (implicit TLS or STARTTLS) */
};

struct conn;
typedef void conn_event_cb(struct conn *conn, enum conn_event event, void *ctx);

struct conn {
    int fd;
    struct buf in;        /* bounded by in_limit */
    struct buf out;       /* appended by the session */
    SSL *ssl;             /* NULL until TLS starts */
    int tls_ready;        /* handshake done */
    int closed;           /* peer gone or error; no more events but CLOSED */
    char addr[64];        /* peer address text, "127.0.0.1" or "::1" */
    int port;
    /* private */
    struct event_loop *loop;
    conn_event_cb *cb;
    void *ctx;
    size_t out_limit;
    int mask;
    int handshaking;
    int want_write_for_read;
    int read_paused;
    /* Why a client-side handshake failed
       ("certificate verify failed: ..."), set before CLOSED; "" else */
    char tls_failure[192];
    /* Set before the INPUT event whose read also met the peer's EOF
       (CLOSED follows right after it): a session that wants its last
       replies to reach a half-closed client calls conn_flush() there. */
    int read_eof;
    int output_held;      /* private: see conn_hold_output() */
};

/* Takes ownership of a connected non-blocking fd. in_limit bounds
   conn->in; out_limit pauses reading while more output is queued. */
struct conn *conn_create(struct event_loop *loop, int fd, const struct sockaddr *peer,
                         socklen_t peer_len, size_t in_limit, size_t out_limit,
                         conn_event_cb *cb, void *ctx);
/* Closes the fd, frees TLS state and buffers; sets *conn_p to NULL. Never
   call it from inside the conn's own callback: defer it (event_defer). */
void conn_destroy(struct conn **conn_p);

/* Starts server-side TLS: at once for implicit TLS (POP3S/IMAPS/SMTPS),
   or after a STARTTLS reply (see above). Returns 0, or -1 when TLS
   cannot start (the conn is then closed). */
int conn_start_tls(struct conn *conn, SSL_CTX *ctx);
/* Writes as much of conn->out as the socket takes. Returns 0 when all
   is written, 1 when some remains (write interest is registered), -1 when
   the connection failed (a CLOSED event follows). */
int conn_flush(struct conn *conn);
/* Re-evaluates read interest after the session consumed conn->in. */
void conn_update(struct conn *conn);
/* Stops reading (e.g. while a command is being processed, or after a
   fatal protocol error before close). */
void conn_pause_input(struct conn *conn, int paused);

/* Holds output back (held 1): conn->out is neither written by the loop
   nor by conn_flush() (which then returns 1 while output is queued)
   until it is released with held 0. For replies a session delays on
   purpose (smtpd's error sleep). Input pausing is separate
   (conn_pause_input). */
void conn_hold_output(struct conn *conn, int held);

/* Starts client-side TLS on an outbound connection (the SMTP client
   sent STARTTLS and read the 220 reply). Nothing is discarded: the
   caller must check that the server sent nothing after its reply
   (bytes in conn->in then are a protocol error, the STARTTLS-injection
   class seen from the client side) and that no output is queued;
   calling it otherwise is a bug (msg_panic). peer_name (may be NULL)
   is sent as SNI unless it is an IP address, and when ctx verifies
   peers (tls_client_context with verify) the certificate must match
   it (DNS name, or IP address for a literal). TLS_READY follows when
   the handshake is done; CLOSED when it fails, with conn->tls_failure
   saying why. Returns 0, or -1 when TLS cannot start (the conn is
   closed, CLOSED follows as for conn_start_tls). */
int conn_start_tls_client(struct conn *conn, SSL_CTX *ctx, const char *peer_name);

#endif
