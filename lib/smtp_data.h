/*
 * NAME
 *	smtp_data - resumable decoder for the SMTP DATA phase
 * SYNOPSIS
 *	#include "smtp_data.h"
 * DESCRIPTION
 *	Pure: no I/O. Turns the byte stream after "354" into message text
 *	with LF line endings and the transparency dots removed (RFC 5321
 *	4.5.2), and finds the end of data.
 *
 *	The end of data is exactly CR LF "." CR LF, where the first CR LF
 *	is the end of a line that itself ended in CR LF, or the CR LF of
 *	the DATA command (the decoder starts in that state). "\n.\r\n",
 *	"\r\n.\n" and "\n.\n" do NOT end the data (SMTP smuggling
 *	defence): a lone "." line there is content and is unstuffed to an
 *	empty line.
 *
 *	A line ending in a bare LF is counted (bare_lf); with
 *	forbid_bare_newline the decoder also sets error and stops producing
 *	output, but keeps scanning for the real end so the session can
 *	reply once and stay in sync. A CR not followed by LF (bare CR) is
 *	kept as content and counted (bare_cr); with forbid_bare_cr it is an
 *	error too. Past max_size decoded bytes, too_big is set and output
 *	stops; scanning goes on to the end.
 *
 *	Output is handed out one piece at a time so the caller can look at
 *	header lines: a piece is a whole line (ending in '\n'), or, for a
 *	line longer than max_piece, a part of it (piece_ends_line == 0).
 *	Lines longer than 998 octets (RFC 5322 2.1.1) are accepted and
 *	counted in long_lines.
 */
#ifndef POSTERN_SMTP_DATA_H
#define POSTERN_SMTP_DATA_H

#include <stddef.h>

#include "buf.h"

struct smtp_data_limits {
    long long max_size;       /* decoded bytes; 0 = unlimited */
    size_t max_piece;         /* longest piece of output (>= 2) */
    int forbid_bare_newline;
    int forbid_bare_cr;
};

/* max_size 10240000, max_piece 4096, forbid_bare_newline 1, forbid_bare_cr 1 */
void smtp_data_limits_default(struct smtp_data_limits *limits_r);

enum smtp_data_error {
    SMTP_DATA_ERR_NONE,
    SMTP_DATA_ERR_BARE_LF,
    SMTP_DATA_ERR_BARE_CR,
};

struct smtp_data_decoder {
    struct smtp_data_limits limits;
    /* Read-only for callers: */
    long long size;           /* decoded bytes, counted past max_size too */
    long long lines;          /* complete lines seen */
    long long long_lines;     /* lines longer than 998 octets */
    long long bare_lf;
    long long bare_cr;
    int too_big;
    enum smtp_data_error error;   /* first forbidden line ending */
    int piece_ends_line;      /* the last piece ended a line */
    int done;
    /* Private: */
    int state;
    int after_crlf;           /* the previous line ended in CR LF */
    size_t line_len;          /* octets of the current line so far */
    size_t piece_len;         /* octets of output in the current piece */
};

void smtp_data_decoder_init(struct smtp_data_decoder *d, const struct smtp_data_limits *limits);

enum smtp_data_status {
    SMTP_DATA_NEED_MORE,   /* all of in was used; out may hold an incomplete piece */
    SMTP_DATA_PIECE,       /* out ends with a complete piece (see piece_ends_line) */
    SMTP_DATA_END,         /* end of data seen; bytes after it stay in in */
};

/* Decodes the len bytes at in and appends output to out, stopping after
   each piece; *consumed_r says how many bytes of in were used (the
   caller calls again with the rest, so a large read is not moved in
   memory once per line). The caller handles out after SMTP_DATA_PIECE
   (then empties it) and keeps it across SMTP_DATA_NEED_MORE. Once error
   or too_big is set nothing more is appended and no pieces are
   reported: the decoder only looks for the end, and out may keep an
   unfinished piece the caller throws away. Otherwise, at SMTP_DATA_END
   out is empty if the caller emptied it after each piece, because the
   end always follows a complete line. */
enum smtp_data_status smtp_data_decode(struct smtp_data_decoder *d, const char *in, size_t len,
                                       size_t *consumed_r, struct buf *out);

#endif
