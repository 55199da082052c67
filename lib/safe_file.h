/*
 * NAME
 *	safe_file - the one way files are written durably and read whole
 * SYNOPSIS
 *	#include "safe_file.h"
 * DESCRIPTION
 *	STYLE.md rule 18: every durable write is "temporary name, fsync the
 *	file, rename, fsync the directory". safe_file_replace() does that
 *	for small files (main.cf edits, the user database, instance files);
 *	queue files and Maildir files use the same steps with the pieces
 *	below (safe_write_all, safe_fsync_dir) because they stream data.
 */
#ifndef POSTERN_SAFE_FILE_H
#define POSTERN_SAFE_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

/* Writes all len bytes (retries EINTR and short writes). 0 or -1/errno. */
int safe_write_all(int fd, const void *data, size_t len);
/* fsync of a directory, so a rename or create in it is durable. */
int safe_fsync_dir(const char *dir);
/* fsync of the directory that holds path. */
int safe_fsync_parent(const char *path);
/* Appends the whole file to out; -1 with errno (EFBIG when it has more
   than max bytes). */
int safe_read_file(const char *path, struct buf *out, size_t max);
/* Replaces path with data durably. mode is applied; uid/gid are applied
   when not (uid_t)-1 / (gid_t)-1 (root only). Returns 0, or -1 with errno
   and *step_r naming the step that failed ("create", "write", "fsync",
   "rename", "fsync directory"); the temporary file is removed. */
int safe_file_replace(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
                      gid_t gid, const char **step_r);

#endif
