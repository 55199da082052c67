/* libFuzzer target for lib/smtp_reply.c: the input is fed as a stream in
   chunks whose size comes from the first byte; the second byte picks
   small limits. Every reply is checked against the limits, formatted,
   given a DSN code and read as an EHLO reply; an error ends the stream
   as it ends a connection. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtp_reply.h"

static void check_reply(const struct smtp_reply *r, const struct smtp_reply_limits *lim)
{
    if (r->code < 200 || r->code > 599 || r->lines < 1 || r->lines > lim->lines_max)
        abort();
    if (r->text.len > lim->text_max || strlen(r->text.data) != r->text.len)
        abort();
    for (size_t i = 0; i < r->text.len; i++) {
        unsigned char c = (unsigned char)r->text.data[i];
        if ((c < 0x20 && c != '\n') || c == 0x7f)
            abort();
    }
    if (r->enhanced[0] != '\0' && r->enhanced[0] != '0' + r->code / 100)
        abort();
    struct buf out;
    buf_init(&out, 0);
    smtp_reply_format(r, &out, 64);
    if (out.len > 3 + 1 + SMTP_REPLY_ENHANCED_SIZE + 1 + 64 + 3 || memchr(out.data, '\n', out.len))
        abort();
    buf_free(&out);
    char dsn[SMTP_REPLY_ENHANCED_SIZE];
    smtp_reply_dsn(r, dsn, sizeof(dsn));
    if (dsn[0] < '2' || dsn[0] > '5' || dsn[1] != '.')
        abort();
    struct smtp_ehlo ehlo;
    smtp_ehlo_parse(r, &ehlo);
    if (ehlo.flags & ~0x1fu)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct smtp_reply_limits limits;
    smtp_reply_limits_default(&limits);
    if (data[1] & 1) {
        limits.line_max = 6 + data[1] % 64;
        limits.lines_max = 1 + data[1] % 5;
        limits.text_max = data[1] % 32;
    }
    size_t chunk = (size_t)(data[0] % 17) + 1;
    data += 2;
    size -= 2;
    struct smtp_reply_parser *parser = smtp_reply_parser_create(&limits);
    struct buf in;
    buf_init(&in, 0);
    size_t off = 0;
    int failed = 0;
    while (off < size && !failed) {
        size_t n = size - off < chunk ? size - off : chunk;
        buf_append(&in, data + off, n);
        off += n;
        for (;;) {
            const struct smtp_reply *reply = NULL;
            enum smtp_reply_error err;
            enum smtp_reply_status st = smtp_reply_parser_next(parser, &in, &reply, &err);
            if (st == SMTP_REPLY_NEED_MORE) {
                /* Never more than one unfinished line is left over. */
                if (in.len > limits.line_max || memchr(in.data, '\n', in.len) != NULL)
                    abort();
                break;
            }
            if (st == SMTP_REPLY_ERROR) {
                if (err == SMTP_REPLY_ERR_NONE || smtp_reply_error_text(err)[0] == '\0')
                    abort();
                failed = 1;
                break;
            }
            check_reply(reply, &limits);
        }
    }
    buf_free(&in);
    smtp_reply_parser_destroy(&parser);
    return 0;
}
