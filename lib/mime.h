/*
 * NAME
 *	mime - MIME message structure for IMAP (RFC 2045, 2046, 2231, 3501)
 * SYNOPSIS
 *	#include "mime.h"
 * DESCRIPTION
 *	mime_message_parse() takes a whole message as bytes (LF or CRLF
 *	line endings, as found in a Maildir file) and builds a tree of
 *	parts in one pass, without copying bodies: every part records
 *	offsets into the caller's buffer, which must outlive the tree.
 *	All offsets and sizes are in the buffer's own bytes; the *_crlf_size
 *	fields give the same ranges as they are when every bare LF is sent
 *	as CRLF (what an IMAP client receives and what BODYSTRUCTURE
 *	counts). Lines are counted as LF bytes.
 *
 *	The tree: the root part is the message (its header is the message
 *	header). A multipart part's children are its body parts, split on
 *	"--boundary" lines exactly as RFC 2046 says (optional transport
 *	padding; the line ending before a delimiter belongs to the
 *	delimiter; preamble and epilogue belong to no child). A
 *	message/rfc822 part has exactly one child, the encapsulated
 *	message, whose header starts where the part's body starts and
 *	whose extent equals that body. A boundary line of any enclosing
 *	multipart ends every part nested inside it.
 *
 *	Section numbers (mime_part_find) follow RFC 3501 6.4.5: in a
 *	message, "1".."n" name the children of a multipart body, and a
 *	non-multipart body is part "1"; a number after a message/rfc822
 *	part names a part of the encapsulated message (so "2.1" is the
 *	first part of the message in part 2, or its only body).
 *
 *	Broken input never fails the parse: a Content-Type that cannot be
 *	used (no subtype, bad token, multipart without boundary) makes the
 *	part text/plain (in multipart/digest: message/rfc822); the first
 *	of duplicate fields wins; a multipart whose boundary never appears
 *	has no children (BODYSTRUCTURE then shows one empty text/plain part,
 *	as the grammar needs at least one); an unterminated multipart's last
 *	part runs to the end; a header without a blank line runs to the end
 *	of its part. Only LF ends a line; a bare CR is an ordinary byte.
 *
 *	IMAP output (lib/mime_imap.c) appends RFC 3501 text to a struct buf.
 *	Strings: a quoted string ("..." with \" and \\ escaped) unless the
 *	value holds CR, LF, NUL or a byte >= 0x80, then a literal
 *	{n}\r\n<bytes> (as Dovecot does for 8-bit text; NUL is sent as 0x80).
 *	ENVELOPE values are the raw header values, unfolded (the CR/LF of
 *	each fold removed) and trimmed; RFC 2047 encoded words are left
 *	alone. Parameters extended per RFC 2231 are written as
 *	"name*" "charset'language'%XX-encoded value" (continuations
 *	joined), the form RFC 2231 clients decode; the others as plain
 *	"name" "value". A text part without parameters gets
 *	("charset" "us-ascii") as RFC 2045 says.
 * LIMITS
 *	struct mime_limits, defaults from mime_limits_default():
 *	max_depth 32: parts nested deeper are not parsed; a multipart or
 *	message/rfc822 part at that depth (the root is depth 0) becomes an
 *	opaque leaf, served as application/octet-stream (MIME_PART_OPAQUE).
 *	max_parts 5000: parts in the tree, root included; later body parts
 *	of a multipart are left out of the tree (their bytes stay in the
 *	multipart's body) and message/rfc822 parts become opaque leaves.
 *	max_params 64: parameters kept per Content-Type or
 *	Content-Disposition field (also RFC 2231 segments: at most that
 *	many continuations are joined).
 *	max_field 65536: a MIME field (Content-*) longer than this, folded
 *	lines included, is ignored, so one field cannot make the parser
 *	copy much. Message header lines have no length limit (nothing is
 *	copied while scanning them). Depth is also capped at
 *	MIME_MAX_DEPTH_CAP because the parser and the writers recurse.
 *	mime_message_parse() memory is about 300 bytes per part plus the
 *	copied field values, so at most max_parts * (300 + fields).
 */
#ifndef POSTERN_MIME_H
#define POSTERN_MIME_H

#include <stddef.h>

#include "buf.h"

#define MIME_MAX_DEPTH_CAP 100

struct mime_limits {
    unsigned max_depth;   /* deepest nesting level parsed (root = 0) */
    unsigned max_parts;   /* parts in the tree, root included (>= 1) */
    unsigned max_params;  /* parameters kept per Content-Type/-Disposition */
    size_t max_field;     /* longer Content-* fields are ignored */
};

/* max_depth 32, max_parts 5000, max_params 64, max_field 65536. */
void mime_limits_default(struct mime_limits *limits_r);

/* One parameter of Content-Type or Content-Disposition. RFC 2231
   continuations (name*0, name*1*, ...) are joined in order (up to the
   first missing number) and %XX escapes of extended segments decoded
   (%00 is kept as the three characters). When a name occurs both
   extended and plain (filename*= and filename=), both are kept, the
   extended one first, so mime_param_find() prefers it. */
