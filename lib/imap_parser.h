/*
 * NAME
 *	imap_parser - resumable IMAP4rev1 client command parser (RFC 3501 s9)
 * SYNOPSIS
 *	#include "imap_parser.h"
 * DESCRIPTION
 *	Pure: no I/O. The session reads socket bytes into a struct buf and
 *	calls imap_parser_next() until it returns IMAP_PARSE_NEED_MORE. The
 *	parser takes bytes out of that buffer as it goes (a partial command
 *	is kept inside the parser), so the input may arrive in any chunking,
 *	down to one byte at a time, with the same results.
 *
 *	Every result is one of:
 *	  COMMAND         a complete, fully parsed command (tag, command,
 *	                  typed arguments); the caller owns res->command.
 *	  ERROR           res->error: the tag (or "" when none could be
 *	                  read), BAD or NO, and a text; imapd prints it with
 *	                  imap_parse_error_format(). The parser has already
 *	                  arranged to skip what is left of the bad command.
 *	  CONTINUE        a synchronizing literal {n} was announced on a line
 *	                  that is valid so far and n is within the limits:
 *	                  send "+ ..." now. Non-synchronizing literals {n+}
 *	                  (LITERAL+, RFC 7888) are taken without a result.
 *	  APPEND_LITERAL  the message literal of APPEND (see below).
 *	  LITERAL_DATA    a chunk of that message literal.
 *	  NEED_MORE       all input is used; read more.
 *
 * LITERALS
 *	When a line ends in a literal announcement, the command text so far
 *	is parsed at once. A line that is already bad, a literal where none
 *	is allowed, or a literal over its limit is refused BEFORE the client
 *	sends the data: ERROR is returned and no "+" is due; for {n} the
 *	client sends nothing more of the command, for {n+} the parser
 *	silently skips the n bytes and the rest of the command (further
 *	{m+} literals on it included), so literal data is never read as
 *	commands. Small literals (strings in LOGIN, SEARCH, ...) are kept in
 *	the parser, bounded by limits.max_literal each and max_literal_total
 *	per command.
 *
 *	The APPEND message literal is not kept: when the parser reaches it
 *	it returns IMAP_PARSE_APPEND_LITERAL with a preview command
 *	(res->command, caller owns it) holding the tag, mailbox, flags, date
 *	and u.append.message_size / u.append.sync. imapd may check the
 *	mailbox, then either
 *	  - accept: send "+ ..." if u.append.sync, then keep calling
 *	    imap_parser_next(): it returns LITERAL_DATA chunks (res->data,
 *	    res->data_len, in parser storage, valid until the next call)
 *	    until message_size bytes have passed (none for {0}), to be
 *	    written to a Maildir tmp/ file; then it parses the rest of the
 *	    line and returns the final COMMAND (APPEND, same arguments), or
 *	    ERROR (trailing garbage, NUL in the message): drop the file;
 *	  - or refuse: call imap_parser_reject_literal() and send its own
 *	    tagged NO; the parser then skips a {n+} literal's bytes.
 *	A message over limits.max_append is refused by the parser itself
 *	(ERROR, "NO [TOOBIG]").
 *
 *	AUTHENTICATE continuation lines and the DONE that ends IDLE are raw
 *	lines, not commands: read them with imap_parser_next_line(), test
 *	DONE with imap_line_is_done().
 *
 *	Lines end in CRLF; a bare LF is accepted as well (no smuggling is
 *	possible here: a literal is counted, never searched for an end).
 *	Empty lines between commands are ignored. Quoted strings may carry
 *	8-bit bytes (UTF-8 search strings from clients); atoms, tags and
 *	mailbox names may not (mailbox names are 7-bit modified UTF-7, which
 *	is checked). NUL is refused everywhere, the APPEND message included.
 * LIMITS
 *	struct imap_parser_limits, defaults in brackets:
 *	max_line [64 KiB] command text, without literal data, over all the
 *	lines of one command; detected before the newline arrives.
 *	max_literal [64 KiB] one literal other than the APPEND message.
 *	max_literal_total [256 KiB] all such literals of one command.
 *	max_literals [32] literal announcements per command (each one
 *	re-parses the command so far: this bounds that work).
 *	max_append [50 MiB] the APPEND message (imapd passes its
 *	message_size_limit).
 *	max_tokens [10000] separators and list openers in one command,
 *	which bounds every argument list (flags, FETCH items, fields, ...).
 *	max_seqset [16384] ranges in one sequence set (10,000 single
 *	numbers fit; resolving is O(n log n)).
 *	max_search_nodes [2000] SEARCH keys in one command.
 *	max_depth [100] nesting of SEARCH parentheses, NOT and OR.
 *	Fixed: tags up to IMAP_TAG_MAX bytes, section part numbers up to
 *	IMAP_SECTION_PARTS_MAX deep, ID up to 30 pairs with fields of 30 and
 *	values of 1024 bytes (RFC 2971).
 */
