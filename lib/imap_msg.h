/*
 * NAME
 *	imap_msg - one message's IMAP items: FETCH responses and SEARCH matches
 * SYNOPSIS
 *	#include "imap_msg.h"
 * DESCRIPTION
 *	imapd describes a message of the selected mailbox with a struct
 *	imap_msg (what the mailbox index knows: UID, sequence number, flags,
 *	sizes, dates) and gives a way to open its file. Items that need the
 *	message's bytes (ENVELOPE, BODY[...], SEARCH on text) load them on
 *	first use through an imap_msg_content: the header alone when only
 *	header items are needed, the whole file otherwise, parsed with
 *	lib/mime once per message. Nothing here touches the index, the
 *	session or the network.
 *
 *	Flags: the Maildir letters of the file name map to IMAP system
 *	flags D \Draft, F \Flagged, R \Answered, S \Seen, T \Deleted;
 *	P (passed) has no IMAP flag and is not shown. Letters 'a'..'z' are
 *	keywords, named by the folder's map (lib/maildir_keywords.h); a
 *	letter the map does not name is not shown. \Recent comes from
 *	the session, not from the file.
 *
 *	FETCH (imap_msg_fetch): renders "* <seq> FETCH (...)\r\n" for the
 *	items of one FETCH command, in the order the client named them (UID
 *	first when the command is UID FETCH and UID was not named;
 *	MODSEQ added when CONDSTORE is on, as RFC 7162 3.2 says).
 *	BODY[section]<origin.count> follows RFC 3501 6.4.5 and 7.4.2: the
 *	response names the section as "BODY[section]<origin>", a partial
 *	beyond the end is an empty string. Literals carry CRLF line endings
 *	(bare LF on disk is sent as CRLF) and never NUL (sent as 0x80).
 *	When a non-PEEK BODY[...] / RFC822 / RFC822.TEXT is fetched, the
 *	caller sets \Seen before rendering and asks for FLAGS in the reply
 *	(RFC 3501 6.4.5: the flag change is reported). A caller that keeps
 *	ENVELOPE / BODY / BODYSTRUCTURE texts (struct imap_msg_cache) hands
 *	them in with the message and is told of the ones rendered; they
 *	still appear in the client's order, and the file is not opened when
 *	nothing else needs it. The same hook carries the raw header: a
 *	caller that keeps headers hands them in on demand (header_get) and
 *	is given those read from files (header_loaded), so header items
 *	and header SEARCH keys need no file once the header is kept.
 *
 *	SEARCH (imap_search_*): a parsed key tree is compiled once per
 *	command (sequence sets resolved against the view), then matched
 *	against each message. Text keys (BCC, BODY, CC, FROM, SUBJECT, TEXT,
 *	TO, HEADER) match case-insensitively as substrings, after decoding:
 *	RFC 2047 encoded words in header values, base64 and
 *	quoted-printable bodies, charsets UTF-8, US-ASCII and ISO-8859-1
 *	(others as raw bytes); "HEADER field """ matches any message that
 *	has the field. SENTBEFORE/SENTON/SENTSINCE use the Date: header's
 *	date (in its own zone, RFC 3501 6.4.4); a message without a usable
 *	Date: falls back to the internal date. BEFORE/ON/SINCE use the
 *	internal date's day in UTC.
 * LIMITS
 *	A message is loaded whole into memory (read, not mmap, so a file
 *	truncated by another tool cannot fault us) up to
 *	IMAP_MSG_MAX_LOAD (the callers' message_size_limit is lower); the
 *	header-only load reads at most IMAP_MSG_MAX_HEADER bytes; headers
 *	over IMAP_MSG_CACHE_HEADER_MAX (8 KiB) are not offered for keeping.
 *	Decoded text for matching is produced per part in pieces, never the whole
 *	decoded message at once.
 * DIAGNOSTICS
 *	A file that vanished or cannot be read: imap_msg_fetch returns -1
 *	with errno (ENOENT: expunged by another session; imapd then sends
 *	what it can, RFC 3501 allows NO for that FETCH); SEARCH treats the
 *	message as not matching text keys.
 */
