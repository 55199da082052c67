/*
 * NAME
 *	anvil - per-client connection and rate limits inside smtpd
 * SYNOPSIS
 *	#include "anvil.h"
 * DESCRIPTION
 *	Postfix's anvil(8) as state in the smtpd process: for each client
 *	address, the number of open connections and the rate of
 *	connections, messages (MAIL FROM), recipients (RCPT TO) and AUTH
 *	commands. Limits use Postfix's parameter names (0 = no limit):
 *	  smtpd_client_connection_count_limit   open connections
 *	  smtpd_client_connection_rate_limit    connections per time unit
 *	  smtpd_client_message_rate_limit       MAIL FROM per time unit
 *	  smtpd_client_recipient_rate_limit     RCPT TO per time unit
 *	  smtpd_client_auth_rate_limit          AUTH per time unit
 *	  anvil_rate_time_unit                  the time unit (60s)
 *	Clients in smtpd_client_event_limit_exceptions (default
 *	$mynetworks; a mynetworks-style CIDR list) are not counted at all.
 *
 *	The state is per process: with several smtpd processes for one
 *	service, each counts only its own sessions (a client spread over N
 *	processes gets up to N times the limits). The master.cf default is
 *	one smtpd process per service (maxproc 1), where the counts are
 *	exact. Services (smtp, submission) with separate processes count
 *	separately, as Postfix's anvil counts per service.
 *
 *	Every event is counted, also one that is refused (as Postfix's
 *	anvil does), so a client that keeps trying stays over the limit.
 *	A limit is exceeded when the count including this event is
 *	greater than the limit.
 *
 *	Rates use a sliding window of one time unit, approximated with two
 *	fixed windows aligned to multiples of the unit: rate = events in
 *	the current window + events in the previous window * (part of the
 *	previous window still inside the last unit), rounded down. A burst
 *	at a window edge therefore cannot get twice the limit through, and
 *	a client that stops is forgotten after two units.
 *
 *	Time is passed in by the caller (monotonic milliseconds, e.g.
 *	event_now_ms()), so tests run on a fake clock.
 * LIMITS
 *	max_clients (default ANVIL_MAX_CLIENTS_DEFAULT = 100000) entries,
 *	about 150 bytes each, looked up by hash in O(1). Entries of
 *	clients without open connections are kept in least-recently-used
 *	order: the oldest is evicted when the table is full, and entries
 *	idle for two time units are dropped. Entries of connected clients
 *	are never evicted; if all max_clients entries are connected, a new
 *	client is not counted (a warning, at most once per time unit).
 *	Addresses longer than ANVIL_ADDR_MAX bytes are not counted.
 */
#ifndef POSTERN_ANVIL_H
#define POSTERN_ANVIL_H

#include <stddef.h>

#include "buf.h"

#define ANVIL_MAX_CLIENTS_DEFAULT 100000
#define ANVIL_ADDR_MAX 63

enum anvil_rate {
    ANVIL_RATE_CONN,   /* counted by anvil_connect() */
    ANVIL_RATE_MAIL,
    ANVIL_RATE_RCPT,
    ANVIL_RATE_AUTH,
    ANVIL_RATE_COUNT,
};

enum anvil_status {
    ANVIL_OK,
    ANVIL_CONN_COUNT_EXCEEDED,
    ANVIL_CONN_RATE_EXCEEDED,
    ANVIL_MAIL_RATE_EXCEEDED,
    ANVIL_RCPT_RATE_EXCEEDED,
    ANVIL_AUTH_RATE_EXCEEDED,
};

struct anvil_limits {
    long long connection_count;          /* 0 = no limit */
    long long rate[ANVIL_RATE_COUNT];    /* per time unit; 0 = no limit */
    long long time_unit_ms;              /* > 0 */
    size_t max_clients;                  /* > 0 */
};

/* connection_count 50, rates 0, time unit 60 s, max_clients 100000. */
void anvil_limits_default(struct anvil_limits *limits_r);
/* From the parameters listed above. */
void anvil_limits_config(struct anvil_limits *limits_r);

struct anvil;

/* exceptions: a CIDR list value (NULL or "" = none). */
struct anvil *anvil_create(const struct anvil_limits *limits, const char *exceptions);
/* anvil_limits_config() and smtpd_client_event_limit_exceptions. */
struct anvil *anvil_create_config(void);
void anvil_destroy(struct anvil **anvil_p);

/* A new connection from addr: counts it (open connections and
   connection rate) and checks the count limit, then the rate limit.
   *value_r (may be NULL) gets the count or rate that was over the
   limit (0 with ANVIL_OK). Whatever it returns, the caller calls
   anvil_disconnect() once when this connection closes. */
enum anvil_status anvil_connect(struct anvil *anvil, const char *addr, long long now_ms,
                                long long *value_r);
/* The connection is gone. A no-op for exempt or uncounted clients;
   the count never goes below 0. */
void anvil_disconnect(struct anvil *anvil, const char *addr, long long now_ms);

/* Counts one MAIL, RCPT or AUTH event (not ANVIL_RATE_CONN: that is
   anvil_connect's) and checks its limit; *value_r as above. */
enum anvil_status anvil_event(struct anvil *anvil, const char *addr, enum anvil_rate rate,
                              long long now_ms, long long *value_r);

/* Read-only views (tests, a "block after too many AUTH failures"
   check at connect time): the current rate / open connections of addr,
   0 for unknown or exempt clients. */
long long anvil_rate_peek(struct anvil *anvil, const char *addr, enum anvil_rate rate,
                          long long now_ms);
long long anvil_count_peek(struct anvil *anvil, const char *addr);
int anvil_exempt(const struct anvil *anvil, const char *addr);
/* Entries in the table. */
size_t anvil_clients(const struct anvil *anvil);

/* The reply smtpd sends for a status other than ANVIL_OK, appended to
   out without CRLF (Postfix's words):
     CONN_COUNT, CONN_RATE  421 4.7.0 HOST Error: too many connections from ADDR
     MAIL_RATE              450 4.7.1 Error: too much mail from ADDR
     RCPT_RATE              450 4.7.1 Error: too many recipients from ADDR
     AUTH_RATE              450 4.7.1 Error: too many AUTH commands from ADDR
   After a 421 smtpd closes the connection. */
void anvil_reply(struct buf *out, enum anvil_status status, const char *myhostname,
                 const char *addr);
/* The warning text (for msg_warn, which adds "warning: "), e.g.
   "Connection rate limit exceeded: 31 from name[addr] for service smtp".
   client is "name[addr]". */
void anvil_warning(struct buf *out, enum anvil_status status, long long value,
                   const char *client, const char *service);

#endif
