/*
 * NAME
 *	imap_parser_private - shared internals of the IMAP command parser
 * DESCRIPTION
 *	Not for use outside lib/imap_parser*.c. The framer (imap_parser.c)
 *	collects one command's text and small literals into one buffer:
 *	each line's text, then after a literal announcement "\r\n" and the
 *	literal's bytes (none for the streamed APPEND message). The grammar
 *	(imap_parser_grammar.c, _commands.c, _fetch.c, _search.c,
 *	_seqset.c) parses that buffer from the start, either complete or as
 *	a prefix that ends in a literal announcement ("prefix" mode: it then
 *	stops at that literal and says what the literal is for).
 *
 *	Grammar functions return 0, or -1 after recording an error (or the
 *	end of a prefix) in the struct imap_gram; the first record wins.
 */
#ifndef POSTERN_IMAP_PARSER_PRIVATE_H
#define POSTERN_IMAP_PARSER_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "imap_parser.h"

/* Arena: everything a parsed command points to. */
struct imap_arena *imap_arena_create(void);
void imap_arena_destroy(struct imap_arena **arena_p);
/* Zeroed, aligned for any type; never NULL. */
void *imap_arena_alloc(struct imap_arena *arena, size_t size);
char *imap_arena_strndup(struct imap_arena *arena, const char *s, size_t n);
/* Array growth inside the arena: returns an array with room for at least
   count + 1 elements (old contents copied; *cap updated). */
void *imap_arena_grow(struct imap_arena *arena, void *old, size_t count, size_t *cap,
                      size_t elem_size);

enum imap_literal_ctx { IMAP_LITCTX_STRING, IMAP_LITCTX_APPEND };

enum imap_gram_outcome { IMAP_GRAM_OK, IMAP_GRAM_PARTIAL, IMAP_GRAM_ERROR };

struct imap_gram {
    const struct imap_parser_limits *limits;
    const char *buf;
    size_t len;
    size_t pos;
    int prefix;          /* buf ends right after a literal announcement */
    size_t ext_pos;      /* offset of the streamed APPEND data, SIZE_MAX if none */
    int ext_nul;         /* the streamed data held a NUL */
    struct imap_arena *arena;
    struct imap_command *cmd;
    char cmd_name[32];   /* for error texts: "FETCH", "UID FETCH" */
    size_t tokens;
    size_t search_nodes;
    size_t depth;
    /* outcome */
    int failed;
    int partial;
    enum imap_literal_ctx partial_ctx;
    uint64_t partial_size;
    int partial_sync;
    enum imap_parse_error_code err;
    int err_no;
    char err_text[IMAP_ERROR_TEXT_MAX + 1];
};

/* Parses g->buf; on IMAP_GRAM_OK and IMAP_GRAM_PARTIAL g->cmd is the
   (partly) filled command in g->arena. */
enum imap_gram_outcome imap_gram_parse(struct imap_gram *g);
/* 1 and the tag when data starts with a valid tag and a space. */
int imap_gram_peek_tag(const char *data, size_t len, char tag_r[IMAP_TAG_MAX + 1]);

/* Errors. imap_gram_error(): a syntax error, the text prefixed with the
   command name. imap_gram_fail(): any code, the text as given. */
int imap_gram_error(struct imap_gram *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int imap_gram_fail(struct imap_gram *g, enum imap_parse_error_code code, int no,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Lexical primitives. */
int imap_gram_peek(const struct imap_gram *g);   /* next byte or -1 at the end */
int imap_gram_at_end(const struct imap_gram *g);
int imap_gram_sp(struct imap_gram *g);           /* exactly one SP */
int imap_gram_char(struct imap_gram *g, char c, const char *what);
int imap_gram_open(struct imap_gram *g);         /* "(" counted as a token */
int imap_gram_is_atom_char(int c);
/* A run of [A-Za-z0-9.+-] (keywords like "BODY.PEEK", "+FLAGS.SILENT");
   *len_r 0 if none. Not copied. */
void imap_gram_word(struct imap_gram *g, const char **word_r, size_t *len_r);
int imap_gram_word_is(const char *word, size_t len, const char *name);
int imap_gram_atom(struct imap_gram *g, char **atom_r);
int imap_gram_number(struct imap_gram *g, uint32_t *n_r);
int imap_gram_nz_number(struct imap_gram *g, uint32_t *n_r);
int imap_gram_number64(struct imap_gram *g, int nonzero, uint64_t *n_r);   /* mod-sequence */
int imap_gram_string(struct imap_gram *g, enum imap_literal_ctx ctx, char **s_r, size_t *len_r);
int imap_gram_astring(struct imap_gram *g, char **s_r, size_t *len_r);
int imap_gram_nstring(struct imap_gram *g, char **s_r, size_t *len_r);
int imap_gram_mailbox(struct imap_gram *g, char **mailbox_r);
/* LIST/LSUB reference and pattern: not checked for modified UTF-7. */
int imap_gram_list_reference(struct imap_gram *g, char **reference_r);
int imap_gram_list_mailbox(struct imap_gram *g, char **pattern_r);
int imap_gram_flag(struct imap_gram *g, char **flag_r);
int imap_gram_flag_list(struct imap_gram *g, char ***flags_r, size_t *count_r);
int imap_gram_date(struct imap_gram *g, struct imap_date *date_r);
int imap_gram_datetime(struct imap_gram *g, struct imap_datetime *dt_r);

/* Larger pieces, each in its own file. */
int imap_gram_seqset(struct imap_gram *g, struct imap_seqset *set_r);
int imap_gram_search(struct imap_gram *g);   /* after "SEARCH": fills g->cmd->u.search */
int imap_gram_fetch(struct imap_gram *g);    /* after "FETCH" */
int imap_gram_store(struct imap_gram *g);    /* after "STORE" */

#endif
