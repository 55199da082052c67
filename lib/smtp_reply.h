/*
 * NAME
 *	smtp_reply - resumable parser of SMTP server replies (RFC 5321 4.2)
 * SYNOPSIS
 *	#include "smtp_reply.h"
 * DESCRIPTION
 *	Pure: no I/O. A client reads socket bytes into a struct buf and
 *	calls smtp_reply_parser_next() until it returns NEED_MORE; each
 *	call takes complete lines out of the buffer (through the bounded
 *	line reader buf_read_line) up to and including the last line of ONE
 *	reply, never further: bytes of the next reply stay in the buffer,
 *	so pipelined replies (RFC 2920) are read one at a time.
 *
 *	A reply is one or more lines "DDD-text" followed by one line
 *	"DDD text" or "DDD" (D a digit, the first 2-5). Lines end in CRLF;
 *	a bare LF is tolerated (the reply is still unambiguous). Errors:
 *	a line that does not start "DDD" followed by '-', ' ' or the end
 *	of the line, a continuation line whose code differs from the first
 *	line's, a line longer than limits.line_max octets (CRLF included;
 *	detected before the newline arrives), more than limits.lines_max
 *	lines in one reply.
 *
 *	Result: the code, the enhanced status code (RFC 3463) when the
 *	first line's text starts with one whose class matches the code's
 *	first digit, and the text: the lines' text after "DDD-"/"DDD ",
 *	with the enhanced code removed from every line that repeats it,
 *	joined with '\n'. Control characters in the text (NUL, CR, TAB,
 *	DEL, ...) become spaces, so the text can go into logs and DSNs.
 *	At most limits.text_max octets of text are kept (truncated is
 *	set); the rest of the reply is still parsed and checked.
 *
 *	smtp_ehlo_parse() reads the service extensions of an EHLO reply:
 *	PIPELINING, SIZE [n], 8BITMIME, SMTPUTF8, STARTTLS (keywords are
 *	case-insensitive; the first line is the server's greeting name).
 * LIMITS
 *	Default limits: line_max 4096 octets (CRLF included), lines_max
 *	1000 (smtp_reply_line_limit), text_max 65536 octets.
 */
#ifndef POSTERN_SMTP_REPLY_H
#define POSTERN_SMTP_REPLY_H

#include <stddef.h>

#include "buf.h"

struct smtp_reply_limits {
    size_t line_max;    /* longest line, CRLF included (>= 6) */
    size_t lines_max;   /* most lines in one reply (>= 1) */
    size_t text_max;    /* most octets of text kept in struct smtp_reply */
};

/* line_max 4096, lines_max 1000, text_max 65536. */
void smtp_reply_limits_default(struct smtp_reply_limits *limits_r);

/* "X.Y.Z" with Y and Z at most 3 digits: 11 octets and a NUL. */
#define SMTP_REPLY_ENHANCED_SIZE 12

struct smtp_reply {
    int code;                                  /* 200..599 */
    char enhanced[SMTP_REPLY_ENHANCED_SIZE];   /* "5.1.1", or "" */
    struct buf text;                           /* lines joined with '\n' */
    size_t lines;                              /* lines in the reply */
    int truncated;                             /* text was cut at text_max */
};

enum smtp_reply_status { SMTP_REPLY_OK, SMTP_REPLY_NEED_MORE, SMTP_REPLY_ERROR };

enum smtp_reply_error {
    SMTP_REPLY_ERR_NONE,
    SMTP_REPLY_ERR_SYNTAX,          /* not "DDD", "DDD-..." or "DDD ..." */
    SMTP_REPLY_ERR_MIXED_CODES,     /* a continuation line with another code */
    SMTP_REPLY_ERR_LINE_TOO_LONG,   /* over line_max */
    SMTP_REPLY_ERR_TOO_MANY_LINES,  /* over lines_max */
};

struct smtp_reply_parser;

/* Copies *limits (NULL: the defaults). Limits below the minimums
   above are a bug (msg_panic). */
struct smtp_reply_parser *smtp_reply_parser_create(const struct smtp_reply_limits *limits);
/* Frees *parser_p and sets it to NULL; NULL is ignored. */
void smtp_reply_parser_destroy(struct smtp_reply_parser **parser_p);
/* Forgets a partly read reply (after STARTTLS, or to reuse the parser
   on a new connection). */
void smtp_reply_parser_reset(struct smtp_reply_parser *parser);

/*
 * Takes lines from the start of in.
 *   SMTP_REPLY_OK         a whole reply was consumed from in; *reply_r
 *                         points into the parser and stays valid until
 *                         the next call of next() or reset().
 *   SMTP_REPLY_NEED_MORE  the lines so far were consumed; call again
 *                         when more bytes arrived.
 *   SMTP_REPLY_ERROR      *error_r says why; the consumed position is
 *                         unspecified: the stream cannot be read any
 *                         further (drop the connection), until reset().
 */
enum smtp_reply_status smtp_reply_parser_next(struct smtp_reply_parser *parser, struct buf *in,
                                              const struct smtp_reply **reply_r,
                                              enum smtp_reply_error *error_r);

/* A short English phrase for logs ("reply line too long"). */
const char *smtp_reply_error_text(enum smtp_reply_error error);

/* Appends "550 5.1.1 text of line one text of line two" to out: the
   code, the enhanced code if any, the text with its lines joined by
   spaces; cut to at most max octets of text (with "..." appended). */
void smtp_reply_format(const struct smtp_reply *reply, struct buf *out, size_t max);

/* The reply's DSN status into out (at least SMTP_REPLY_ENHANCED_SIZE
   octets): the enhanced code, or "2.0.0"/"4.0.0"/"5.0.0" from the
   code's first digit (3xx counts as 2.0.0). */
void smtp_reply_dsn(const struct smtp_reply *reply, char *out, size_t size);

/* ---- EHLO ---- */

#define SMTP_EHLO_PIPELINING 0x01
#define SMTP_EHLO_SIZE       0x02
#define SMTP_EHLO_8BITMIME   0x04
#define SMTP_EHLO_SMTPUTF8   0x08
#define SMTP_EHLO_STARTTLS   0x10

struct smtp_ehlo {
    unsigned flags;                  /* SMTP_EHLO_* */
    unsigned long long size_limit;   /* SIZE n; 0 = none announced or no limit */
};

/* Fills *ehlo_r from a 2xx reply to EHLO (lines after the first).
   Unknown keywords are ignored; "SIZE" with a value that is not a
   decimal number sets the flag with size_limit 0. */
void smtp_ehlo_parse(const struct smtp_reply *reply, struct smtp_ehlo *ehlo_r);

#endif
