/*
 * NAME
 *	mailbox_index - the per-mailbox LMDB index shared by pop3d and imapd
 * SYNOPSIS
 *	#include "mailbox_index.h"
 * DESCRIPTION
 *	A Maildir gets a small LMDB file (DIR/postern-index.lmdb, with
 *	MDB_NOSUBDIR) that gives every message a stable identity:
 *	  UIDVALIDITY  fixed when the index is created, larger than any
 *	               the user's Maildir handed out before
 *	  UIDNEXT      the next UID to hand out; UIDs only grow
 *	  per message: UID -> Maildir base name (the part before ":2,"),
 *	               current file name (new/ or cur/ + flags), size in
 *	               octets, size with CRLF line endings (what POP3 and
 *	               IMAP report), internal date, flags, modseq
 *	  base name -> UID
 *	mailbox_index_sync() brings it up to date with the directory: new
 *	files get the next UIDs in delivery order (by the time in their
 *	name, then name); renamed files (flags changed by another tool) keep
 *	their UID; vanished files are dropped. A missing or corrupt index is
 *	rebuilt from the Maildir (logged); UIDVALIDITY then changes, since
 *	old UIDs cannot be trusted. Callers hold the mailbox lock
 *	(mailbox_index_lock) while syncing and changing files.
 *
 *	POP3's UIDL is "<UIDVALIDITY>.<UID>" style text built from these,
 *	so it survives restarts and re-indexing of an unchanged index.
 */
#ifndef POSTERN_MAILBOX_INDEX_H
#define POSTERN_MAILBOX_INDEX_H

#include <stdint.h>
#include <sys/types.h>

struct mailbox_index;

/* Room for Maildir flag letters: every ASCII letter once (the system
   flags upper case, keyword letters 'a'..'z', see lib/maildir_keywords.h)
   and the NUL. Nothing is ever cut. */
#define MAILBOX_FLAGS_SIZE 56

struct mailbox_msg {
    uint32_t uid;
    char *base;          /* unique part of the Maildir name */
    char *path;          /* current file, relative to the Maildir: "cur/NAME:2,S" */
    uint64_t size;       /* bytes on disk */
    uint64_t crlf_size;  /* bytes with every LF as CRLF: what clients are told */
    int64_t internal_date;
    char flags[MAILBOX_FLAGS_SIZE]; /* Maildir flag letters, sorted: "FRSac" */
    uint64_t modseq;
};

/* Opens (creating if needed) the index of the Maildir at dir. Returns
   NULL with *error_r (malloc'd) on failure. */
struct mailbox_index *mailbox_index_open(const char *maildir, char **error_r);
void mailbox_index_close(struct mailbox_index **index_p);

/* Exclusive advisory lock on the mailbox (flock on DIR/postern-index.lock).
   nonblocking: returns 1 if another process holds it. Returns 0 or -1. */
int mailbox_index_lock(struct mailbox_index *index, int nonblocking);
void mailbox_index_unlock(struct mailbox_index *index);

/* Scans new/ and cur/ and updates the index. Returns 0 or -1 with
   *error_r (malloc'd). */
int mailbox_index_sync(struct mailbox_index *index, char **error_r);

/* on: every later sync of this handle also moves the files it finds in
   new/ to cur/NAME:2,FLAGS and records them there (a read-write IMAP
   selection has seen them). Off by default (pop3d, EXAMINE, STATUS). */
void mailbox_index_set_move_new(struct mailbox_index *index, int on);

uint32_t mailbox_index_uidvalidity(const struct mailbox_index *index);
uint32_t mailbox_index_uidnext(const struct mailbox_index *index);

/* The messages in UID order after the last sync. The array and its
   strings are owned by the index and valid until the next sync/close. */
const struct mailbox_msg *mailbox_index_messages(const struct mailbox_index *index,
                                                 size_t *count_r);

/* Moves a message from new/ to cur/ (adding ":2," and flags) or changes
   its flags (ASCII letters: system flags "DFPRST", keyword letters
   'a'..'z'); updates the index and the message's path. Returns 0 or -1
   with errno (ENOENT: the file went away; EINVAL: not a letter;
   ENAMETOOLONG: the new name would pass 255 bytes). */
int mailbox_index_set_flags(struct mailbox_index *index, uint32_t uid, const char *flags);
/* Unlinks the message's file and drops it from the index. */
int mailbox_index_expunge(struct mailbox_index *index, uint32_t uid);