#ifndef POSTERN_IMAP_PARSER_H
#define POSTERN_IMAP_PARSER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

#define IMAP_TAG_MAX 64
#define IMAP_ERROR_TEXT_MAX 200
#define IMAP_SECTION_PARTS_MAX 32

struct imap_parser_limits {
    size_t max_line;
    size_t max_literal;
    size_t max_literal_total;
    size_t max_literals;
    uint64_t max_append;
    size_t max_tokens;
    size_t max_seqset;
    size_t max_search_nodes;
    size_t max_depth;
};

/* Fills in the defaults listed under LIMITS. */
void imap_parser_limits_default(struct imap_parser_limits *limits_r);

enum imap_cmd {
    IMAP_CMD_UNKNOWN,   /* never in a parsed command: unknown commands are errors */
    IMAP_CMD_CAPABILITY,
    IMAP_CMD_NOOP,
    IMAP_CMD_LOGOUT,
    IMAP_CMD_STARTTLS,
    IMAP_CMD_AUTHENTICATE,
    IMAP_CMD_LOGIN,
    IMAP_CMD_SELECT,
    IMAP_CMD_EXAMINE,
    IMAP_CMD_CREATE,
    IMAP_CMD_DELETE,
    IMAP_CMD_RENAME,
    IMAP_CMD_SUBSCRIBE,
    IMAP_CMD_UNSUBSCRIBE,
    IMAP_CMD_LIST,
    IMAP_CMD_LSUB,
    IMAP_CMD_STATUS,
    IMAP_CMD_APPEND,
    IMAP_CMD_CHECK,
    IMAP_CMD_CLOSE,
    IMAP_CMD_EXPUNGE,   /* with uid set: UID EXPUNGE, u.expunge.set */
    IMAP_CMD_SEARCH,
    IMAP_CMD_FETCH,
    IMAP_CMD_STORE,
    IMAP_CMD_COPY,
    IMAP_CMD_MOVE,
    IMAP_CMD_IDLE,
    IMAP_CMD_UNSELECT,
    IMAP_CMD_NAMESPACE,
    IMAP_CMD_ENABLE,
    IMAP_CMD_ID,
    IMAP_CMD_COUNT
};

/* "FETCH"; "UNKNOWN" for IMAP_CMD_UNKNOWN or out of range. */
const char *imap_cmd_name(enum imap_cmd cmd);

/* Sequence sets. "*" (the largest number in use) cannot be known while
   parsing, so it is kept as IMAP_SEQ_STAR; numbers are nz-numbers. A
   range has first <= last, or last == IMAP_SEQ_STAR ("*:5" is stored as
   5:*, "*" as *:*). Ranges are in the client's order. */
#define IMAP_SEQ_STAR 0u
struct imap_seq_range {
    uint32_t first;
    uint32_t last;
};
struct imap_seqset {
    struct imap_seq_range *ranges;
    size_t count;   /* >= 1 */
};

/* Replaces "*" with star, sorts and merges; returns the number of
   disjoint ranges in *ranges_r (malloc'd, caller frees; NULL when 0).
   With star 0 (empty mailbox) elements using "*" are dropped. */
size_t imap_seqset_resolve(const struct imap_seqset *set, uint32_t star,
                           struct imap_seq_range **ranges_r);
/* 1 when n is in ranges (as returned by imap_seqset_resolve()). */
int imap_seqset_contains(const struct imap_seq_range *ranges, size_t count, uint32_t n);

/* SEARCH dates (time and zone are disregarded) and APPEND date-time. */
struct imap_date {
    int year;
    int month;   /* 1..12 */
    int day;     /* 1..31, checked against the month */
};
struct imap_datetime {
    struct imap_date date;
    int hour, min, sec;
    int zone_minutes;   /* east of UTC: "+0130" = 90, "-0800" = -480 */
};
/* Seconds since the epoch for an APPEND date-time. */
time_t imap_datetime_to_time(const struct imap_datetime *dt);

