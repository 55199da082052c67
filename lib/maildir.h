/*
 * NAME
 *	maildir - durable delivery into a Maildir
 * SYNOPSIS
 *	#include "maildir.h"
 * DESCRIPTION
 *	A Maildir is DIR/tmp, DIR/new, DIR/cur. A message is written to
 *	tmp/NAME and renamed into new/NAME, so readers never see a partial
 *	file. The file in tmp/ is "<sec>.M<usec>P<pid>Q<counter>.<host>,S=<size>":
 *	the time, pid and a per-process counter make it unique on one host,
 *	O_EXCL catches the rest. In new/ it gets two more fields counted
 *	while it was written: ",W=<n>" the size with every bare LF sent as
 *	CRLF (what IMAP reports; Dovecot writes W= with the same meaning)
 *	and ",P=<n>" the octets of the POP3 transfer (W plus one per line
 *	that starts with '.', plus 2 when the last line has no LF; the
 *	terminating ".CRLF" is not counted). With S=, W= and P= the mailbox
 *	index learns a new message's sizes without opening it.
 *
 *	Durability: maildir_deliver() with fsync_now syncs the file and the
 *	new/ directory itself. Without it the caller batches deliveries and
 *	calls maildir_sync() once for the file system before reporting
 *	success (group commit, as for queue files).
 */
#ifndef POSTERN_MAILDIR_H
#define POSTERN_MAILDIR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Creates dir (and missing parents) and dir/{tmp,new,cur}, mode 0700.
   Returns 0, or -1 with errno and *error_r (malloc'd, caller frees). */
int maildir_create(const char *dir, char **error_r);

/* Builds a unique file name for a message of size bytes into a malloc'd
   string. now_sec/now_usec: the current time. */
char *maildir_unique_name(long long now_sec, long now_usec, off_t size);

/* Delivers a message into the Maildir dir (created if missing):
   "Return-Path: <sender>\n", "Delivered-To: <recipient>\n" (skipped
   when recipient is NULL), then length bytes of src_fd from offset
   (pread/sendfile: the fd's file position is not used). With fsync_now
   the file and new/ are fsynced before returning.
   Returns 0 with *path_r (malloc'd path in new/, may be NULL if not
   wanted), or -1 with errno and *error_r (malloc'd): the partial file
   in tmp/ is removed. EIO is reported when src_fd is shorter than
   offset + length. */
int maildir_deliver(const char *dir, const char *sender, const char *recipient, int src_fd,
                    off_t offset, off_t length, int fsync_now, char **path_r, char **error_r);

/* What a message's bytes amount to on the wire, counted as they stream
   by (any chunking gives the same result). */
struct maildir_counts {
    uint64_t size;        /* bytes seen */
    uint64_t bare_lf;     /* LFs not preceded by CR */
    uint64_t dot_lines;   /* lines starting with '.' (POP3 byte-stuffs them) */
    unsigned char last;   /* the last byte seen ('\n' before any) */
};
void maildir_counts_init(struct maildir_counts *c);
void maildir_counts_add(struct maildir_counts *c, const void *data, size_t len);
/* size with CRLF line endings (W=). */
uint64_t maildir_counts_crlf_size(const struct maildir_counts *c);
/* POP3 transfer octets without the final ".CRLF" (P=). */
uint64_t maildir_counts_pop3_size(const struct maildir_counts *c);

/* Makes everything written on the file system holding path durable
   (syncfs). Returns 0 or -1 with errno. */
int maildir_sync(const char *path);

/* Copies length bytes of src_fd from offset to dst_fd at its current
   position. Returns 0, or -1 with errno (EIO for a short source). */
int maildir_copy_bytes(int dst_fd, int src_fd, off_t offset, off_t length);

#endif
