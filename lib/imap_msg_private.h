/*
 * NAME
 *	imap_msg_private - shared internals of lib/imap_msg*.c
 * DESCRIPTION
 *	The loaded message (imap_msg.c), the decoders and the streaming
 *	substring matcher used by SEARCH (imap_msg_text.c). Not for use
 *	outside lib/imap_msg*.c and their unit tests.
 */
#ifndef POSTERN_IMAP_MSG_PRIVATE_H
#define POSTERN_IMAP_MSG_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "imap_msg.h"
#include "mime.h"

/* What an item needs of the file. Ordered: a higher level includes the lower. */
enum imap_msg_need {
    IMAP_MSG_NEED_NONE,
    IMAP_MSG_NEED_HEADER,   /* the message header (up to its blank line) */
    IMAP_MSG_NEED_WHOLE,
};

struct imap_msg_content {
    uint32_t uid;
    char *data;                 /* the bytes read, xmalloc'd */
    size_t size;                /* bytes given to the MIME parser */
    int whole;                  /* size covers the whole file */
    struct mime_message *mime;  /* parsed over data[0..size); NULL for a header
                                   from the caller's cache until
                                   imap_msg_content_parse (a SEARCH needs
                                   no tree to match header keys) */
};

/* Makes *content_p hold at least what need asks for (a header-only copy
   is replaced by a whole one when need is WHOLE; a content of another
   UID is replaced). Returns 0, or -1 with errno (ENOENT from open,
   EFBIG over IMAP_MSG_MAX_LOAD, read errors); *content_p is then left
   as it was. */
int imap_msg_content_load(const struct imap_msg *msg, enum imap_msg_need need,
                          struct imap_msg_content **content_p);
/* The header hooks of msg->cache (struct imap_msg_cache): for need
   HEADER, imap_msg_content_load asks header_get before it opens the
   file, and reports a header it reads to header_loaded.
   imap_msg_content_cached returns 1 when *content_p holds msg (its
   header at least: loaded before, or given now by header_get), 0 when
   the file would have to be read. imap_msg_content_load_uncached is
   imap_msg_content_load for a caller whose header_get just failed: a
   whole load reports its header too, and header_get is not asked
   again. */
int imap_msg_content_cached(const struct imap_msg *msg, struct imap_msg_content **content_p);
/* Parses c->data[0..size) into c->mime if that was not done yet. */
void imap_msg_content_parse(struct imap_msg_content *c);
int imap_msg_content_load_uncached(const struct imap_msg *msg, enum imap_msg_need need,
                                   struct imap_msg_content **content_p);

/* Days since 1970-01-01 of a Gregorian date (negative before). */
int64_t imap_msg_days(int year, int month, int day);

/* Folds text for case-insensitive matching: ASCII letters and the
   Latin-1 capitals of UTF-8 (U+00C0..U+00DE but U+00D7) become lower
   case. *prev is the previous raw byte (0 at the start of a text). */
unsigned char imap_msg_fold(unsigned char c, unsigned char *prev);
/* Appends the folded form of s[0..len) to out (a search needle). */
void imap_msg_fold_append(struct buf *out, const char *s, size_t len);

/* 1 when a field of the header data[offset..offset+size) called field
   (case-insensitive) holds needle (folded, nlen bytes) once unfolded,
   RFC 2047-decoded and folded; an empty needle matches when the field
   exists. field NULL searches every field as "Name: value" (TEXT). */
int imap_msg_header_contains(const char *data, size_t offset, size_t size, const char *field,
                             const char *needle, size_t nlen);
/* 1 when an address of a field called field (From, To, Cc, Bcc) of the
   header data[offset..offset+size) holds needle (folded, nlen bytes):
   each address parsed as for ENVELOPE (mime_address_walk) and matched
   as "name <mailbox@host>", the name RFC 2047-decoded, folded; a
   group matches by its name. An empty needle matches when such a
   field has an address or group. */
int imap_msg_address_contains(const char *data, size_t offset, size_t size, const char *field,
                              const char *needle, size_t nlen);
/* 1 when the decoded text of any leaf part of mime (the headers of
   encapsulated messages included) holds needle; an empty needle always
   matches. */
int imap_msg_body_contains(const struct mime_message *mime, const char *needle, size_t nlen);
/* Appends value[0..len) (raw, maybe folded) with RFC 2047 encoded words
   decoded and converted to UTF-8 (for tests and for the matcher). */
void imap_msg_decode_header(struct buf *out, const char *value, size_t len);

#endif