#ifndef POSTERN_IMAP_MSG_H
#define POSTERN_IMAP_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "imap_parser.h"
#include "maildir_keywords.h"

#define IMAP_MSG_MAX_LOAD ((size_t)256 << 20)
#define IMAP_MSG_MAX_HEADER ((size_t)1 << 20)
/* Longest header handed to header_loaded (struct imap_msg_cache): a
   mailbox's usual headers (1-4 KiB) fit, a header bloated by hundreds
   of Received: lines is read from its file each time instead. */
#define IMAP_MSG_CACHE_HEADER_MAX ((size_t)8 << 10)

/* Opens the message file read-only, returns an fd or -1 with errno. */
typedef int imap_msg_open_fn(void *ctx, uint32_t uid);

/* Texts of the items that cost a parse of the message, kept by the
   caller between commands (imapd keeps them in the mailbox index). */
struct imap_msg_cache {
    /* By item: the value of ENVELOPE, BODY or BODYSTRUCTURE as it
       follows the item's name in a response ("(\"Thu, ...\" ...)"),
       len[item] bytes; NULL: render it from the file. Other items'
       entries are not read. The file is not opened when every item
       that would need it has a text here. */
    const char *text[IMAP_FETCH_ITEM_COUNT];
    size_t len[IMAP_FETCH_ITEM_COUNT];
    /* When not NULL, called once for each ENVELOPE / BODY /
       BODYSTRUCTURE value imap_msg_fetch rendered from the file (not
       for those given in text[]) and wrote whole into out, so the
       caller can keep it; text is valid during the call only. */
    void (*rendered)(void *ctx, enum imap_fetch_item item, const char *text, size_t len);
    void *rendered_ctx;
    /* The message header (its bytes up to and including the blank line
       that ends it, as a header-only load reads them; the whole file
       when it has no blank line). When not NULL, header_get is asked
       for it before the file is opened for items or SEARCH keys that
       need the header only (ENVELOPE, RFC822.HEADER, BODY[HEADER...]
       of the message, SUBJECT, FROM, HEADER, SENT*, the header part of
       TEXT ...): it returns a malloc'd copy that lib/imap_msg then owns
       and frees (len in *len_r), or NULL to read the file. When not NULL,
       header_loaded is called with the UID and the header read from the
       file (after asking header_get, when set), if it is at most
       IMAP_MSG_CACHE_HEADER_MAX bytes, each time the
       file is loaded for header-only needs (or whole, by a SEARCH that
       asked header_get in vain first); header is valid during the
       call only. Both get header_ctx. */
    char *(*header_get)(void *ctx, uint32_t uid, size_t *len_r);
    void (*header_loaded)(void *ctx, uint32_t uid, const char *header, size_t len);
    void *header_ctx;
};

struct imap_msg {
    uint32_t seq;
    uint32_t uid;
    const char *maildir_flags;   /* sorted Maildir letters, "FRSab" */
    const struct maildir_keywords *keywords;  /* names of 'a'..'z'; NULL: none */
    int recent;                  /* \Recent for this session */
    int64_t internal_date;       /* seconds since the epoch */
    uint64_t crlf_size;          /* RFC822.SIZE */
    uint64_t modseq;
    imap_msg_open_fn *open;
    void *open_ctx;
    const struct imap_msg_cache *cache;   /* NULL: no cached texts, no callback */
};

/* Maildir letters of IMAP flags: D F R S T and 26 keyword letters. */
#define IMAP_MSG_LETTERS_SIZE 32
/* "(\Answered \Seen \Recent $Junk)" appended to out: the system flags,
   \Recent when recent, then the keywords kw names (in letter order;
   kw NULL: none). */
