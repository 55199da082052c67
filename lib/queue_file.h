/*
 * NAME
 *	queue_file - queue IDs, the queue file format, writer and reader
 * SYNOPSIS
 *	#include "queue_file.h"
 * DESCRIPTION
 *	Queue directory layout (all under queue_directory):
 *	  tmp/       files being written (never read by qmgr)
 *	  maildrop/  files from the sendmail command (untrusted; mode 1733)
 *	  incoming/  complete files waiting for qmgr
 *	  active/    files qmgr is delivering
 *	  deferred/  files waiting for a retry; mtime = next attempt time
 *	  hold/      files held by the operator (postsuper -h)
 *	  corrupt/   files that failed to parse
 *	  defer/     per-message text log of deferral reasons, one line per
 *	             recipient: "recipient\tdsn\treason" (same file name)
 *	  public/ private/  UNIX sockets (master-owned)
 *	  pid/       master.pid and the master lock
 *
 *	A queue ID is 17 upper-case hex digits: 8 of seconds, 5 of
 *	microseconds, 4 of (pid mixed with a counter). IDs sort by arrival
 *	time; the file name is the ID. Creation uses O_EXCL and retries.
 *
 *	File format (records are text lines ending in '\n'):
 *	  "POSTERN-QUEUE 1"
 *	  "T <arrival seconds>.<microseconds>"
 *	  "S <sender>"               sender, empty for the null sender <>
 *	  "A <name>=<value>"         zero or more attributes (client, helo,
 *	                             protocol, sasl_username, smtputf8=1,
 *	                             body=8BITMIME, ...)
 *	  "R<s> <recipient>"         one per recipient; <s> is one byte
 *	                             rewritten in place: '-' pending, 'D'
 *	                             done (delivered, bounced or dropped)
 *	  "M <length>"               length: 12 decimal digits, zero-padded
 *	  <length bytes of message>  LF line endings, dot-unstuffed
 *	  "E"                        end marker: a file without it is
 *	                             incomplete (crash while writing) -> corrupt
 *
 *	Durability (DESIGN.md invariant 1): the writer creates tmp/ID,
 *	writes, and queue_writer_commit() renames it into its target
 *	directory. Nothing is durable until queue_sync() (syncfs of the queue
 *	file system) returns 0: callers batch many commits into one sync
 *	(group commit) and only then acknowledge. A crash before the sync
 *	leaves at most a file without its end marker, which qmgr moves to
 *	corrupt/ and which was never acknowledged.
 */
#ifndef POSTERN_QUEUE_FILE_H
#define POSTERN_QUEUE_FILE_H

#include <stddef.h>
#include <sys/types.h>

#define QUEUE_ID_LEN 17

/* Fills id_r with a fresh ID (not yet unique on disk: creation checks). */
void queue_id_new(char id_r[QUEUE_ID_LEN + 1]);
/* 1 if s is a syntactically valid queue ID. */
int queue_id_valid(const char *s);

/* Creates the queue directories with the right modes; owner uid/gid when
   run as root (pass (uid_t)-1 to leave ownership). Returns 0 or -1. */
int queue_dirs_create(const char *queue_dir, uid_t uid, gid_t gid, const char **error_r);

/* ---- writer ---- */
struct queue_writer;
/* Creates tmp/ID under queue_dir. Returns NULL with *error_r and errno. */
struct queue_writer *queue_writer_create(const char *queue_dir, const char **error_r);
const char *queue_writer_id(const struct queue_writer *qw);
/* Envelope: call these before the first queue_writer_message(). */
void queue_writer_sender(struct queue_writer *qw, const char *sender);
void queue_writer_attr(struct queue_writer *qw, const char *name, const char *value);
void queue_writer_recipient(struct queue_writer *qw, const char *recipient);
size_t queue_writer_recipient_count(const struct queue_writer *qw);
/* Appends message bytes (LF line endings). Returns 0 or -1 with errno
   (ENOSPC, EFBIG past max_size if set, ...). */
int queue_writer_message(struct queue_writer *qw, const void *data, size_t len);
/* Message bytes written so far. */
off_t queue_writer_size(const struct queue_writer *qw);
/* Writes the end marker, closes, and renames tmp/ID to subdir/ID
   ("incoming" or "maildrop"). With fsync_now, also fsyncs the file and
   the directory (for one-off writers such as sendmail and bounces);
   otherwise the caller must queue_sync() before acknowledging.
   Returns 0, or -1 with *error_r and errno (the temp file is removed).
   Frees the writer either way and sets *qw_p to NULL. */
int queue_writer_commit(struct queue_writer **qw_p, const char *subdir, int fsync_now,
                        const char **error_r);
/* Removes the temp file and frees the writer. */
void queue_writer_abort(struct queue_writer **qw_p);

/* Makes everything written to the queue file system durable (syncfs).
   Returns 0 or -1 with errno. */
int queue_sync(const char *queue_dir);