struct mime_param {
    const char *name;      /* lower-cased, without the "*..." suffix */
    const char *value;     /* quotes and escapes removed, decoded */
    const char *charset;   /* extended: RFC 2231 charset ("" if empty); else NULL */
    const char *language;  /* extended: RFC 2231 language ("" if empty); else NULL */
};

enum mime_part_flags {
    MIME_PART_MULTIPART = 1 << 0,     /* children are the body parts */
    MIME_PART_MESSAGE = 1 << 1,       /* message/rfc822; the child is the message */
    MIME_PART_TEXT = 1 << 2,          /* type "text" (BODYSTRUCTURE has lines) */
    MIME_PART_DEFAULT_TYPE = 1 << 3,  /* no usable Content-Type: type is the default */
    MIME_PART_OPAQUE = 1 << 4,        /* a limit stopped the descent; now application/octet-stream */
    MIME_PART_NO_BLANK_LINE = 1 << 5, /* the header did not end with an empty line */
    MIME_PART_UNTERMINATED = 1 << 6,  /* multipart without its close delimiter */
};

/* All strings are NUL-terminated, owned by the mime_message and valid
   until it is destroyed. NULL means the field is absent. Field values
   (id, description, md5, location, language) are unfolded and trimmed,
   NUL bytes dropped. */
struct mime_part {
    struct mime_part *parent;
    struct mime_part *children;     /* first child; see the tree above */
    struct mime_part *next;         /* next sibling */
    unsigned nchildren;
    unsigned depth;                 /* root 0 */
    unsigned flags;                 /* enum mime_part_flags */

    size_t header_offset;           /* the header, its blank line included */
    size_t header_size;
    size_t header_crlf_size;
    size_t header_lines;            /* LF bytes in the header */
    size_t body_offset;             /* the body, up to the line ending before */
    size_t body_size;               /*   the next boundary, or the end */
    size_t body_crlf_size;
    size_t body_lines;              /* LF bytes in the body */

    const char *type;               /* lower-cased: "text" */
    const char *subtype;            /* lower-cased: "plain" */
    const struct mime_param *params;
    unsigned nparams;
    const char *encoding;           /* Content-Transfer-Encoding, lower-cased */
    const char *id;                 /* Content-ID */
    const char *description;        /* Content-Description */
    const char *md5;                /* Content-MD5 */
    const char *location;           /* Content-Location */
    const char *language;           /* Content-Language (the raw list) */
    const char *disposition;        /* Content-Disposition type, lower-cased */
    const struct mime_param *disposition_params;
    unsigned ndisposition_params;
};

enum mime_message_flags {
    MIME_MESSAGE_DEPTH_LIMIT = 1 << 0,  /* some part was made opaque by max_depth */
    MIME_MESSAGE_PART_LIMIT = 1 << 1,   /* max_parts left parts out */
};

struct mime_arena;

struct mime_message {
    const char *data;          /* the caller's buffer */
    size_t size;
    size_t crlf_size;          /* the whole message with CRLF line endings */
    size_t lines;
    struct mime_part *root;
    unsigned nparts;
    unsigned flags;            /* enum mime_message_flags */
    struct mime_arena *arena;  /* private: every allocation of the tree */
};

/* Parses data[0..size). limits NULL = defaults. Never fails on bad
   input; the result is owned by the caller (mime_message_destroy) and
   points into data, which must stay unchanged while it is used. */
struct mime_message *mime_message_parse(const char *data, size_t size,
                                        const struct mime_limits *limits);
void mime_message_destroy(struct mime_message **msg_p);

/* Returns the parameter called name (case-insensitive) or NULL. */
const struct mime_param *mime_param_find(const struct mime_param *params, unsigned nparams,
                                         const char *name);

/* Section numbers "1.2.3" ("" = the root) -> the part, or NULL when the
   text is malformed (empty number, 0, leading zero, other characters) or
   no such part exists. See DESCRIPTION for the numbering. */
const struct mime_part *mime_part_find(const struct mime_part *root, const char *numbers);

/* A byte range of the message, in file bytes, and its size with CRLF
   line endings (the size of the literal an IMAP client receives after
   mime_append_crlf()). */
struct mime_range {
    size_t offset;
    size_t size;
    size_t crlf_size;
};

enum mime_section_kind {
    MIME_SECTION_BODY,               /* BODY[], BODY[1.2] */
    MIME_SECTION_HEADER,             /* BODY[HEADER], BODY[1.2.HEADER] */
    MIME_SECTION_HEADER_FIELDS,      /* the header to filter with mime_header_filter() */
    MIME_SECTION_HEADER_FIELDS_NOT,  /* same range as HEADER_FIELDS */
    MIME_SECTION_TEXT,               /* BODY[TEXT], BODY[1.2.TEXT] */
    MIME_SECTION_MIME,               /* BODY[1.2.MIME] */
};