void imap_msg_flags_format(const char *maildir_flags, const struct maildir_keywords *kw,
                           int recent, struct buf *out);
/* IMAP flag names -> Maildir letters (sorted, unique) in out: system
   flags as D F R S T, keywords as the letters kw gives them
   (case-insensitive; kw NULL: none has one). Returns 0; 1 when some
   keyword has no letter in kw (out holds the letters of the others;
   *bad_r points to the first such keyword: the caller defines it with
   maildir_keywords_add and asks again, or leaves it out of a removal);
   -1 for \Recent or an unknown system flag ("\Foo"): *bad_r points to
   it. */
int imap_msg_flags_to_maildir(char *const *flags, size_t nflags,
                              const struct maildir_keywords *kw,
                              char out[IMAP_MSG_LETTERS_SIZE], const char **bad_r);
/* INTERNALDATE text: "27-Nov-2026 09:47:16 +0000" (no quotes). */
void imap_msg_date_format(int64_t t, struct buf *out);

/* The loaded bytes and MIME tree of one message; NULL until needed. */
struct imap_msg_content;
void imap_msg_content_free(struct imap_msg_content **content_p);

/* Options for imap_msg_fetch. Each adds its item to the reply unless
   the client named it: then it is sent once, where the client put it
   (UID first, FLAGS and MODSEQ last, when not named). */
#define IMAP_MSG_FETCH_UID 0x01u       /* UID FETCH: UID is always in the reply */
#define IMAP_MSG_FETCH_MODSEQ 0x02u    /* CONDSTORE enabled: MODSEQ in the reply */
#define IMAP_MSG_FETCH_FLAGS 0x04u     /* add FLAGS (the caller set \Seen) */

/* 1 when the FETCH sets \Seen (a non-PEEK BODY[...], RFC822, RFC822.TEXT). */
int imap_msg_fetch_sets_seen(const struct imap_command *fetch);
/* 1 when it needs the message's bytes at all (else no file is opened),
   cached texts (struct imap_msg_cache) left aside. */
int imap_msg_fetch_needs_content(const struct imap_command *fetch);

/* Appends the FETCH response of msg for cmd (IMAP_CMD_FETCH) to out.
   *content_p caches the loaded message between calls for the same
   message (pass a pointer to NULL for a new message; free it with
   imap_msg_content_free when moving on). ENVELOPE, BODY and
   BODYSTRUCTURE come from msg->cache when it has their text (see
   struct imap_msg_cache). Returns 0, or -1 with errno
   (out unchanged). *bytes_r (may be NULL) gets the literal bytes
   rendered, for the log. */
int imap_msg_fetch(const struct imap_command *cmd, const struct imap_msg *msg,
                   unsigned options, struct imap_msg_content **content_p, struct buf *out,
                   uint64_t *bytes_r);

/* SEARCH. */
struct imap_search;
/* Compiles cmd (IMAP_CMD_SEARCH). count is the number of messages in
   the view and max_uid the highest UID in it (for "*"). Never fails:
   the parser already checked the command. */
struct imap_search *imap_search_compile(const struct imap_command *cmd, uint32_t count,
                                        uint32_t max_uid);
/* 1 when a match may need the file (text keys, SENT* dates, sizes are
   known). */
int imap_search_needs_content(const struct imap_search *search);
/* 1 when msg matches, 0 when not. *content_p as for imap_msg_fetch. */
int imap_search_match(struct imap_search *search, const struct imap_msg *msg,
                      struct imap_msg_content **content_p);
void imap_search_free(struct imap_search **search_p);

/* Exposed for the unit tests: RFC 5322 date -> seconds since the epoch
   (UTC) and the date in the field's own zone. Returns 0 or -1. */
int imap_msg_parse_date(const char *text, size_t len, int64_t *utc_r, int *year_r,
                        int *month_r, int *day_r);

#endif