/* SEARCH keys: a tree; siblings inside an AND list are linked by next. */
enum imap_search_type {
    IMAP_SEARCH_AND,       /* u.list: every child matches ("(...)", juxtaposition) */
    IMAP_SEARCH_OR,        /* u.either.a or u.either.b */
    IMAP_SEARCH_NOT,       /* u.negated */
    IMAP_SEARCH_SEQSET,    /* u.set: message sequence numbers */
    IMAP_SEARCH_UID,       /* u.set: UIDs */
    IMAP_SEARCH_ALL,
    IMAP_SEARCH_ANSWERED,
    IMAP_SEARCH_DELETED,
    IMAP_SEARCH_DRAFT,
    IMAP_SEARCH_FLAGGED,
    IMAP_SEARCH_NEW,
    IMAP_SEARCH_OLD,
    IMAP_SEARCH_RECENT,
    IMAP_SEARCH_SEEN,
    IMAP_SEARCH_UNANSWERED,
    IMAP_SEARCH_UNDELETED,
    IMAP_SEARCH_UNDRAFT,
    IMAP_SEARCH_UNFLAGGED,
    IMAP_SEARCH_UNSEEN,
    IMAP_SEARCH_KEYWORD,   /* u.string: the keyword */
    IMAP_SEARCH_UNKEYWORD,
    IMAP_SEARCH_BCC,       /* u.string: the text to look for */
    IMAP_SEARCH_BODY,
    IMAP_SEARCH_CC,
    IMAP_SEARCH_FROM,
    IMAP_SEARCH_SUBJECT,
    IMAP_SEARCH_TEXT,
    IMAP_SEARCH_TO,
    IMAP_SEARCH_HEADER,    /* u.header */
    IMAP_SEARCH_BEFORE,    /* u.date: internal date */
    IMAP_SEARCH_ON,
    IMAP_SEARCH_SINCE,
    IMAP_SEARCH_SENTBEFORE, /* u.date: Date: header */
    IMAP_SEARCH_SENTON,
    IMAP_SEARCH_SENTSINCE,
    IMAP_SEARCH_LARGER,    /* u.size */
    IMAP_SEARCH_SMALLER,
    IMAP_SEARCH_MODSEQ,    /* u.modseq (RFC 7162; an entry name is checked, then ignored) */
    IMAP_SEARCH_TYPE_COUNT
};

struct imap_search_key {
    enum imap_search_type type;
    struct imap_search_key *next;
    union {
        struct {
            struct imap_search_key *first;
            size_t count;
        } list;
        struct {
            struct imap_search_key *a, *b;
        } either;
        struct imap_search_key *negated;
        struct imap_seqset set;
        char *string;
        struct {
            char *field;
            char *value;
        } header;
        struct imap_date date;
        uint32_t size;
        uint64_t modseq;
    } u;
};

/* The upper-case key name ("SENTBEFORE"), "AND" / "SEQSET" for those. */
const char *imap_search_type_name(enum imap_search_type type);

/* FETCH items. ALL, FAST and FULL are expanded into their items. */
enum imap_fetch_item {
    IMAP_FETCH_ENVELOPE,
    IMAP_FETCH_FLAGS,
    IMAP_FETCH_INTERNALDATE,
    IMAP_FETCH_RFC822,
    IMAP_FETCH_RFC822_HEADER,
    IMAP_FETCH_RFC822_SIZE,
    IMAP_FETCH_RFC822_TEXT,
    IMAP_FETCH_BODY,            /* BODY without a section: non-extensible BODYSTRUCTURE */
    IMAP_FETCH_BODYSTRUCTURE,
    IMAP_FETCH_UID,
    IMAP_FETCH_SECTION,         /* BODY[...] or BODY.PEEK[...] */
    IMAP_FETCH_MODSEQ,
    IMAP_FETCH_ITEM_COUNT
};

enum imap_section_text {
    IMAP_SECTION_WHOLE,          /* BODY[] or BODY[1.2]: the message or the part */
    IMAP_SECTION_HEADER,
    IMAP_SECTION_HEADER_FIELDS,
    IMAP_SECTION_HEADER_FIELDS_NOT,
    IMAP_SECTION_TEXT,
    IMAP_SECTION_MIME            /* only after part numbers */
};