/* What a Maildir file name says. name[0..base_len) is the unique part. */
struct maildir_name {
    size_t base_len;
    int has_info;        /* ":2," present */
    char flags[MAILBOX_FLAGS_SIZE]; /* letters after ":2,": ASCII letters only, sorted, unique */
    uint64_t time;       /* leading decimal digits (delivery time), 0 if none */
    int has_size;        /* ",S=<n>" in the unique part (lib/maildir.c writes it) */
    uint64_t size;
    int has_crlf_size;   /* ",W=<n>": size with CRLF line endings */
    uint64_t crlf_size;
    int has_pop3_size;   /* ",P=<n>": POP3 transfer octets (lib/maildir.h) */
    uint64_t pop3_size;
};
/* Parses a file name found in new/ or cur/ (len bytes, need not be NUL
   terminated). Returns 0, or -1 when it is not a plausible message: empty,
   a dot file, longer than 255, a '/', NUL or control byte, empty unique
   part. Flag letters other than ASCII letters are dropped (all 52
   letters fit in flags). Pure: no I/O. */
int mailbox_index_parse_name(const char *name, size_t len, struct maildir_name *r);

/* Sorts and deduplicates flag letters into out. Returns 0, or -1 with
   errno EINVAL for a character that is not an ASCII letter. */
int mailbox_index_normalize_flags(const char *flags, char out[MAILBOX_FLAGS_SIZE]);

/* What a message's bytes amount to on the wire (one read of the file). */
struct mailbox_msg_counts {
    uint64_t size;        /* bytes read */
    uint64_t crlf_size;   /* size + LFs not preceded by CR */
    uint64_t dot_lines;   /* lines starting with '.' (POP3 byte-stuffs them) */
    int final_newline;    /* the last byte is LF (or the file is empty) */
};
/* Reads fd from its current position to EOF in 64 KiB chunks.
   Returns 0, or -1 with errno. */
int mailbox_index_count_fd(int fd, struct mailbox_msg_counts *r);

/* The message with this UID (binary search), NULL if none. Valid like
   the array of mailbox_index_messages(). */
const struct mailbox_msg *mailbox_index_find(const struct mailbox_index *index, uint32_t uid);
/* The Maildir directory the index was opened for. */
const char *mailbox_index_maildir(const struct mailbox_index *index);
/* Opens the message's file read-only (O_CLOEXEC). When another tool has
   renamed it (flags changed) it is found by its unique part and the path
   is updated. Returns an fd, or -1 with errno (ENOENT: no such UID or the
   file is gone; the index keeps it until the next sync). */
int mailbox_index_open_msg(struct mailbox_index *index, uint32_t uid);
/* Bytes a POP3 RETR sends between "+OK" and ".\r\n": crlf_size plus one
   per dot-stuffed line, plus 2 when the last line has no newline (the
   server ends it with CRLF). 0 for an unknown UID. */
uint64_t mailbox_index_pop3_size(const struct mailbox_index *index, uint32_t uid);
/* Unlinks many messages and drops them with one index write. Returns 0,
   or -1 with errno of the first failure (all are attempted). */
int mailbox_index_expunge_uids(struct mailbox_index *index, const uint32_t *uids, size_t count);
/* set_flags and expunge change the in-memory view at once and write the
   LMDB records later, in one transaction: at flush, sync or close (a crash
   in between loses nothing: sync finds renamed files by their unique
   part). Returns 0 or -1 with errno. */
int mailbox_index_flush(struct mailbox_index *index);
/* Frees the in-memory array of messages (a POP3 session has taken its
   own snapshot and needs single messages only). Afterwards find,
   pop3_size, open_msg, set_flags and expunge(_uids) read the message
   from LMDB with a short read transaction; find then returns a pointer
   to a per-handle scratch entry, valid only until the next call on the
   handle. Changes not yet written are kept (and flushed after 1024 of
   them). mailbox_index_messages() and sync rebuild the array. The map's
   pages are released again every 256 such reads. */
void mailbox_index_drop_messages(struct mailbox_index *index);

/*
 * For imapd (several sessions on one folder, APPEND/COPY, caches).
 * Code in mailbox_index_imap.c.
 */
