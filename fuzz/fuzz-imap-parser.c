/* libFuzzer target for lib/imap_parser*.c. The input is a client stream
   fed in chunks whose sizes come from the first byte; the second byte
   picks the limits (small ones, so literal, line and list limits are
   hit) and whether APPEND messages are accepted or rejected. Raw-line
   reads (AUTHENTICATE/IDLE) are mixed in after some commands. Every
   result is walked and checked for invariants, then freed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "imap_parser.h"

#define CHECK(cond)        \
    do {                   \
        if (!(cond))       \
            abort();       \
    } while (0)

static size_t walked;

static void check_str(const char *s)
{
    if (s != NULL)
        walked += strlen(s);
}

static void check_set(const struct imap_seqset *set, const struct imap_parser_limits *lim)
{
    CHECK(set->count >= 1 && set->count <= lim->max_seqset && set->ranges != NULL);
    for (size_t i = 0; i < set->count; i++) {
        const struct imap_seq_range *r = &set->ranges[i];
        CHECK(r->last == IMAP_SEQ_STAR || (r->first != IMAP_SEQ_STAR && r->first <= r->last));
    }
    struct imap_seq_range *res;
    size_t n = imap_seqset_resolve(set, 1000, &res);
    for (size_t i = 0; i < n; i++) {
        CHECK(res[i].first >= 1 && res[i].first <= res[i].last);
        if (i > 0)
            CHECK(res[i].first > res[i - 1].last + 1ull);
        CHECK(imap_seqset_contains(res, n, res[i].first));
        CHECK(imap_seqset_contains(res, n, res[i].last));
    }
    free(res);
}

static size_t check_key(const struct imap_search_key *k, const struct imap_parser_limits *lim,
                        size_t depth)
{
    CHECK(depth <= lim->max_depth + 1);
    CHECK(k->type < IMAP_SEARCH_TYPE_COUNT);
    size_t nodes = 1;
    switch (k->type) {
    case IMAP_SEARCH_AND: {
        size_t count = 0;
        for (const struct imap_search_key *c = k->u.list.first; c; c = c->next) {
            nodes += check_key(c, lim, depth + 1);
            count++;
        }
        CHECK(count == k->u.list.count && count >= 1);
        break;
    }
    case IMAP_SEARCH_OR:
        nodes += check_key(k->u.either.a, lim, depth + 1);
        nodes += check_key(k->u.either.b, lim, depth + 1);
        break;
    case IMAP_SEARCH_NOT:
        nodes += check_key(k->u.negated, lim, depth + 1);
        break;
    case IMAP_SEARCH_SEQSET:
    case IMAP_SEARCH_UID:
        check_set(&k->u.set, lim);
        break;
    case IMAP_SEARCH_HEADER:
        CHECK(k->u.header.field && k->u.header.value);
        check_str(k->u.header.field);
        check_str(k->u.header.value);
        break;
    case IMAP_SEARCH_KEYWORD:
    case IMAP_SEARCH_UNKEYWORD:
    case IMAP_SEARCH_BCC:
    case IMAP_SEARCH_BODY:
    case IMAP_SEARCH_CC:
    case IMAP_SEARCH_FROM:
    case IMAP_SEARCH_SUBJECT:
    case IMAP_SEARCH_TEXT:
    case IMAP_SEARCH_TO:
        CHECK(k->u.string != NULL);
        check_str(k->u.string);
        break;
    case IMAP_SEARCH_BEFORE:
    case IMAP_SEARCH_ON:
    case IMAP_SEARCH_SINCE:
    case IMAP_SEARCH_SENTBEFORE:
    case IMAP_SEARCH_SENTON:
    case IMAP_SEARCH_SENTSINCE:
        CHECK(k->u.date.month >= 1 && k->u.date.month <= 12 && k->u.date.day >= 1 &&
              k->u.date.day <= 31);
        break;
    default:
        break;
    }
    return nodes;
}

static void check_flags(char **flags, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        CHECK(flags[i] != NULL && flags[i][0] != '\0');
        CHECK(strcmp(flags[i], "\\Recent") != 0);
        check_str(flags[i]);
    }
}

static void check_command(const struct imap_command *c, const struct imap_parser_limits *lim)
{
    CHECK(c->tag[0] != '\0' && strlen(c->tag) <= IMAP_TAG_MAX && !strchr(c->tag, ' '));
    CHECK(c->cmd > IMAP_CMD_UNKNOWN && c->cmd < IMAP_CMD_COUNT);
    switch (c->cmd) {
    case IMAP_CMD_LOGIN:
        CHECK(c->u.login.user && c->u.login.password);
        break;
    case IMAP_CMD_AUTHENTICATE:
        CHECK(c->u.authenticate.mechanism && c->u.authenticate.mechanism[0]);
        check_str(c->u.authenticate.initial_response);
        break;
    case IMAP_CMD_SELECT:
    case IMAP_CMD_EXAMINE:
        CHECK(c->u.select.mailbox != NULL);
        break;
    case IMAP_CMD_CREATE:
    case IMAP_CMD_DELETE:
    case IMAP_CMD_SUBSCRIBE:
    case IMAP_CMD_UNSUBSCRIBE:
        CHECK(c->u.mailbox.mailbox != NULL && !strpbrk(c->u.mailbox.mailbox, "\r\n"));
        break;
    case IMAP_CMD_RENAME:
        CHECK(c->u.rename.from && c->u.rename.to);
        break;
    case IMAP_CMD_LIST:
    case IMAP_CMD_LSUB:
        CHECK(c->u.list.reference && c->u.list.pattern);
        break;
    case IMAP_CMD_STATUS:
        CHECK(c->u.status.mailbox && c->u.status.items != 0 && c->u.status.items < 0x40);
        {
            /* The order lists each asked item once. */
            unsigned seen = 0;
            CHECK(c->u.status.norder >= 1 && c->u.status.norder <= 6);
            for (unsigned i = 0; i < c->u.status.norder; i++) {
                CHECK((c->u.status.order[i] & c->u.status.items) != 0);
                CHECK((c->u.status.order[i] & seen) == 0);
                seen |= c->u.status.order[i];
            }
            CHECK(seen == c->u.status.items);
        }
        break;
    case IMAP_CMD_APPEND:
        CHECK(c->u.append.mailbox != NULL);
        CHECK(c->u.append.message_size <= lim->max_append);
        check_flags(c->u.append.flags, c->u.append.nflags);
        break;
    case IMAP_CMD_SEARCH: {
        CHECK(c->u.search.root && c->u.search.root->type == IMAP_SEARCH_AND);
        size_t nodes = check_key(c->u.search.root, lim, 0);
        CHECK(nodes <= lim->max_search_nodes + 1);
        break;
    }
    case IMAP_CMD_FETCH:
        check_set(&c->u.fetch.set, lim);
        CHECK(c->u.fetch.count >= 1);
        for (size_t i = 0; i < c->u.fetch.count; i++) {
            const struct imap_fetch_att *a = &c->u.fetch.atts[i];
            CHECK(a->item < IMAP_FETCH_ITEM_COUNT);
            CHECK(a->nparts <= IMAP_SECTION_PARTS_MAX);
            for (size_t j = 0; j < a->nparts; j++)
                CHECK(a->parts[j] >= 1);
            CHECK(a->text != IMAP_SECTION_MIME || a->nparts > 0);
            CHECK((a->nfields > 0) == (a->text == IMAP_SECTION_HEADER_FIELDS ||
                                       a->text == IMAP_SECTION_HEADER_FIELDS_NOT));
            for (size_t j = 0; j < a->nfields; j++)
                CHECK(a->fields[j][0] != '\0' && !strchr(a->fields[j], ':'));
            CHECK(!a->partial || a->count >= 1);
        }
        break;
    case IMAP_CMD_STORE:
        check_set(&c->u.store.set, lim);
        check_flags(c->u.store.flags, c->u.store.nflags);
        break;
    case IMAP_CMD_COPY:
    case IMAP_CMD_MOVE:
        check_set(&c->u.copy.set, lim);
        CHECK(c->u.copy.mailbox != NULL);
        break;
    case IMAP_CMD_EXPUNGE:
        if (c->uid)
            check_set(&c->u.expunge.set, lim);
        break;
    case IMAP_CMD_ENABLE:
        CHECK(c->u.enable.count >= 1);
        for (size_t i = 0; i < c->u.enable.count; i++)
            check_str(c->u.enable.names[i]);
        break;
    case IMAP_CMD_ID:
        CHECK(c->u.id.count <= 30);
        for (size_t i = 0; i < c->u.id.count; i++) {
            CHECK(c->u.id.fields[i] != NULL && strlen(c->u.id.fields[i]) <= 30);
            CHECK(c->u.id.values[i] == NULL || strlen(c->u.id.values[i]) <= 1024);
        }
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct imap_parser_limits lim;
    imap_parser_limits_default(&lim);
    uint8_t mode = data[1];
    if (mode & 1) {
        lim.max_line = 64 + data[0];
        lim.max_literal = 16 + data[0] % 32;
        lim.max_literal_total = 40;
        lim.max_literals = 3;
        lim.max_append = 100;
        lim.max_tokens = 40;
        lim.max_seqset = 8;
        lim.max_search_nodes = 16;
        lim.max_depth = 4;
    }
    int reject = (mode >> 1) & 1;
    size_t chunk = (size_t)(data[0] % 17) + 1;
    if (mode & 4)
        chunk = size;
    data += 2;
    size -= 2;

    struct imap_parser *p = imap_parser_create(&lim);
    struct buf in;
    buf_init(&in, 0);
    size_t off = 0;
    unsigned step = 0;
    int appending = 0;
    uint64_t append_left = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        buf_append(&in, data + off, n);
        off += n;
        for (;;) {
            struct imap_parse_result res;
            enum imap_parse_status st;
            int raw = !appending && !imap_parser_busy(p) && ((mode >> 3) & 1) && (step % 5 == 4);
            step++;
            if (raw) {
                st = imap_parser_next_line(p, &in, 200, &res);
                if (st == IMAP_PARSE_LINE) {
                    CHECK(res.data && strlen(res.data) == res.data_len && res.data_len <= 200);
                    (void)imap_line_is_done(res.data, res.data_len);
                }
            } else {
                st = imap_parser_next(p, &in, &res);
            }
            if (st == IMAP_PARSE_NEED_MORE)
                break;
            switch (st) {
            case IMAP_PARSE_COMMAND:
                CHECK(res.command != NULL);
                check_command(res.command, &lim);
                if (res.command->cmd == IMAP_CMD_APPEND) {
                    CHECK(appending && append_left == 0);
                }
                appending = 0;
                imap_command_destroy(&res.command);
                CHECK(res.command == NULL);
                break;
            case IMAP_PARSE_APPEND_LITERAL:
                CHECK(!appending && res.command && res.command->cmd == IMAP_CMD_APPEND);
                CHECK(res.command->u.append.message_size <= lim.max_append);
                append_left = res.command->u.append.message_size;
                imap_command_destroy(&res.command);
                if (reject) {
                    imap_parser_reject_literal(p);
                } else {
                    appending = 1;
                }
                break;
            case IMAP_PARSE_LITERAL_DATA:
                CHECK(appending && res.data_len > 0 && res.data_len <= append_left);
                append_left -= res.data_len;
                break;
            case IMAP_PARSE_ERROR: {
                CHECK(res.command == NULL && res.error.code != IMAP_PERR_NONE);
                CHECK(res.error.text[0] != '\0');
                for (const char *t = res.error.text; *t; t++)
                    CHECK(*t >= 0x20 && *t < 0x7f);
                struct buf line;
                buf_init(&line, 0);
                imap_parse_error_format(&res.error, &line);
                CHECK(line.len > 2 && memchr(line.data, '\n', line.len - 1) == NULL);
                buf_free(&line);
                appending = 0;
                break;
            }
            case IMAP_PARSE_CONTINUE:
            case IMAP_PARSE_LINE:
                break;
            default:
                abort();
            }
        }
        CHECK(walked < SIZE_MAX);
    }
    buf_free(&in);
    imap_parser_destroy(&p);
    CHECK(p == NULL);
    return 0;
}
