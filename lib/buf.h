/*
 * NAME
 *	buf - growable, optionally bounded byte buffer
 * SYNOPSIS
 *	#include "buf.h"
 * DESCRIPTION
 *	The one buffer type for text and protocol I/O (STYLE.md rule 8).
 *	data[len] is always '\0', so a buffer holding text is a C string.
 *	A buffer created with a limit never grows past it: appends that
 *	would exceed the limit append nothing and return -1, so a peer
 *	cannot make a process allocate without bound.
 *
 *	The bounded line reader (buf_read_line) lives here too: every
 *	network input goes through it or through buf_take().
 */
#ifndef POSTERN_BUF_H
#define POSTERN_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

struct buf {
    char *data;     /* always NUL-terminated at data[len] */
    size_t len;
    size_t size;    /* allocated bytes, including room for the NUL */
    size_t limit;   /* maximum len; 0 = unbounded */
};

/* Initializes an empty buffer; limit 0 means unbounded. */
void buf_init(struct buf *b, size_t limit);
/* Frees the storage; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);
struct buf *buf_create(size_t limit);
/* Frees *bp and sets it to NULL. */
void buf_destroy(struct buf **bp);

/* Empties the buffer (keeps the storage). */
void buf_reset(struct buf *b);
/* Returns 0, or -1 (nothing appended) when the limit would be exceeded. */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_append_char(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Removes the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Truncates to len bytes (len <= b->len). */
void buf_truncate(struct buf *b, size_t len);
/* Makes room for at least n more bytes (ignores the limit); returns the
   write position. Call buf_commit(b, n) after writing n bytes there. */
char *buf_reserve(struct buf *b, size_t n);
void buf_commit(struct buf *b, size_t n);
/* Returns the data as a malloc'd string and leaves the buffer empty. */
char *buf_steal(struct buf *b);

/*
 * Bounded line reader over an input buffer.
 * Looks for a line ending with '\n' at the start of in.
 *   BUF_LINE_OK:       *line_r points into in->data, *len_r excludes the
 *                      terminator; *crlf_r says whether it ended "\r\n"
 *                      (0 = bare LF). The caller consumes *consume_r bytes
 *                      with buf_consume() when done with the line.
 *   BUF_LINE_NEED_MORE: no complete line yet and not too long.
 *   BUF_LINE_TOO_LONG: more than max bytes without a newline (detected
 *                      before the newline arrives); *consume_r is how many
 *                      bytes to discard: through the line's '\n' when it is
 *                      in the buffer (in->data[*consume_r - 1] == '\n'),
 *                      else everything; then the caller keeps discarding
 *                      up to and including the next '\n'.
 * max counts the line without its terminator.
 */
enum buf_line_status { BUF_LINE_OK, BUF_LINE_NEED_MORE, BUF_LINE_TOO_LONG };
enum buf_line_status buf_read_line(struct buf *in, size_t max, const char **line_r,
                                   size_t *len_r, int *crlf_r, size_t *consume_r);

/* Reads up to the free space (at most want bytes) from fd into b.
   Returns bytes read, 0 on EOF, -1 with errno (EAGAIN included). */
ssize_t buf_read_fd(struct buf *b, int fd, size_t want);
/* Writes as much of b as the fd takes and consumes it.
   Returns 0 when b is empty, 1 when bytes remain (EAGAIN), -1 on error. */
int buf_flush_fd(struct buf *b, int fd);

#endif