/* Registers a file the caller has just placed in new/ or cur/ (relpath
   "cur/NAME:2,S", relative to the Maildir) under the lock: gives it the
   next UID (returned in *uid_r), writes its record at once and adds it
   to the in-memory array, without scanning the directories; a later
   sync keeps that UID. Sizes come from the name (,S= ,W= ,P=) or one
   read; internal_date 0 means the file's mtime. Returns 0, or -1 with
   errno (EEXIST: already indexed, *uid_r is its UID; ENOENT: no such
   file; ELOOP: a symlink; EINVAL: not new/ or cur/, an implausible name
   (mailbox_index_parse_name) or not a regular file; ESTALE: the index
   was rebuilt since this handle's last sync, sync and ask
   mailbox_index_uid_of_base; EOVERFLOW: UIDs used up, the next sync
   starts a new UIDVALIDITY). *uid_r is 0 unless 0 or EEXIST. */
int mailbox_index_add(struct mailbox_index *index, const char *relpath, int64_t internal_date,
                      uint32_t *uid_r);
/* The UID of a Maildir unique part (base name), 0 if not indexed. Asks
   LMDB, so it also knows messages other handles added. */
uint32_t mailbox_index_uid_of_base(struct mailbox_index *index, const char *base);
/* Cheap check before a sync: 0 when neither new/ nor cur/ changed
   (directory mtimes, to the nanosecond, noted at the start of the last
   sync, and not within the 100 ms before that start: such an mtime
   is not trusted and the answer is 1 until a later sync), the index
   file was not replaced (rebuilt) and no other handle or process wrote
   the index since this handle last read it; 1 when
   mailbox_index_sync() is needed (also before the first sync, and on
   any error). This handle's own renames/unlinks change the mtimes too.
   Costs three stat() calls and one short read transaction. */
int mailbox_index_stale(struct mailbox_index *index);
/* The mod-sequence of the last change (CONDSTORE HIGHESTMODSEQ). Every
   change takes the next modseq and the changed message keeps it as its
   modseq: an add or expunge at once, set_flags when its record is
   written (mailbox_index_flush(), which imapd calls after a STORE, or
   the next sync/close), a sync for each new, renamed or vanished file.
   Cache writes do not count. */
uint64_t mailbox_index_highest_modseq(const struct mailbox_index *index);

/* IMAP \Recent (RFC 3501 2.3.2), kept as in Dovecot: the index holds
   the first UID no session has claimed yet. Messages with a UID at or
   above it are \Recent for the next read-write session that claims
   them, whether their file is in new/ or cur/ (APPEND, COPY and MOVE
   place theirs in cur/). A new or rebuilt index starts at 1 (every
   message is recent once); an index written before this existed starts
   at its UIDNEXT (nothing recent), kept from its first write on.
   first_recent_uid is this handle's view (from open, the last sync,
   add or claim): STATUS RECENT counts the messages at or above it, and
   a read-only selection shows them \Recent without claiming.
   claim_recent, under the lock: one write transaction sets the value
   to UIDNEXT and returns the old one in *first_r; the caller owns
   \Recent of UIDs [*first_r, mailbox_index_first_recent_uid()) (the
   latter is now the UIDNEXT of the claim, which may include messages
   the handle has not synced yet). Nothing is written when nothing is
   new. Returns 0, or -1 with errno (ESTALE: the index was rebuilt
   since the handle's last sync; EIO or an LMDB errno: logged). */
uint32_t mailbox_index_first_recent_uid(const struct mailbox_index *index);
int mailbox_index_claim_recent(struct mailbox_index *index, uint32_t *first_r);

/* Per-message cache of derived data (ENVELOPE, BODYSTRUCTURE text), kept
   in the index beside the record and dropped with it (expunge, or the
   file vanishing). kind is a small number the caller chooses (0..65535).
   get returns 1 with a malloc'd copy in *data_r (NUL-terminated, length
   in *len_r), or 0 when absent or unreadable (*data_r NULL). put returns
   0 or -1 with errno (EINVAL: kind or length out of range; ENOENT: the
   UID is not in this handle's view, i.e. not synced, added or found);
   the value is kept in the handle and written at the next flush, sync
   or close, or when 4,096 values or 1 MiB wait (the cache is an
   optimisation: callers ignore failures). Values up to
   MAILBOX_INDEX_CACHE_MAX bytes. */
#define MAILBOX_INDEX_CACHE_MAX 65536
int mailbox_index_cache_get(struct mailbox_index *index, uint32_t uid, unsigned kind,
                            char **data_r, size_t *len_r);
int mailbox_index_cache_put(struct mailbox_index *index, uint32_t uid, unsigned kind,
                            const char *data, size_t len);

#endif
