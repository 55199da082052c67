/*
 * NAME
 *	maildir_keywords - IMAP keywords of a Maildir folder, stored as Dovecot does
 * SYNOPSIS
 *	#include "maildir_keywords.h"
 * DESCRIPTION
 *	IMAP keywords (RFC 3501 2.3.2: "$Forwarded", "$Junk", "NonJunk",
 *	...) live in the Maildir file name as lower-case letters after the
 *	system flags (":2,FSab"). Each folder has a file "dovecot-keywords"
 *	that says which keyword a letter stands for, one line per keyword:
 *	"N name", N from 0 to 25, letter 'a' + N. Dovecot reads and writes
 *	the same file, so a Maildir moved between the two keeps its
 *	keywords.
 *
 *	A handle holds one folder's map in memory. maildir_keywords_refresh()
 *	re-reads the file when it changed (one stat); maildir_keywords_add()
 *	gives a new keyword the lowest free number and replaces the file
 *	durably (temporary file, fsync, rename, fsync of the folder). The
 *	caller holds the folder's lock (mailbox_index_lock) around add, so
 *	two writers never race; readers need no lock, since the file is
 *	only ever replaced whole.
 *
 *	Reading the file: a line that is not "N name" with N in 0..25 and
 *	a name of 1..MAILDIR_KEYWORD_NAME_MAX bytes without control bytes
 *	is ignored (and dropped when the file is next written); of two
 *	lines with the same N the first counts. A name that is not an IMAP
 *	atom, or that repeats an earlier one in another case, keeps its
 *	number (it is written back, never reused) but is not usable: its
 *	letter shows no keyword. Letters in file names with no usable name
 *	show no keyword either (Dovecot ignores them too); imapd keeps them
 *	in the file name through flag changes, as it keeps 'P'.
 *
 *	Names match case-insensitively (ASCII); the spelling that defined
 *	the keyword first is kept and shown.
 * LIMITS
 *	MAILDIR_KEYWORDS_MAX (26) keywords per folder: add returns 1 when
 *	every number is taken (imapd answers NO [LIMIT]). Names up to
 *	MAILDIR_KEYWORD_NAME_MAX bytes; the file is read up to
 *	MAILDIR_KEYWORDS_FILE_MAX bytes (the rest is ignored).
 * DIAGNOSTICS
 *	Functions return -1 with errno on file errors; nothing is logged
 *	here. A broken file is never an error: what cannot be read is
 *	ignored.
 */
#ifndef POSTERN_MAILDIR_KEYWORDS_H
#define POSTERN_MAILDIR_KEYWORDS_H

#include <stddef.h>
#include <stdint.h>

#define MAILDIR_KEYWORDS_FILE "dovecot-keywords"
#define MAILDIR_KEYWORDS_MAX 26
#define MAILDIR_KEYWORD_NAME_MAX 255
#define MAILDIR_KEYWORDS_FILE_MAX 65536

struct maildir_keywords;

/* A handle for the folder at maildir with an empty map; no I/O (call
   maildir_keywords_refresh to read the file). */
struct maildir_keywords *maildir_keywords_new(const char *maildir);
void maildir_keywords_free(struct maildir_keywords **kw_p);

/* Reads the file when it is not the one read last (inode, size, mtime).
   A missing file is an empty map. Returns 0, or -1 with errno when it
   cannot be read (the map is kept as it was). */
int maildir_keywords_refresh(struct maildir_keywords *kw);
/* Replaces the map with what data[0..len) says (the file's format).
   Pure: for refresh, unit tests and fuzzing. */
void maildir_keywords_parse(struct maildir_keywords *kw, const char *data, size_t len);

/* Counts changes of the map's content (refresh, parse or add that
   changed something), so a caller can tell when to announce it. */
unsigned maildir_keywords_generation(const struct maildir_keywords *kw);
/* The keyword a letter 'a'..'z' stands for, NULL when none (or not
   usable). kw may be NULL (no keywords). */
const char *maildir_keywords_name(const struct maildir_keywords *kw, char letter);
/* The letter of a keyword (case-insensitive), 0 when it has none.
   kw may be NULL. */
char maildir_keywords_letter(const struct maildir_keywords *kw, const char *name);
/* Bit n set: letter 'a' + n stands for a usable keyword. */
uint32_t maildir_keywords_usable(const struct maildir_keywords *kw);
/* Numbers still free for new keywords (0 when the map is full). */
unsigned maildir_keywords_free_count(const struct maildir_keywords *kw);

/* 1 when name can be a keyword: 1..MAILDIR_KEYWORD_NAME_MAX bytes of
   IMAP atom characters (RFC 3501 9: 7-bit, no CTL, SP, ( ) { % * " \
   ]), so never a system flag ("\Seen"). */
int maildir_keywords_valid(const char *name);

/* The letter for name, defining it when new: under the folder's lock,
   the file is read again, and a new name takes the lowest free number
   and is written at once. Returns 0 with *letter_r; 1 when all
   MAILDIR_KEYWORDS_MAX numbers are taken; -1 with errno: EINVAL for a
   name maildir_keywords_valid refuses, or the file error (the map and
   the file are then unchanged). */
int maildir_keywords_add(struct maildir_keywords *kw, const char *name, char *letter_r);

#endif
