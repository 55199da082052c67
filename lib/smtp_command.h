/*
 * NAME
 *	smtp_command - resumable SMTP command parser (RFC 5321)
 * SYNOPSIS
 *	#include "smtp_command.h"
 * DESCRIPTION
 *	Pure: no I/O. The session reads socket bytes into a struct buf and
 *	calls smtp_command_parser_next() until it returns NEED_MORE; each
 *	call takes at most one command line out of the buffer through the
 *	bounded line reader buf_read_line(). A line that is too long is
 *	reported once (SMTP_COMMAND_ERROR, SMTP_CMDERR_TOO_LONG) and the
 *	parser then discards input up to the next newline by itself.
 *
 *	Result: the verb (case-insensitive, recognised verbs mapped to an
 *	enum), the argument text after the verb, and for MAIL FROM / RCPT
 *	TO the parsed path (addr_parse_path) and ESMTP parameters. A
 *	syntax error in the arguments is NOT a parser error: the command
 *	is returned with arg_error set, because the session must first
 *	check the SMTP state (503 before 501, as Postfix answers).
 */
#ifndef POSTERN_SMTP_COMMAND_H
#define POSTERN_SMTP_COMMAND_H

#include <stddef.h>

#include "buf.h"

struct smtp_command_limits {
    /* Longest command line without CRLF (RFC 5321 4.5.3.1.4 says 512
       with CRLF; ESMTP parameters make real clients longer). */
    size_t max_line;
    /* Line ending in a bare LF is an error (SMTP smuggling defence). */
    int forbid_bare_newline;
    /* Most ESMTP parameters on one MAIL/RCPT command. */
    size_t max_params;
    /* Accept "MAIL FROM:addr" without <> (Postfix strict_rfc821_envelopes=no). */
    int allow_unbracketed;
    /* UTF-8 allowed in paths (smtputf8_enable; MAIL must also carry
       the SMTPUTF8 parameter: the session checks that). */
    int smtputf8;
};

/* max_line 2046, forbid_bare_newline 1, max_params 10,
   allow_unbracketed 1, smtputf8 1. */
void smtp_command_limits_default(struct smtp_command_limits *limits_r);

enum smtp_verb {
    SMTP_VERB_UNKNOWN,
    SMTP_VERB_HELO,
    SMTP_VERB_EHLO,
    SMTP_VERB_MAIL,
    SMTP_VERB_RCPT,
    SMTP_VERB_DATA,
    SMTP_VERB_RSET,
    SMTP_VERB_VRFY,
    SMTP_VERB_EXPN,
    SMTP_VERB_HELP,
    SMTP_VERB_NOOP,
    SMTP_VERB_QUIT,
    SMTP_VERB_STARTTLS,
    SMTP_VERB_AUTH,
    SMTP_VERB_BDAT,
    SMTP_VERB_ETRN,
};

struct smtp_param {
    char *keyword;   /* upper-cased */
    char *value;     /* NULL when the parameter has no "=value" */
};

#define SMTP_VERB_MAX 16

struct smtp_command {
    enum smtp_verb verb;
    char name[SMTP_VERB_MAX + 1];  /* the verb upper-cased (truncated), for logs */
    char *args;                    /* text after the verb and its space(s); "" if none */
    /* MAIL / RCPT only, when arg_error is NULL: */
    char *path;                    /* bare address, "" for <> */
    struct smtp_param *params;
    size_t param_count;
    /* MAIL / RCPT argument syntax error: a full reply line without CRLF
       ("501 5.1.7 Bad sender address syntax"), static text. */
    const char *arg_error;
};

/* Frees the command's fields; the struct can be reused. */
void smtp_command_clear(struct smtp_command *cmd);
/* The value of the ESMTP parameter keyword (case-insensitive), or NULL
   when absent; *present_r (may be NULL) says whether it was given. */
const char *smtp_command_param(const struct smtp_command *cmd, const char *keyword,
                               int *present_r);

enum smtp_command_status {
    SMTP_COMMAND_OK,         /* *cmd_r filled; the line was consumed */
    SMTP_COMMAND_NEED_MORE,  /* no complete line in the buffer */
    SMTP_COMMAND_ERROR,      /* *error_r says why; the line was consumed */
};

enum smtp_command_error {
    SMTP_CMDERR_NONE,
    SMTP_CMDERR_TOO_LONG,    /* 500 5.5.2 Error: line too long */
    SMTP_CMDERR_NUL,         /* NUL byte in the line */
    SMTP_CMDERR_BARE_LF,     /* line ended in LF without CR (forbid_bare_newline) */
    SMTP_CMDERR_BARE_CR,     /* CR inside the line */
    SMTP_CMDERR_EMPTY,       /* empty line or a bad verb */
};

/* Reply line (without CRLF) for a parser error, static text. */
const char *smtp_command_error_reply(enum smtp_command_error error);

struct smtp_command_parser;

struct smtp_command_parser *smtp_command_parser_create(const struct smtp_command_limits *limits);
void smtp_command_parser_destroy(struct smtp_command_parser **parser_p);
/* Changes the UTF-8 permission (smtputf8_enable after a reload). */
void smtp_command_parser_set_smtputf8(struct smtp_command_parser *parser, int smtputf8);

/* Takes one command line from the start of in. On SMTP_COMMAND_OK the
   caller owns *cmd_r's fields (free with smtp_command_clear); cmd_r is
   cleared first. */
enum smtp_command_status smtp_command_parser_next(struct smtp_command_parser *parser,
                                                  struct buf *in, struct smtp_command *cmd_r,
                                                  enum smtp_command_error *error_r);

/* Parses one line (without its line ending) into *cmd_r. Used by
   smtp_command_parser_next() and by tests. Returns SMTP_COMMAND_OK or
   SMTP_COMMAND_ERROR (NUL, CR, empty/bad verb). */
enum smtp_command_status smtp_command_parse_line(const struct smtp_command_limits *limits,
                                                 const char *line, size_t len,
                                                 struct smtp_command *cmd_r,
                                                 enum smtp_command_error *error_r);

#endif
