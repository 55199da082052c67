/*
 * NAME
 *	attr - typed, length-checked messages between daemons
 * SYNOPSIS
 *	#include "attr.h"
 * DESCRIPTION
 *	A message is a list of name=value pairs. On the wire (UNIX sockets
 *	between qmgr, local, smtpd and the CLI):
 *	  4 bytes: big-endian length L of the body (1 <= L <= ATTR_MAX_MSG)
 *	  L bytes: "name=value\0" repeated, then one extra "\0"
 *	Names are [a-z0-9_]+; values are any bytes except NUL. Every request
 *	carries "id" and its reply repeats it. The decoder rejects a length
 *	out of range, a pair without '=', a bad name, a missing final NUL
 *	and bytes after it: a malformed message is a bug in the peer, so
 *	the reader logs it loudly and drops the peer.
 */
#ifndef POSTERN_ATTR_H
#define POSTERN_ATTR_H

#include <stddef.h>

#include "buf.h"

#define ATTR_MAX_MSG (1024 * 1024)

struct attr_msg {
    size_t count;
    size_t alloc;
    char **names;
    char **values;
};

void attr_msg_init(struct attr_msg *msg);
/* Frees the pairs; the message is empty and reusable. */
void attr_msg_clear(struct attr_msg *msg);
void attr_msg_add(struct attr_msg *msg, const char *name, const char *value);
void attr_msg_addf(struct attr_msg *msg, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The first value for name, or NULL. Valid until the message changes. */
const char *attr_msg_get(const struct attr_msg *msg, const char *name);
/* The value parsed as a non-negative integer, or -1 if absent/invalid. */
long long attr_msg_get_num(const struct attr_msg *msg, const char *name);

/* Appends the framed message to out. */
void attr_msg_encode(const struct attr_msg *msg, struct buf *out);

enum attr_status { ATTR_OK, ATTR_NEED_MORE, ATTR_BAD };
/* Decodes one frame from the start of in. ATTR_OK: *msg_r (cleared first)
   holds it and the frame is consumed from in. ATTR_BAD: *error_r says
   what is wrong; the stream is unusable. */
enum attr_status attr_msg_decode(struct buf *in, struct attr_msg *msg_r, const char **error_r);

/* Blocking helpers for simple peers (local, CLI). Return 0, or -1 on
   EOF/error/timeout (errno set; EPROTO for a malformed frame). in holds
   bytes read past the frame for the next call. */
int attr_msg_write_fd(int fd, const struct attr_msg *msg);
int attr_msg_read_fd(int fd, struct buf *in, struct attr_msg *msg_r, int timeout_ms);

/* A frame carries at most this many pairs (decoder limit; adding more is
   a bug: msg_panic). */
#define ATTR_MAX_PAIRS 4096
/* 1 if name[0..len) is a valid attribute name ([a-z0-9_]+). */
int attr_name_valid(const char *name, size_t len);
/* Notes on the blocking helpers: timeout_ms < 0 waits forever; a timeout
   fails with ETIMEDOUT; EOF fails with ECONNRESET (in->len == 0 then
   means the peer closed cleanly between frames). attr_msg_write_fd()
   handles non-blocking fds and never raises SIGPIPE (EPIPE instead). */

#endif
