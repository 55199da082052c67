/* libFuzzer target for lib/smtp_data.c: decodes the input in chunks
   (size from the first byte) and cross-checks with a byte-at-a-time run:
   both must agree on the output, the end position and the counters. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtp_data.h"

static size_t run(const uint8_t *data, size_t size, size_t chunk,
                  const struct smtp_data_limits *limits, struct buf *all,
                  struct smtp_data_decoder *d)
{
    struct buf out;
    buf_init(&out, 0);
    smtp_data_decoder_init(d, limits);
    size_t off = 0;
    int ended = 0;
    while (off < size && !ended) {
        size_t avail = size - off < chunk ? size - off : chunk;
        size_t pos = 0;
        while (pos < avail) {
            size_t used;
            enum smtp_data_status st = smtp_data_decode(d, (const char *)data + off + pos,
                                                        avail - pos, &used, &out);
            if (used > avail - pos)
                abort();
            pos += used;
            if (st == SMTP_DATA_NEED_MORE)
                break;
            if (st == SMTP_DATA_END) {
                ended = 1;
                break;
            }
            if (out.len == 0 || out.len > limits->max_piece + 1)
                abort();
            buf_append(all, out.data, out.len);
            buf_reset(&out);
        }
        off += pos;
    }
    if (!d->too_big && d->error == SMTP_DATA_ERR_NONE)
        buf_append(all, out.data, out.len);
    buf_free(&out);
    return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct smtp_data_limits limits;
    smtp_data_limits_default(&limits);
    limits.max_piece = 2 + data[0] % 64;
    limits.max_size = data[0] & 0x80 ? 200 : 0;
    limits.forbid_bare_newline = data[0] & 1;
    limits.forbid_bare_cr = (data[0] >> 1) & 1;
    size_t chunk = (size_t)(data[0] % 13) + 2;
    data++;
    size--;
    struct buf a, b;
    buf_init(&a, 0);
    buf_init(&b, 0);
    struct smtp_data_decoder da, db;
    size_t ea = run(data, size, chunk, &limits, &a, &da);
    size_t eb = run(data, size, 1, &limits, &b, &db);
    if (ea != eb || a.len != b.len || (a.len > 0 && memcmp(a.data, b.data, a.len) != 0) ||
        da.size != db.size ||
        da.done != db.done || da.error != db.error || da.bare_lf != db.bare_lf ||
        da.bare_cr != db.bare_cr || da.lines != db.lines || da.too_big != db.too_big)
        abort();
    /* Strict framing: no CR may survive into the output. */
    if (limits.forbid_bare_cr && da.error == SMTP_DATA_ERR_NONE && a.len > 0 &&
        memchr(a.data, '\r', a.len))
        abort();
    if (limits.max_size > 0 && (long long)a.len > limits.max_size)
        abort();
    buf_free(&a);
    buf_free(&b);
    return 0;
}
