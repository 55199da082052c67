/* libFuzzer target for lib/smtp_command.c: the input is fed as a stream
   in chunks whose sizes come from the first byte; every command is
   checked for basic invariants and freed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtp_command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct smtp_command_limits limits;
    smtp_command_limits_default(&limits);
    limits.max_line = 64 + data[0];
    limits.forbid_bare_newline = data[0] & 1;
    limits.allow_unbracketed = (data[0] >> 1) & 1;
    limits.smtputf8 = (data[0] >> 2) & 1;
    size_t chunk = (size_t)(data[0] % 17) + 1;
    data++;
    size--;
    struct smtp_command_parser *parser = smtp_command_parser_create(&limits);
    struct buf in;
    buf_init(&in, 0);
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        buf_append(&in, data + off, n);
        off += n;
        for (;;) {
            struct smtp_command cmd;
            enum smtp_command_error err;
            enum smtp_command_status st = smtp_command_parser_next(parser, &in, &cmd, &err);
            if (st == SMTP_COMMAND_NEED_MORE)
                break;
            if (st == SMTP_COMMAND_ERROR) {
                if (err == SMTP_CMDERR_NONE || smtp_command_error_reply(err) == NULL)
                    abort();
                continue;
            }
            if (cmd.args == NULL || strlen(cmd.args) > limits.max_line)
                abort();
            if ((cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT) &&
                (cmd.path == NULL) == (cmd.arg_error == NULL))
                abort();
            (void)smtp_command_param(&cmd, "SIZE", NULL);
            smtp_command_clear(&cmd);
        }
        if (in.len > limits.max_line + 2)
            abort();
    }
    buf_free(&in);
    smtp_command_parser_destroy(&parser);
    return 0;
}
