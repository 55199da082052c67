/* libFuzzer target for lib/pop3_command.c: the input is fed as a stream
   in chunks whose sizes come from the first byte; the second byte picks
   command lines or raw (SASL) lines for each step. Every result is checked
   for basic invariants and freed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "pop3_command.h"

static void check_command(const struct pop3_command *cmd, const struct pop3_command_limits *lim)
{
    if (cmd->rest == NULL || strlen(cmd->rest) > lim->max_line)
        abort();
    if (cmd->argc > lim->max_args || (cmd->extra_args && cmd->argc != lim->max_args))
        abort();
    for (size_t i = 0; i < cmd->argc; i++)
        if (cmd->argv[i] == NULL || cmd->argv[i][0] == '\0' || strpbrk(cmd->argv[i], " \t\r\n"))
            abort();
    if (strlen(cmd->name) > POP3_VERB_MAX || cmd->name[0] == '\0')
        abort();
    if (cmd->verb != POP3_VERB_UNKNOWN && strcmp(cmd->name, pop3_verb_name(cmd->verb)) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct pop3_command_limits limits;
    pop3_command_limits_default(&limits);
    limits.max_line = 16 + data[0];
    limits.max_args = data[0] % 4;
    size_t chunk = (size_t)(data[0] % 17) + 1;
    uint8_t modes = data[1];
    data += 2;
    size -= 2;
    struct pop3_command_parser *parser = pop3_command_parser_create(&limits);
    struct buf in;
    buf_init(&in, 0);
    size_t off = 0;
    unsigned step = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        buf_append(&in, data + off, n);
        off += n;
        for (;;) {
            enum pop3_command_error err;
            enum pop3_command_status st;
            if ((modes >> (step++ % 8)) & 1) {
                char *line;
                size_t len;
                st = pop3_command_parser_next_line(parser, &in, limits.max_line * 2, &line,
                                                   &len, &err);
                if (st == POP3_COMMAND_OK) {
                    if (line == NULL || strlen(line) != len || len > limits.max_line * 2 ||
                        memchr(line, '\r', len) != NULL)
                        abort();
                    free(line);
                }
            } else {
                struct pop3_command cmd;
                st = pop3_command_parser_next(parser, &in, &cmd, &err);
                if (st == POP3_COMMAND_OK) {
                    check_command(&cmd, &limits);
                    pop3_command_clear(&cmd);
                }
            }
            if (st == POP3_COMMAND_NEED_MORE)
                break;
            if (st == POP3_COMMAND_ERROR &&
                (err == POP3_CMDERR_NONE || strncmp(pop3_command_error_reply(err), "-ERR ", 5)))
                abort();
        }
        if (in.len > limits.max_line * 2 + 2)
            abort();
    }
    buf_free(&in);
    pop3_command_parser_destroy(&parser);
    return 0;
}