/* The range for BODY[numbers.kind]. numbers "" is the whole message:
   BODY = all bytes, HEADER/TEXT = the message's header/body, MIME is
   invalid. With numbers: BODY = the part's body (for message/rfc822 the
   whole encapsulated message), MIME = the part's own header, and
   HEADER*, TEXT need a message/rfc822 part (they name the encapsulated
   message's header/body), as RFC 3501 6.4.5 says.
   Returns 0, or -1 with *error_r (static text) when the section does
   not exist or the kind does not apply. */
int mime_section_range(const struct mime_message *msg, const char *numbers,
                       enum mime_section_kind kind, struct mime_range *range_r,
                       const char **error_r);

/* Size of data[0..size) when every LF not preceded by CR becomes CRLF. */
size_t mime_crlf_size(const char *data, size_t size);
/* Appends data with bare LFs turned into CRLF and NUL bytes into 0x80
   (IMAP literals cannot hold NUL); appends exactly mime_crlf_size()
   bytes. Returns 0, or -1 when out's limit was hit (out unchanged). */
int mime_append_crlf(struct buf *out, const char *data, size_t size);

/* One header field as found by mime_header_next(); offsets are absolute
   in the buffer. */
struct mime_field {
    size_t offset;        /* first byte of the name */
    size_t size;          /* through the last folded line's line ending */
    size_t name_len;      /* the name, without trailing blanks */
    size_t value_offset;  /* after the colon */
    size_t value_len;     /* through the end of the last line, line ending excluded */
};

/* Iterates the fields of the header in data[*pos_p..end): returns 1 with
   *field_r and *pos_p advanced past the field, or 0 at the blank line or
   end. Lines that are not fields (no colon, blanks in the name, a
   continuation before any field) are skipped. */
int mime_header_next(const char *data, size_t end, size_t *pos_p, struct mime_field *field_r);
/* Finds the first field called name (case-insensitive) in the header
   data[offset..offset+size). Returns 1 with *field_r, or 0. */
int mime_header_find(const char *data, size_t offset, size_t size, const char *name,
                     struct mime_field *field_r);
/* Appends value[0..len) unfolded (the CR/LF of each fold removed, NUL
   dropped) and trimmed of blanks at both ends. */
int mime_header_unfold(struct buf *out, const char *value, size_t len);

/* BODY[HEADER.FIELDS (names)] (exclude 0) or .NOT (exclude 1): appends
   the fields of the header range whose names are (are not) in names,
   byte for byte with their folded lines, in CRLF form, then the blank
   line "\r\n" that IMAP requires (alone when nothing matches).
   Returns 0, or -1 when out's limit was hit. */
int mime_header_filter(const struct mime_message *msg, const struct mime_range *header,
                       const char *const *names, size_t nnames, int exclude, struct buf *out);

/*
 * IMAP output (RFC 3501 7.4.2). Each appends to out and returns 0, or
 * -1 when out's limit was hit (out then holds a truncated text).
 */
/* ENVELOPE of a message: part is the root (its own header is used, even
   when the root is itself message/rfc822), or any other message/rfc822
   part (its encapsulated message's header is used). Sender and Reply-To
   default to From when absent or empty (RFC 3501 7.4.2). */
int mime_imap_envelope(const struct mime_message *msg, const struct mime_part *part,
                       struct buf *out);
/* BODY (extended 0) or BODYSTRUCTURE (extended 1) of part and below,
   usually the root; the parenthesized list without the keyword. */
int mime_imap_bodystructure(const struct mime_message *msg, const struct mime_part *part,
                            int extended, struct buf *out);
/* An RFC 5322 address list as the ENVELOPE writes it: a list of
   (name adl mailbox host), NIL for no addresses; groups as
   (NIL NIL "name" NIL) ... (NIL NIL NIL NIL). value is raw (folded). */
int mime_imap_address_list(struct buf *out, const char *value, size_t len);
/* One element of an address list, as mime_address_walk() finds it
   (the parse the ENVELOPE writer uses). Texts are raw (RFC 2047 words
   not decoded), unquoted, without comments or blanks around the '@'
   and dots of the address; they point into the walker's storage and
   are valid during the call only. */
enum mime_address_kind {
    MIME_ADDRESS_MAILBOX,       /* name (NULL: none), adl, mailbox, host */
    MIME_ADDRESS_GROUP_START,   /* name: the group's display name */
    MIME_ADDRESS_GROUP_END,     /* no texts */
};
struct mime_address {
    enum mime_address_kind kind;
    const char *name;           /* display name, or a comment naming the address */
    size_t name_len;
    const char *adl, *mailbox, *host;   /* "" when absent (never NULL for MAILBOX) */
    size_t adl_len, mailbox_len, host_len;
};
typedef void mime_address_fn(void *ctx, const struct mime_address *addr);
/* Calls fn for each element of the address list value (raw, folded),
   in order: at most 1000 elements (more are dropped; an open group's
   end is still reported). Returns the number of calls. */
size_t mime_address_walk(const char *value, size_t len, mime_address_fn *fn, void *ctx);
/* IMAP string per the rule in DESCRIPTION; nstring writes NIL for NULL. */
int mime_imap_string(struct buf *out, const char *s, size_t len);
int mime_imap_nstring(struct buf *out, const char *s);

#endif