struct imap_fetch_att {
    enum imap_fetch_item item;
    /* IMAP_FETCH_SECTION only: */
    int peek;                    /* BODY.PEEK: do not set \Seen */
    uint32_t *parts;             /* part numbers 1.2.3, nparts of them */
    size_t nparts;
    enum imap_section_text text;
    char **fields;               /* HEADER.FIELDS[.NOT] names, as sent */
    size_t nfields;
    int partial;                 /* <origin.count> given */
    uint32_t origin;
    uint32_t count;
};

enum imap_fetch_macro { IMAP_FETCH_MACRO_NONE, IMAP_FETCH_MACRO_ALL, IMAP_FETCH_MACRO_FAST,
                        IMAP_FETCH_MACRO_FULL };

enum imap_store_op { IMAP_STORE_REPLACE, IMAP_STORE_ADD, IMAP_STORE_REMOVE };

/* STATUS items, a bit mask. */
#define IMAP_STATUS_MESSAGES 0x01u
#define IMAP_STATUS_RECENT 0x02u
#define IMAP_STATUS_UIDNEXT 0x04u
#define IMAP_STATUS_UIDVALIDITY 0x08u
#define IMAP_STATUS_UNSEEN 0x10u
#define IMAP_STATUS_HIGHESTMODSEQ 0x20u

struct imap_arena;

/*
 * A parsed command. Every pointer in it points into storage owned by the
 * command and freed by imap_command_destroy(). Strings are NUL-terminated
 * (NUL is refused in input). System flags are canonical ("\Seen"),
 * keywords as sent. The mailbox name INBOX (any case) is "INBOX".
 */
struct imap_command {
    char tag[IMAP_TAG_MAX + 1];
    enum imap_cmd cmd;
    int uid;   /* UID FETCH/STORE/COPY/MOVE/SEARCH/EXPUNGE */
    union {
        struct {
            char *mechanism;          /* upper-cased */
            char *initial_response;   /* SASL-IR base64 as sent, "" for "=", NULL if none */
        } authenticate;
        struct {
            char *user;
            char *password;
        } login;
        struct {
            char *mailbox;
            int condstore;   /* (CONDSTORE) select parameter */
        } select;            /* SELECT, EXAMINE */
        struct {
            char *mailbox;
        } mailbox;           /* CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE */
        struct {
            char *from;
            char *to;
        } rename;
        /* Not checked for modified UTF-7 ("inbox" as the reference is
           still INBOX): a pattern that is no valid name matches nothing,
           so the caller lists nothing (imap_mailbox_name_valid()). */
        struct {
            char *reference;
            char *pattern;   /* may hold * and % */
        } list;              /* LIST, LSUB */
        struct {
            char *mailbox;
            unsigned items;     /* IMAP_STATUS_* */
            unsigned order[6];  /* the same bits, each once, in the client's order */
            unsigned norder;
        } status;
        struct {
            char *mailbox;
            char **flags;
            size_t nflags;
            int has_date;
            struct imap_datetime date;
            uint64_t message_size;   /* the literal's length */
            int sync;                /* {n}: "+" is due before the data */
        } append;
        struct {
            char *charset;           /* NULL, or "UTF-8" / "US-ASCII" as sent */
            struct imap_search_key *root;   /* always IMAP_SEARCH_AND */
        } search;
        struct {
            struct imap_seqset set;
            struct imap_fetch_att *atts;
            size_t count;
            enum imap_fetch_macro macro;
            int has_changedsince;
            uint64_t changedsince;
        } fetch;
        struct {
            struct imap_seqset set;
            enum imap_store_op op;
            int silent;
            char **flags;
            size_t nflags;
            int has_unchangedsince;
            uint64_t unchangedsince;
        } store;
        struct {
            struct imap_seqset set;
            char *mailbox;
        } copy;              /* COPY, MOVE */
        struct {
            struct imap_seqset set;
        } expunge;           /* UID EXPUNGE only */
        struct {
            char **names;
            size_t count;
        } enable;
        struct {
            int nil;         /* "ID NIL" */
            char **fields;
            char **values;   /* NULL entries for NIL */
            size_t count;
        } id;
    } u;
    struct imap_arena *arena;   /* private */
};

