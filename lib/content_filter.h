/*
 * NAME
 *	content_filter - header_checks, mime_header_checks,
 *	nested_header_checks and body_checks on a streamed message
 * SYNOPSIS
 *	#include "content_filter.h"
 * DESCRIPTION
 *	Postfix's content checks, applied while a message streams into
 *	the queue file, without ever holding the message in memory.
 *
 *	Input: the message bytes exactly as smtpd stores them (after
 *	dot-unstuffing, LF line endings), in chunks of ANY size: a chunk
 *	may hold part of a line, one line or many lines. Output: the bytes
 *	to store, handed to the caller's write function (possibly changed
 *	by IGNORE / REPLACE / PREPEND), in order.
 *
 *	The filter follows the message structure:
 *	  - the primary header: each logical header (a line plus its
 *	    folded continuation lines) is ONE lookup key, with the
 *	    folding newlines kept, as in Postfix ("Subject: a\n\tb"; the
 *	    key has no final newline). A pcre: "." does not match the
 *	    embedded "\n" unless the regex has the s flag.
 *	  - the header section ends at an empty line, or at the first line
 *	    that is neither a header nor a continuation (that line is the
 *	    first body line).
 *	  - Content-Type: multipart/... with a boundary: the body is split
 *	    on "--boundary" lines (an enclosing multipart's boundary also
 *	    ends every part nested inside it); each part has a header
 *	    section (MIME part header) and a body. multipart/digest parts
 *	    default to message/rfc822.
 *	  - Content-Type: message/rfc822 (not base64/quoted-printable
 *	    encoded, and followed by an empty line): the body is an
 *	    attached message with its own header section (nested header)
 *	    and body, possibly multipart again.
 *	Which table list a header goes to (as Postfix's cleanup does):
 *	  MIME headers (Content-Type, Content-Transfer-Encoding,
 *	  Content-Disposition, Content-ID, Content-Description,
 *	  MIME-Version) anywhere, and every header of a multipart body
 *	  part:                                  mime_header_checks
 *	  other headers of the primary header:   header_checks
 *	  other headers of an attached message:  nested_header_checks
 *	Every body line (part bodies, preambles, epilogues and the
 *	"--boundary" lines themselves; not the empty line that ends a
 *	header section) goes to body_checks, without its newline, as long
 *	as fewer than body_max (body_checks_size_limit) bytes of the
 *	current body segment (the body between two boundaries / of one
 *	part) have been inspected.
 *
 *	Table results: "ACTION [text]", ACTION case-insensitive:
 *	  REJECT [text]   reject the message: "550 5.7.1 text" (default
 *	                  "Message content rejected"; a text starting with
 *	                  a 4.x.x or 5.x.x code uses it, 4.x.x -> 451)
 *	  DISCARD [text]  accept (250) and drop the message
 *	  HOLD [text]     queue the message into hold/
 *	  WARN [text]     log "warning: ..." only; INFO [text] "info: ..."
 *	  IGNORE          delete this header / body line
 *	  REPLACE text    replace this header / body line with text
 *	  PREPEND text    insert text as a line before this header / line
 *	  DUNNO, OK       nothing (the search stops at the first hit)
 *	Unknown actions are a warning and nothing else. For headers,
 *	REPLACE and PREPEND text must itself look like a header
 *	("Name: value"), else a warning and nothing (as Postfix). REJECT,
 *	DISCARD and a lookup error (TEMPFAIL) are final: nothing after
 *	them is checked or written (the message will not be queued);
 *	HOLD is kept unless a final verdict comes later.
 *
 *	Log lines (msg_info), Postfix's shape:
 *	  ID: reject: header Subject: spam from name[addr]; from=<s>
 *	      to=<r> proto=ESMTP helo=<h>: 5.7.1 Message content rejected
 *	  ID: warning: header ...; ... [: text]   (also hold:, discard:,
 *	  info:; "body" instead of "header" for body lines)
 *	Control characters of the content (the folding "\n\t") are shown
 *	as '?', as syslog shows Postfix's lines.
 * LIMITS
 *	struct content_filter_limits (defaults in brackets):
 *	  line_max [4096 = TABLE_KEY_MAX]: bytes of one logical header or
 *	    body line used as the lookup key. A longer header or line is
 *	    matched on its first line_max bytes and its action decided
 *	    there; the whole header/line is still passed through unchanged
 *	    (or dropped / replaced as a whole). Configured by
 *	    header_size_limit, clamped to [64, TABLE_KEY_MAX] because
 *	    lib/table does not look up longer keys.
 *	  body_max [51200, body_checks_size_limit]: bytes inspected per
 *	    body segment; 0 = body_checks see nothing.
 *	  max_depth [20, cap CONTENT_FILTER_DEPTH_CAP]: nested multipart /
 *	    message/rfc822 levels followed; a deeper entity is one opaque
 *	    body (its lines still go to body_checks).
 *	  boundary_max [2048, Postfix's mime_boundary_length_limit]:
 *	    longer boundaries are not followed (the multipart is opaque).
 *	Memory per filter: about 3 * line_max + max_depth * (boundary_max
 *	+ 32) bytes at most, whatever the message size.
 *	NUL bytes: a lookup key ends at its first NUL (C strings), the
 *	output keeps them.
 */
