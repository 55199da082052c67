/*
 * NAME
 *	pop3_command - resumable POP3 command parser (RFC 1939, 2449, 5034)
 * SYNOPSIS
 *	#include "pop3_command.h"
 * DESCRIPTION
 *	Pure: no I/O. The session reads socket bytes into a struct buf and
 *	calls pop3_command_parser_next() until it returns NEED_MORE; each
 *	call takes at most one line out of the buffer through the bounded
 *	line reader buf_read_line(). A line that is too long is reported
 *	once (POP3_CMDERR_TOO_LONG) and the parser then discards input up to
 *	the next newline by itself.
 *
 *	Result: the verb (case-insensitive, known verbs mapped to an enum),
 *	up to max_args space-separated arguments, and the whole text after
 *	the verb (PASS takes it as the password: RFC 1939 lets a server
 *	treat spaces in the password as part of it). Lines may end in CRLF
 *	or a bare LF: POP3 clients in the wild send both, and nothing is
 *	smuggled through a POP3 command line.
 *
 *	pop3_command_parser_next_line() reads one raw line instead, for SASL
 *	responses (RFC 5034: they are not bound by the command line limit).
 * LIMITS
 *	limits.max_line bytes per line without the line ending (RFC 2449:
 *	255 octets with CRLF, so 253), detected before the newline arrives.
 */
#ifndef POSTERN_POP3_COMMAND_H
#define POSTERN_POP3_COMMAND_H

#include <stddef.h>

#include "buf.h"

struct pop3_command_limits {
    size_t max_line;   /* longest command line without its line ending */
    size_t max_args;   /* arguments kept in argv (more: extra_args set) */
};

/* max_line 253 (RFC 2449), max_args 2. */
void pop3_command_limits_default(struct pop3_command_limits *limits_r);

enum pop3_verb {
    POP3_VERB_UNKNOWN,
    POP3_VERB_USER,
    POP3_VERB_PASS,
    POP3_VERB_APOP,
    POP3_VERB_AUTH,
    POP3_VERB_STLS,
    POP3_VERB_CAPA,
    POP3_VERB_STAT,
    POP3_VERB_LIST,
    POP3_VERB_RETR,
    POP3_VERB_DELE,
    POP3_VERB_NOOP,
    POP3_VERB_RSET,
    POP3_VERB_QUIT,
    POP3_VERB_TOP,
    POP3_VERB_UIDL,
    POP3_VERB_LAST,
    POP3_VERB_COUNT
};

#define POP3_VERB_MAX 16
#define POP3_ARGS_MAX 4

struct pop3_command {
    enum pop3_verb verb;
    char name[POP3_VERB_MAX + 1];  /* verb upper-cased, truncated, '?' for odd bytes */
    char *line;                    /* private: storage the pointers below point into */
    const char *rest;              /* text after the verb and one space; "" if none */
    const char *argv[POP3_ARGS_MAX];
    size_t argc;
    int extra_args;                /* more arguments than limits.max_args */
};

/* Frees the command's storage; the struct can be reused. */
void pop3_command_clear(struct pop3_command *cmd);

enum pop3_command_status {
    POP3_COMMAND_OK,         /* *cmd_r filled; the line was consumed */
    POP3_COMMAND_NEED_MORE,  /* no complete line in the buffer */
    POP3_COMMAND_ERROR,      /* *error_r says why; the line was consumed */
};

enum pop3_command_error {
    POP3_CMDERR_NONE,
    POP3_CMDERR_TOO_LONG,    /* over max_line; the rest of the line is skipped */
    POP3_CMDERR_NUL,         /* NUL byte in the line */
    POP3_CMDERR_BARE_CR,     /* CR inside the line */
    POP3_CMDERR_EMPTY,       /* empty line or no verb */
};

/* "-ERR ..." reply line (without CRLF) for a parser error, static text. */
const char *pop3_command_error_reply(enum pop3_command_error error);
/* The upper-case name of a verb ("UIDL"); "UNKNOWN" for POP3_VERB_UNKNOWN. */
const char *pop3_verb_name(enum pop3_verb verb);

struct pop3_command_parser;

struct pop3_command_parser *pop3_command_parser_create(const struct pop3_command_limits *limits);
void pop3_command_parser_destroy(struct pop3_command_parser **parser_p);
/* Forgets a pending "skip to the next newline" (after STLS discarded the
   input buffer, the bytes to skip are gone). */
void pop3_command_parser_reset(struct pop3_command_parser *parser);

/* Takes one command line from the start of in. On POP3_COMMAND_OK the
   caller owns *cmd_r's storage (free with pop3_command_clear); cmd_r is
   cleared first. */
enum pop3_command_status pop3_command_parser_next(struct pop3_command_parser *parser,
                                                  struct buf *in, struct pop3_command *cmd_r,
                                                  enum pop3_command_error *error_r);

/* Takes one raw line of at most max bytes (without its ending) from in:
   POP3_COMMAND_OK with *line_r malloc'd (NUL-terminated, *len_r bytes),
   or NEED_MORE, or ERROR (TOO_LONG, NUL, BARE_CR). */
enum pop3_command_status pop3_command_parser_next_line(struct pop3_command_parser *parser,
                                                       struct buf *in, size_t max,
                                                       char **line_r, size_t *len_r,
                                                       enum pop3_command_error *error_r);

/* Parses one line (without its line ending) into *cmd_r. Used by
   pop3_command_parser_next() and by tests. Returns POP3_COMMAND_OK or
   POP3_COMMAND_ERROR (NUL, CR, empty). */
enum pop3_command_status pop3_command_parse_line(const struct pop3_command_limits *limits,
                                                 const char *line, size_t len,
                                                 struct pop3_command *cmd_r,
                                                 enum pop3_command_error *error_r);

#endif