/* Frees the command and everything it points to; sets *cmd_p to NULL. */
void imap_command_destroy(struct imap_command **cmd_p);

enum imap_parse_error_code {
    IMAP_PERR_NONE,
    IMAP_PERR_SYNTAX,           /* bad arguments; text names the command and the problem */
    IMAP_PERR_TAG,              /* no valid tag: the reply is untagged */
    IMAP_PERR_UNKNOWN_COMMAND,
    IMAP_PERR_LINE_TOO_LONG,
    IMAP_PERR_LITERAL_TOO_BIG,  /* BAD [TOOBIG] */
    IMAP_PERR_APPEND_TOO_BIG,   /* NO [TOOBIG] */
    IMAP_PERR_LIMIT,            /* too many literals/tokens/ranges/keys, too deep */
    IMAP_PERR_NUL,              /* NUL byte in the command or a literal */
    IMAP_PERR_BADCHARSET,       /* NO [BADCHARSET (US-ASCII UTF-8)] */
    IMAP_PERR_MAILBOX_NAME,     /* not 7-bit modified UTF-7 */
};

struct imap_parse_error {
    enum imap_parse_error_code code;
    int no;                          /* reply NO instead of BAD */
    char tag[IMAP_TAG_MAX + 1];      /* "" when no tag could be read: "* BAD" */
    char text[IMAP_ERROR_TEXT_MAX + 1];
};

/* Appends the reply line "TAG BAD text\r\n" (or NO, or "* BAD ..."). */
void imap_parse_error_format(const struct imap_parse_error *error, struct buf *out);

enum imap_parse_status {
    IMAP_PARSE_NEED_MORE,
    IMAP_PARSE_COMMAND,
    IMAP_PARSE_ERROR,
    IMAP_PARSE_CONTINUE,
    IMAP_PARSE_APPEND_LITERAL,
    IMAP_PARSE_LITERAL_DATA,
    IMAP_PARSE_LINE,             /* imap_parser_next_line() only */
};

struct imap_parse_result {
    struct imap_command *command;   /* COMMAND, APPEND_LITERAL: caller owns */
    struct imap_parse_error error;  /* ERROR */
    const char *data;               /* LITERAL_DATA, LINE: parser storage, valid */
    size_t data_len;                /* until the next call (LINE: NUL-terminated) */
};

struct imap_parser;

struct imap_parser *imap_parser_create(const struct imap_parser_limits *limits);
void imap_parser_destroy(struct imap_parser **parser_p);
/* Forgets a partial command, a pending skip and a literal in progress
   (after STARTTLS the caller also empties its input buffer). */
void imap_parser_reset(struct imap_parser *parser);
/* 1 while inside a command (text, literal, or skipping): a STARTTLS
   reply must not be sent with anything pending. */
int imap_parser_busy(const struct imap_parser *parser);

/* Takes bytes from the start of in and returns the next result (see
   DESCRIPTION). *res_r is cleared first. */
enum imap_parse_status imap_parser_next(struct imap_parser *parser, struct buf *in,
                                        struct imap_parse_result *res_r);

/* Right after IMAP_PARSE_APPEND_LITERAL only: the caller refuses the
   message (and replies NO itself). A {n} literal will not come; a {n+}
   literal and the rest of its command are skipped. Anything else is a
   bug (msg_panic). */
void imap_parser_reject_literal(struct imap_parser *parser);

/* Takes one raw line of at most max bytes (without its ending) from in:
   IMAP_PARSE_LINE (res->data, NUL-terminated), NEED_MORE, or ERROR
   (IMAP_PERR_LINE_TOO_LONG: the rest of the line is skipped;
   IMAP_PERR_NUL), error tag "". Only between commands (inside one is a
   bug: msg_panic). */
enum imap_parse_status imap_parser_next_line(struct imap_parser *parser, struct buf *in,
                                             size_t max, struct imap_parse_result *res_r);

/* 1 when s[0..len) may be a mailbox name: 7-bit printable and valid
   modified UTF-7 (RFC 3501 5.1.3); "*" and "%" count as printable. The
   parser applies it to every mailbox argument but LIST/LSUB's. */
int imap_mailbox_name_valid(const char *s, size_t len);

/* 1 when a line read while idling is "DONE" (any case), which ends IDLE. */
int imap_line_is_done(const char *line, size_t len);

#endif