#ifndef POSTERN_CONTENT_FILTER_H
#define POSTERN_CONTENT_FILTER_H

#include <stddef.h>

#include "buf.h"

#define CONTENT_FILTER_DEPTH_CAP 100

/* ---- the tables, opened once per process ---- */

struct content_checks;

/* Opens the four table lists (values as in main.cf: "pcre:/a, lmdb:/b";
   NULL or "" = no checks of that kind). A list whose value equals an
   earlier one is shared, so the default mime_header_checks =
   nested_header_checks = $header_checks compiles each pcre table once.
   Returns NULL with *error_r (table.h's buffer) when a table cannot be
   opened. */
struct content_checks *content_checks_open(const char *header_checks,
                                           const char *mime_header_checks,
                                           const char *nested_header_checks,
                                           const char *body_checks, const char **error_r);
/* Same with the main.cf parameters of those names. */
struct content_checks *content_checks_open_config(const char **error_r);
/* 0 when all four lists are empty: the caller need not filter at all. */
int content_checks_active(const struct content_checks *checks);
void content_checks_close(struct content_checks **checks_p);

/* ---- one message ---- */

struct content_filter_limits {
    size_t line_max;       /* lookup key bytes per header / body line */
    long long body_max;    /* body_checks bytes per body segment */
    unsigned max_depth;    /* MIME nesting followed */
    size_t boundary_max;   /* longest boundary followed */
};

void content_filter_limits_default(struct content_filter_limits *limits_r);
/* Defaults, then header_size_limit and body_checks_size_limit. */
void content_filter_limits_config(struct content_filter_limits *limits_r);

/* Context for the log lines; the strings are copied at create. NULL
   leaves the field out (queue_id NULL logs "NOQUEUE"; client NULL
   "unknown"). sender "" logs from=<>. recipient: the first one. */
struct content_filter_log {
    const char *queue_id;
    const char *client;      /* "name[addr]" */
    const char *sender;
    const char *recipient;
    const char *protocol;    /* "ESMTP" */
    const char *helo;
};

/* Receives the bytes to store, in order. len > 0. */
typedef void content_filter_write_fn(void *ctx, const char *data, size_t len);

enum content_verdict {
    CONTENT_ACCEPT,     /* queue it (into incoming/) */
    CONTENT_HOLD,       /* queue it into hold/ */
    CONTENT_DISCARD,    /* answer 250, queue nothing */
    CONTENT_REJECT,     /* answer content_filter_reply() (5xx, or 451), queue nothing */
    CONTENT_TEMPFAIL,   /* a table failed: answer content_filter_reply() (451), queue nothing */
};

struct content_filter;

/* checks must outlive the filter. limits NULL = defaults. */
struct content_filter *content_filter_create(struct content_checks *checks,
                                             const struct content_filter_limits *limits,
                                             const struct content_filter_log *log,
                                             content_filter_write_fn *write_fn, void *write_ctx);
/* Feeds len bytes of the message (any split). May call write_fn any
   number of times. Ignored once the verdict is final or after end. */
void content_filter_input(struct content_filter *cf, const char *data, size_t len);
/* End of the message: settles the last header / line (a last line
   without '\n' is written without one). */
void content_filter_end(struct content_filter *cf);
enum content_verdict content_filter_verdict(const struct content_filter *cf);
/* The SMTP reply for REJECT and TEMPFAIL ("550 5.7.1 Message content
   rejected"), else NULL. Valid until destroy. */
const char *content_filter_reply(const struct content_filter *cf);
/* Bytes the filter has allocated now (for tests: it stays bounded). */
size_t content_filter_memory(const struct content_filter *cf);
void content_filter_destroy(struct content_filter **cf_p);

/* Appends a log line (without a trailing newline) of the shape
   "ID: action: where CONTENT from CLIENT; from=<s> to=<r> proto=P
   helo=<h>[: text]" to out. Control characters in content and text
   become '?'; content is cut at 1000 bytes. */
void content_filter_format_log(struct buf *out, const struct content_filter_log *log,
                               const char *action, const char *where, const char *content,
                               size_t content_len, const char *text);

#endif