/* ---- reader ---- */
struct queue_rcpt {
    char *address;
    int done;              /* status byte was 'D' */
    off_t status_offset;   /* byte offset of the status byte */
};

struct queue_file {
    char id[QUEUE_ID_LEN + 1];
    char *path;
    long long arrival_sec;
    long arrival_usec;
    char *sender;              /* "" for <> */
    size_t attr_count;
    char **attr_names;
    char **attr_values;
    size_t rcpt_count;
    struct queue_rcpt *rcpts;
    off_t message_offset;      /* first byte of the message */
    off_t message_len;
};

/* Parses the file at path strictly (every record, the end marker, no
   trailing bytes). Returns 0, or -1 with *error_r (malloc'd text the
   caller frees) for a corrupt or incomplete file, with errno set for
   I/O errors (ENOENT: the file went away). */
int queue_file_read(const char *path, struct queue_file **qf_r, char **error_r);
void queue_file_free(struct queue_file **qf_p);
/* The attribute's value or NULL. */
const char *queue_file_attr(const struct queue_file *qf, const char *name);
/* Marks recipient i done in the file on disk (pwrite of one byte, no
   fsync: losing it at worst repeats a delivery). Returns 0 or -1. */
int queue_file_mark_done(struct queue_file *qf, size_t i);
/* Number of recipients not yet done. */
size_t queue_file_pending(const struct queue_file *qf);

/* Reader limits; the writer refuses envelopes that exceed them. */
#define QUEUE_FILE_LINE_MAX 8192      /* envelope record, without '\n' */
#define QUEUE_FILE_ATTR_MAX 100
#define QUEUE_FILE_RCPT_MAX 100000
#define QUEUE_FILE_ENVELOPE_MAX (16 * 1024 * 1024)   /* bytes before the message */
/* queue_file_read() details: on every -1, *error_r is set (malloc'd);
   errno is EBADMSG for a corrupt/incomplete file (move it to corrupt/),
   otherwise the system error (ENOENT: the file went away). A path that
   is not a regular file (FIFO, device; symlinks are not followed) is
   EBADMSG. qf->id is the
   file's base name when that is a valid queue ID, else "". Envelope
   strings are as written; queue_writer_* refuse a '\n' in them (sticky
   EINVAL, logged) and an empty recipient, so peer input never corrupts a
   file; a bad attribute name or a duplicate attribute is a bug (panic). */

/* Same strict parse over a whole file image in memory (fuzzer, tests).
   path (may be NULL) only names the result. Returns as queue_file_read(). */
int queue_file_parse(const void *data, size_t len, const char *path,
                     struct queue_file **qf_r, char **error_r);
/* queue_writer_message() fails with EFBIG once the message would exceed
   max_size bytes (0 = no limit; the default). The failure is sticky. */
void queue_writer_set_max_size(struct queue_writer *qw, off_t max_size);
/* "queue_dir/subdir/id", malloc'd. */
char *queue_file_path(const char *queue_dir, const char *subdir, const char *id);
/* Renames queue_dir/from_subdir/id to queue_dir/to_subdir/id without
   replacing an existing target. Returns 0, or -1 with errno (ENOENT: not
   there any more, e.g. qmgr moved it; EEXIST: target exists). */
int queue_file_move(const char *queue_dir, const char *id, const char *from_subdir,
                    const char *to_subdir);
/* The first of incoming, active, deferred, hold, maildrop, corrupt that
   holds id (a static string), or NULL (also for an invalid id). Racy by
   nature: the caller still handles ENOENT when it opens the file. */
const char *queue_file_locate(const char *queue_dir, const char *id);

/* Defer log defer/ID: one line per deferral "recipient\tdsn\treason\n".
   Appended on each deferral, so a recipient may appear more than once:
   the last line wins. */
struct queue_defer {
    char *recipient;
    char *dsn;
    char *reason;
};
/* Appends one line with one write(2) (O_APPEND); tabs and newlines in the
   fields become spaces, the line is cut to QUEUE_FILE_LINE_MAX. No fsync:
   the log is advisory. Returns 0 or -1 with errno. */
int queue_defer_append(const char *queue_dir, const char *id, const char *recipient,
                       const char *dsn, const char *reason);
/* Reads defer/ID (a missing file gives 0 entries). Malformed or too long
   lines are skipped. Returns 0 or -1 with errno. Free with queue_defer_free. */
int queue_defer_read(const char *queue_dir, const char *id, struct queue_defer **entries_r,
                     size_t *count_r);
void queue_defer_free(struct queue_defer **entries_p, size_t count);
/* The last entry for recipient, or NULL. Points into entries. */
const struct queue_defer *queue_defer_find(const struct queue_defer *entries, size_t count,
                                           const char *recipient);
/* Removes defer/ID; a missing file is not an error. Returns 0 or -1. */
int queue_defer_remove(const char *queue_dir, const char *id);

#endif
