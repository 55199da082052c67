/* Unit tests for lib/imap_parser*.c: every command's grammar (valid and
   invalid arguments side by side), literals ({n}, {n+}, refused before
   the data, split anywhere), APPEND streaming, sequence sets, SEARCH
   trees, FETCH sections, limits, NUL and 8-bit garbage, resync after
   errors. Every transcript test feeds the input whole and in chunks of
   1, 2, 3 and 7 bytes and must give the same transcript. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "imap_parser.h"

/* Rendering a command ------------------------------------------------ */

static void dump_str(struct buf *o, const char *s)
{
    if (s == NULL)
        buf_append_str(o, "NIL");
    else
        buf_printf(o, "\"%s\"", s);
}

static void dump_set(struct buf *o, const struct imap_seqset *set)
{
    for (size_t i = 0; i < set->count; i++) {
        const struct imap_seq_range *r = &set->ranges[i];
        if (i)
            buf_append_char(o, ',');
        if (r->first == IMAP_SEQ_STAR)
            buf_append_char(o, '*');
        else
            buf_printf(o, "%u", r->first);
        if (r->last != r->first) {
            if (r->last == IMAP_SEQ_STAR)
                buf_append_str(o, ":*");
            else
                buf_printf(o, ":%u", r->last);
        }
    }
}

static void dump_list(struct buf *o, char **items, size_t n)
{
    buf_append_char(o, '(');
    for (size_t i = 0; i < n; i++)
        buf_printf(o, "%s%s", i ? " " : "", items[i]);
    buf_append_char(o, ')');
}

static void dump_key(struct buf *o, const struct imap_search_key *k)
{
    const char *name = imap_search_type_name(k->type);
    switch (k->type) {
    case IMAP_SEARCH_AND:
        buf_append_char(o, '(');
        for (const struct imap_search_key *c = k->u.list.first; c; c = c->next) {
            if (c != k->u.list.first)
                buf_append_char(o, ' ');
            dump_key(o, c);
        }
        buf_append_char(o, ')');
        break;
    case IMAP_SEARCH_OR:
        buf_append_str(o, "OR{");
        dump_key(o, k->u.either.a);
        buf_append_char(o, ',');
        dump_key(o, k->u.either.b);
        buf_append_char(o, '}');
        break;
    case IMAP_SEARCH_NOT:
        buf_append_str(o, "NOT{");
        dump_key(o, k->u.negated);
        buf_append_char(o, '}');
        break;
    case IMAP_SEARCH_SEQSET:
    case IMAP_SEARCH_UID:
        buf_printf(o, "%s:", name);
        dump_set(o, &k->u.set);
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
        buf_printf(o, "%s:", name);
        dump_str(o, k->u.string);
        break;
    case IMAP_SEARCH_HEADER:
        buf_printf(o, "%s:", name);
        dump_str(o, k->u.header.field);
        buf_append_char(o, '=');
        dump_str(o, k->u.header.value);
        break;
    case IMAP_SEARCH_BEFORE:
    case IMAP_SEARCH_ON:
    case IMAP_SEARCH_SINCE:
    case IMAP_SEARCH_SENTBEFORE:
    case IMAP_SEARCH_SENTON:
    case IMAP_SEARCH_SENTSINCE:
        buf_printf(o, "%s:%04d-%02d-%02d", name, k->u.date.year, k->u.date.month, k->u.date.day);
        break;
    case IMAP_SEARCH_LARGER:
    case IMAP_SEARCH_SMALLER:
        buf_printf(o, "%s:%u", name, k->u.size);
        break;
    case IMAP_SEARCH_MODSEQ:
        buf_printf(o, "%s:%llu", name, (unsigned long long)k->u.modseq);
        break;
    default:
        buf_append_str(o, name);
        break;
    }
}

static const char *const fetch_names[] = {
    "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE",
    "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID", "SECTION", "MODSEQ"};
static const char *const section_names[] = {"", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT",
                                            "TEXT", "MIME"};

static void dump_att(struct buf *o, const struct imap_fetch_att *a)
{
    if (a->item != IMAP_FETCH_SECTION) {
        buf_append_str(o, fetch_names[a->item]);
        return;
    }
    buf_append_str(o, a->peek ? "BODY.PEEK[" : "BODY[");
    for (size_t i = 0; i < a->nparts; i++)
        buf_printf(o, "%s%u", i ? "." : "", a->parts[i]);
    if (a->nparts && a->text != IMAP_SECTION_WHOLE)
        buf_append_char(o, '.');
    buf_append_str(o, section_names[a->text]);
    if (a->nfields) {
        buf_append_char(o, ' ');
        dump_list(o, a->fields, a->nfields);
    }
    buf_append_char(o, ']');
    if (a->partial)
        buf_printf(o, "<%u.%u>", a->origin, a->count);
}

static void dump_command(struct buf *o, const struct imap_command *c)
{
    buf_printf(o, "%s %s%s", c->tag, c->uid ? "UID " : "", imap_cmd_name(c->cmd));
    switch (c->cmd) {
    case IMAP_CMD_AUTHENTICATE:
        buf_printf(o, " %s ", c->u.authenticate.mechanism);
        dump_str(o, c->u.authenticate.initial_response);
        break;
    case IMAP_CMD_LOGIN:
        buf_append_char(o, ' ');
        dump_str(o, c->u.login.user);
        buf_append_char(o, ' ');
        dump_str(o, c->u.login.password);
        break;
    case IMAP_CMD_SELECT:
    case IMAP_CMD_EXAMINE:
        buf_append_char(o, ' ');
        dump_str(o, c->u.select.mailbox);
        if (c->u.select.condstore)
            buf_append_str(o, " CONDSTORE");
        break;
    case IMAP_CMD_CREATE:
    case IMAP_CMD_DELETE:
    case IMAP_CMD_SUBSCRIBE:
    case IMAP_CMD_UNSUBSCRIBE:
        buf_append_char(o, ' ');
        dump_str(o, c->u.mailbox.mailbox);
        break;
    case IMAP_CMD_RENAME:
        buf_append_char(o, ' ');
        dump_str(o, c->u.rename.from);
        buf_append_char(o, ' ');
        dump_str(o, c->u.rename.to);
        break;
    case IMAP_CMD_LIST:
    case IMAP_CMD_LSUB:
        buf_append_char(o, ' ');
        dump_str(o, c->u.list.reference);
        buf_append_char(o, ' ');
        dump_str(o, c->u.list.pattern);
        break;
    case IMAP_CMD_STATUS:
        buf_append_char(o, ' ');
        dump_str(o, c->u.status.mailbox);
        buf_printf(o, " items=%#x order=", c->u.status.items);
        for (unsigned i = 0; i < c->u.status.norder; i++)
            buf_printf(o, "%s%#x", i ? "," : "", c->u.status.order[i]);
        break;
    case IMAP_CMD_APPEND:
        buf_append_char(o, ' ');
        dump_str(o, c->u.append.mailbox);
        buf_append_char(o, ' ');
        dump_list(o, c->u.append.flags, c->u.append.nflags);
        if (c->u.append.has_date) {
            const struct imap_datetime *d = &c->u.append.date;
            buf_printf(o, " %04d-%02d-%02dT%02d:%02d:%02d%+d", d->date.year, d->date.month,
                       d->date.day, d->hour, d->min, d->sec, d->zone_minutes);
        }
        buf_printf(o, " size=%llu%s", (unsigned long long)c->u.append.message_size,
                   c->u.append.sync ? "" : "+");
        break;
    case IMAP_CMD_SEARCH:
        if (c->u.search.charset)
            buf_printf(o, " CHARSET=%s", c->u.search.charset);
        buf_append_char(o, ' ');
        dump_key(o, c->u.search.root);
        break;
    case IMAP_CMD_FETCH:
        buf_append_char(o, ' ');
        dump_set(o, &c->u.fetch.set);
        buf_printf(o, " m%d", (int)c->u.fetch.macro);
        for (size_t i = 0; i < c->u.fetch.count; i++) {
            buf_append_char(o, ' ');
            dump_att(o, &c->u.fetch.atts[i]);
        }
        if (c->u.fetch.has_changedsince)
            buf_printf(o, " changedsince=%llu", (unsigned long long)c->u.fetch.changedsince);
        break;
    case IMAP_CMD_STORE:
        buf_append_char(o, ' ');
        dump_set(o, &c->u.store.set);
        buf_printf(o, " %s%s ", c->u.store.op == IMAP_STORE_ADD      ? "+"
                               : c->u.store.op == IMAP_STORE_REMOVE ? "-"
                                                                    : "=",
                   c->u.store.silent ? "silent" : "");
        dump_list(o, c->u.store.flags, c->u.store.nflags);
        if (c->u.store.has_unchangedsince)
            buf_printf(o, " unchangedsince=%llu", (unsigned long long)c->u.store.unchangedsince);
        break;
    case IMAP_CMD_COPY:
    case IMAP_CMD_MOVE:
        buf_append_char(o, ' ');
        dump_set(o, &c->u.copy.set);
        buf_append_char(o, ' ');
        dump_str(o, c->u.copy.mailbox);
        break;
    case IMAP_CMD_EXPUNGE:
        if (c->uid) {
            buf_append_char(o, ' ');
            dump_set(o, &c->u.expunge.set);
        }
        break;
    case IMAP_CMD_ENABLE:
        buf_append_char(o, ' ');
        dump_list(o, c->u.enable.names, c->u.enable.count);
        break;
    case IMAP_CMD_ID:
        if (c->u.id.nil) {
            buf_append_str(o, " NIL");
            break;
        }
        for (size_t i = 0; i < c->u.id.count; i++) {
            buf_append_char(o, ' ');
            dump_str(o, c->u.id.fields[i]);
            buf_append_char(o, '=');
            dump_str(o, c->u.id.values[i]);
        }
        break;
    default:
        break;
    }
}

/* Transcripts -------------------------------------------------------- */

static struct imap_parser_limits test_limits;
static int reject_appends;   /* answer APPEND_LITERAL with imap_parser_reject_literal() */

static void flush_data(struct buf *out, struct buf *data, int *in_data)
{
    if (!*in_data)
        return;
    buf_printf(out, "DATA %zu:", data->len);
    buf_append(out, data->data, data->len);
    buf_append_char(out, '\n');
    buf_reset(data);
    *in_data = 0;
}

static void drain(struct imap_parser *p, struct buf *in, struct buf *out, struct buf *data,
                  int *in_data)
{
    for (;;) {
        struct imap_parse_result res;
        enum imap_parse_status st = imap_parser_next(p, in, &res);
        if (st == IMAP_PARSE_NEED_MORE)
            return;
        if (st == IMAP_PARSE_LITERAL_DATA) {
            assert_true(res.data_len > 0);
            buf_append(data, res.data, res.data_len);
            *in_data = 1;
            continue;
        }
        flush_data(out, data, in_data);
        switch (st) {
        case IMAP_PARSE_COMMAND:
            dump_command(out, res.command);
            buf_append_char(out, '\n');
            imap_command_destroy(&res.command);
            assert_null(res.command);
            break;
        case IMAP_PARSE_APPEND_LITERAL:
            buf_append_str(out, "APPEND-LITERAL ");
            dump_command(out, res.command);
            buf_append_char(out, '\n');
            imap_command_destroy(&res.command);
            if (reject_appends) {
                imap_parser_reject_literal(p);
                buf_append_str(out, "REJECTED\n");
            } else {
                *in_data = 1;   /* an empty DATA line for {0} */
            }
            break;
        case IMAP_PARSE_ERROR: {
            assert_null(res.command);
            assert_int_not_equal(res.error.code, IMAP_PERR_NONE);
            struct buf line;
            buf_init(&line, 0);
            imap_parse_error_format(&res.error, &line);
            assert_true(line.len >= 2 && memcmp(line.data + line.len - 2, "\r\n", 2) == 0);
            buf_append_str(out, "ERR ");
            buf_append(out, line.data, line.len - 2);
            buf_append_char(out, '\n');
            buf_free(&line);
            break;
        }
        case IMAP_PARSE_CONTINUE:
            buf_append_str(out, "+\n");
            break;
        default:
            fail_msg("unexpected status %d", (int)st);
        }
    }
}

static char *run(const char *text, size_t len, size_t chunk)
{
    struct imap_parser *p = imap_parser_create(&test_limits);
    struct buf in, out, data;
    buf_init(&in, 0);
    buf_init(&out, 0);
    buf_init(&data, 0);
    int in_data = 0;
    size_t fed = 0;
    do {
        size_t n = chunk == 0 ? len - fed : (len - fed < chunk ? len - fed : chunk);
        buf_append(&in, text + fed, n);
        fed += n;
        drain(p, &in, &out, &data, &in_data);
    } while (fed < len);
    flush_data(&out, &data, &in_data);
    if (imap_parser_busy(p))
        buf_append_str(&out, "BUSY\n");
    imap_parser_destroy(&p);
    assert_null(p);
    buf_free(&in);
    buf_free(&data);
    return buf_steal(&out);
}

static void check_len(const char *input, size_t len, const char *expected)
{
    static const size_t chunks[] = {0, 1, 2, 3, 7};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        char *got = run(input, len, chunks[i]);
        if (strcmp(got, expected) != 0) {
            /* cmocka's message buffer is short: print the whole thing. */
            fprintf(stderr, "input '%.200s' (chunk %zu):\n got: %s\nwant: %s", input, chunks[i],
                    got, expected);
            free(got);
            fail();
        } else {
            free(got);
        }
    }
}

static void check(const char *input, const char *expected)
{
    check_len(input, strlen(input), expected);
}

/* For inputs holding NUL bytes. */
#define check_bin(input, expected) check_len(input, sizeof(input) - 1, expected)

static int setup(void **state)
{
    (void)state;
    imap_parser_limits_default(&test_limits);
    reject_appends = 0;
    return 0;
}

static char *repeat(const char *head, char c, size_t n, const char *tail)
{
    size_t h = strlen(head), t = strlen(tail);
    char *s = malloc(h + n + t + 1);
    memcpy(s, head, h);
    memset(s + h, c, n);
    memcpy(s + h + n, tail, t + 1);
    return s;
}

/* Tests ------------------------------------------------------------- */

static void test_commands_without_arguments(void **state)
{
    (void)state;
    check("a1 CAPABILITY\r\nA2 noop\r\nx.3 Logout\r\n",
          "a1 CAPABILITY\nA2 NOOP\nx.3 LOGOUT\n");
    check("1 STARTTLS\r\n2 CHECK\r\n3 CLOSE\r\n4 EXPUNGE\r\n5 IDLE\r\n6 UNSELECT\r\n"
          "7 NAMESPACE\r\n",
          "1 STARTTLS\n2 CHECK\n3 CLOSE\n4 EXPUNGE\n5 IDLE\n6 UNSELECT\n7 NAMESPACE\n");
    /* Bare LF, and empty lines between commands are ignored. */
    check("\r\n\nA NOOP\n\r\nB NOOP\r\n", "A NOOP\nB NOOP\n");
    check("A NOOP x\r\nB CAPABILITY \r\nC LOGOUT(\r\n",
          "ERR A BAD Error in IMAP command NOOP: Unexpected extra arguments\n"
          "ERR B BAD Error in IMAP command CAPABILITY: Unexpected extra arguments\n"
          "ERR C BAD Unknown command\n");
}

static void test_tags_and_unknown_commands(void **state)
{
    (void)state;
    check("A1 XYZZY\r\nA2 NOOP\r\n", "ERR A1 BAD Unknown command\nA2 NOOP\n");
    check("A1\r\n", "ERR A1 BAD Missing command\n");
    check(" NOOP\r\n+A NOOP\r\n(x NOOP\r\n*\r\n", "ERR * BAD Missing or invalid tag\n"
                                                   "ERR * BAD Missing or invalid tag\n"
                                                   "ERR * BAD Missing or invalid tag\n"
                                                   "ERR * BAD Missing or invalid tag\n");
    check("A]b NOOP\r\na+b NOOP\r\n", "A]b NOOP\nERR * BAD Missing or invalid tag\n");
    char *longtag = repeat("", 't', IMAP_TAG_MAX, " NOOP\r\n");
    char *want = repeat("", 't', IMAP_TAG_MAX, " NOOP\n");
    check(longtag, want);
    free(longtag);
    free(want);
    longtag = repeat("", 't', IMAP_TAG_MAX + 1, " NOOP\r\nB NOOP\r\n");
    check(longtag, "ERR * BAD Missing or invalid tag\nB NOOP\n");
    free(longtag);
    check("A UID\r\nB UID NOOP\r\nC UID FETCHX 1 FLAGS\r\nD uid fetch 1 uid\r\n",
          "ERR A BAD Error in IMAP command UID: Missing UID command\n"
          "ERR B BAD Error in IMAP command UID: Unknown UID command\n"
          "ERR C BAD Error in IMAP command UID: Unknown UID command\n"
          "D UID FETCH 1 m0 UID\n");
}

static void test_login_and_authenticate(void **state)
{
    (void)state;
    check("A LOGIN bob secret\r\n", "A LOGIN \"bob\" \"secret\"\n");
    check("A LOGIN \"bob smith\" \"p\\\"w\\\\d\"\r\n", "A LOGIN \"bob smith\" \"p\"w\\d\"\n");
    check("A LOGIN \"\" x]y\r\n", "A LOGIN \"\" \"x]y\"\n");
    check("A LOGIN {3}\r\nbob {4+}\r\np w!\r\n", "+\nA LOGIN \"bob\" \"p w!\"\n");
    check("A LOGIN bob\r\nB LOGIN\r\nC LOGIN bob pw x\r\nD LOGIN bob (pw)\r\n",
          "ERR A BAD Error in IMAP command LOGIN: Missing arguments\n"
          "ERR B BAD Error in IMAP command LOGIN: Missing arguments\n"
          "ERR C BAD Error in IMAP command LOGIN: Unexpected extra arguments\n"
          "ERR D BAD Error in IMAP command LOGIN: Invalid characters in atom\n");
    check("A LOGIN \"bob\\x\" pw\r\nB LOGIN \"bob pw\r\n",
          "ERR A BAD Error in IMAP command LOGIN: Invalid escape in quoted string\n"
          "ERR B BAD Error in IMAP command LOGIN: Unterminated quoted string\n");
    check("A AUTHENTICATE plain\r\nB AUTHENTICATE PLAIN AGJvYgBwdw==\r\n"
          "C AUTHENTICATE XOAUTH2 =\r\n",
          "A AUTHENTICATE PLAIN NIL\nB AUTHENTICATE PLAIN \"AGJvYgBwdw==\"\n"
          "C AUTHENTICATE XOAUTH2 \"\"\n");
    check("A AUTHENTICATE\r\nB AUTHENTICATE PLAIN AGJ\r\nC AUTHENTICATE PLAIN a=bc\r\n"
          "D AUTHENTICATE PLAIN AGJv x\r\nE AUTHENTICATE \"PLAIN\"\r\n",
          "ERR A BAD Error in IMAP command AUTHENTICATE: Missing arguments\n"
          "ERR B BAD Error in IMAP command AUTHENTICATE: Invalid base64 initial response\n"
          "ERR C BAD Error in IMAP command AUTHENTICATE: Invalid base64 initial response\n"
          "ERR D BAD Error in IMAP command AUTHENTICATE: Unexpected extra arguments\n"
          "ERR E BAD Error in IMAP command AUTHENTICATE: Invalid atom\n");
}

static void test_mailbox_commands(void **state)
{
    (void)state;
    check("A SELECT inbox\r\nB EXAMINE \"Sent Items\"\r\nC SELECT INBOX (CONDSTORE)\r\n"
          "D SELECT {5+}\r\nInBoX\r\n",
          "A SELECT \"INBOX\"\nB EXAMINE \"Sent Items\"\nC SELECT \"INBOX\" CONDSTORE\n"
          "D SELECT \"INBOX\"\n");
    check("A CREATE INBOX.a&AOk-t&AOk-\r\nB DELETE \"x&-y\"\r\nC SUBSCRIBE a\r\n"
          "D UNSUBSCRIBE \"\"\r\nE RENAME old new\r\n",
          "A CREATE \"INBOX.a&AOk-t&AOk-\"\nB DELETE \"x&-y\"\nC SUBSCRIBE \"a\"\n"
          "D UNSUBSCRIBE \"\"\nE RENAME \"old\" \"new\"\n");
    /* Modified UTF-7: unterminated, encoded ASCII, bad base64, lone
       surrogate, 8-bit, control characters. */
    check("A CREATE a&AOk\r\nB CREATE &AGE-\r\nC CREATE &A.k-\r\nD CREATE &2D0-\r\n"
          "E CREATE \"caf\xc3\xa9\"\r\nF CREATE {3}\r\na\tb\r\nG CREATE &AO-\r\n",
          "ERR A NO Mailbox name is not valid modified UTF-7\n"
          "ERR B NO Mailbox name is not valid modified UTF-7\n"
          "ERR C NO Mailbox name is not valid modified UTF-7\n"
          "ERR D NO Mailbox name is not valid modified UTF-7\n"
          "ERR E NO Mailbox name is not valid modified UTF-7\n"
          "+\nERR F NO Mailbox name is not valid modified UTF-7\n"
          "ERR G NO Mailbox name is not valid modified UTF-7\n");
    check("A SELECT\r\nB SELECT a b\r\nC SELECT a (QRESYNC)\r\nD SELECT a (CONDSTORE\r\n"
          "E RENAME a\r\nF CREATE a*\r\n",
          "ERR A BAD Error in IMAP command SELECT: Missing arguments\n"
          "ERR B BAD Error in IMAP command SELECT: Expected '('\n"
          "ERR C BAD Error in IMAP command SELECT: Unknown select parameter\n"
          "ERR D BAD Error in IMAP command SELECT: Expected ')'\n"
          "ERR E BAD Error in IMAP command RENAME: Missing arguments\n"
          "ERR F BAD Error in IMAP command CREATE: Unexpected extra arguments\n");
}

static void test_mailbox_name_valid(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int valid;
    } cases[] = {
        {"", 1}, {"INBOX", 1}, {"a.b c", 1}, {"%*", 1}, {"x&-y", 1},
        {"a&AOk-t&AOk-", 1}, {"&2D3eAQ-", 1},     /* a surrogate pair */
        {"a&AOk", 0}, {"&AGE-", 0}, {"&A.k-", 0}, {"&2D0-", 0}, {"&AO-", 0},
        {"&", 0}, {"&-&", 0}, {"caf\xc3\xa9", 0}, {"a\tb", 0}, {"a\x7f", 0},
        {"!#$&'+,-.0123456789:;<=>?@^_`|[}%*", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (imap_mailbox_name_valid(cases[i].name, strlen(cases[i].name)) != cases[i].valid)
            fail_msg("\"%s\": expected %d", cases[i].name, cases[i].valid);
}

static void test_list_lsub_status(void **state)
{
    (void)state;
    check("A LIST \"\" *\r\nB LIST \"\" %\r\nC LSUB INBOX. %.a]*\r\nD LIST {0}\r\n {3}\r\na.%\r\n",
          "A LIST \"\" \"*\"\nB LIST \"\" \"%\"\nC LSUB \"INBOX.\" \"%.a]*\"\n+\n+\n"
          "D LIST \"\" \"a.%\"\n");
    /* Reference and pattern are not checked for modified UTF-7 (imapd
       lists nothing for them); "inbox" as the reference is INBOX. */
    check("A LIST \"\" !#$&'+,-.0123456789:;<=>?@^_`|[}%*\r\n"
          "B LSUB a&AOk x&\r\nC LIST inbox \"caf\xc3\xa9*\"\r\nD LIST {3}\r\n&2D {2}\r\n&*\r\n",
          "A LIST \"\" \"!#$&'+,-.0123456789:;<=>?@^_`|[}%*\"\nB LSUB \"a&AOk\" \"x&\"\n"
          "C LIST \"INBOX\" \"caf\xc3\xa9*\"\n+\n+\nD LIST \"&2D\" \"&*\"\n");
    /* ... while the other commands' mailbox arguments are */
    check("A STATUS a&AOk (MESSAGES)\r\nB SELECT x&\r\n",
          "ERR A NO Mailbox name is not valid modified UTF-7\n"
          "ERR B NO Mailbox name is not valid modified UTF-7\n");
    check("A LIST \"\"\r\nB LIST \"\" (x)\r\nC LIST * x\r\n",
          "ERR A BAD Error in IMAP command LIST: Missing arguments\n"
          "ERR B BAD Error in IMAP command LIST: Invalid mailbox pattern\n"
          "ERR C BAD Error in IMAP command LIST: Invalid characters in atom\n");
    check("A STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)\r\n"
          "B STATUS x (highestmodseq messages)\r\nC STATUS x (UNSEEN MESSAGES UNSEEN)\r\n",
          "A STATUS \"INBOX\" items=0x1f order=0x1,0x2,0x4,0x8,0x10\n"
          "B STATUS \"x\" items=0x21 order=0x20,0x1\n"
          "C STATUS \"x\" items=0x11 order=0x10,0x1\n");
    check("A STATUS INBOX ()\r\nB STATUS INBOX (SIZE)\r\nC STATUS INBOX MESSAGES\r\n"
          "D STATUS INBOX (MESSAGES\r\nE STATUS INBOX (MESSAGES  UNSEEN)\r\n",
          "ERR A BAD Error in IMAP command STATUS: Unknown status item\n"
          "ERR B BAD Error in IMAP command STATUS: Unknown status item\n"
          "ERR C BAD Error in IMAP command STATUS: Expected '('\n"
          "ERR D BAD Error in IMAP command STATUS: Expected ')'\n"
          "ERR E BAD Error in IMAP command STATUS: Unknown status item\n");
}

static void test_append_streams_the_message(void **state)
{
    (void)state;
    /* Synchronizing: preview, "+" is imapd's job, data, then the command. */
    check("A APPEND INBOX {5}\r\nHello\r\nB NOOP\r\n",
          "APPEND-LITERAL A APPEND \"INBOX\" () size=5\nDATA 5:Hello\n"
          "A APPEND \"INBOX\" () size=5\nB NOOP\n");
    /* Flags, date-time, LITERAL+; the data may hold CRLF and "{3}". */
    check("A APPEND Drafts (\\Seen \\draft $Label) \" 7-Feb-1994 21:52:25 -0800\" {12+}\r\n"
          "a\r\n{3}\r\nA1 X\r\n",
          "APPEND-LITERAL A APPEND \"Drafts\" (\\Seen \\Draft $Label) "
          "1994-02-07T21:52:25-480 size=12+\n"
          "DATA 12:a\r\n{3}\r\nA1 X\n"
          "A APPEND \"Drafts\" (\\Seen \\Draft $Label) 1994-02-07T21:52:25-480 size=12+\n");
    check("A APPEND x () \"29-Feb-2024 00:00:00 +0130\" {0}\r\n\r\n",
          "APPEND-LITERAL A APPEND \"x\" () 2024-02-29T00:00:00+90 size=0\nDATA 0:\n"
          "A APPEND \"x\" () 2024-02-29T00:00:00+90 size=0\n");
    /* The mailbox as a literal first, then the message. */
    check("A APPEND {5}\r\nINBOX {2}\r\nhi\r\n",
          "+\nAPPEND-LITERAL A APPEND \"INBOX\" () size=2\nDATA 2:hi\n"
          "A APPEND \"INBOX\" () size=2\n");
    /* After the message: trailing garbage, a second message (MULTIAPPEND
       is not offered), NUL in the message. */
    check("A APPEND x {2}\r\nhi x\r\nB NOOP\r\n",
          "APPEND-LITERAL A APPEND \"x\" () size=2\nDATA 2:hi\n"
          "ERR A BAD Error in IMAP command APPEND: Unexpected extra arguments\nB NOOP\n");
    check("A APPEND x {2}\r\nhi {2+}\r\nzz\r\nB NOOP\r\n",
          "APPEND-LITERAL A APPEND \"x\" () size=2\nDATA 2:hi\n"
          "ERR A BAD Error in IMAP command APPEND: Unexpected extra arguments\nB NOOP\n");
    check_bin("A APPEND x {3}\r\na\0b\r\nB NOOP\r\n",
              "APPEND-LITERAL A APPEND \"x\" () size=3\nDATA 3:a\0b\n"
              "ERR A BAD NUL byte in message literal\nB NOOP\n");
}

static void test_append_invalid_arguments(void **state)
{
    (void)state;
    check("A APPEND x\r\nB APPEND x \"hello\"\r\nC APPEND x (\\Recent) {1}\r\n"
          "D APPEND x (\\Foo) {1+}\r\nz\r\nE APPEND x \"1-Jan-2020 25:00:00 +0000\" {1}\r\n"
          "F APPEND x \"31-Apr-2020 10:00:00 +0000\" {1}\r\nG APPEND x hello\r\n"
          "H APPEND x () () {1}\r\nI APPEND x (a b {1}\r\n",
          "ERR A BAD Error in IMAP command APPEND: Missing arguments\n"
          "ERR B BAD Error in IMAP command APPEND: Invalid date-time\n"
          "ERR C BAD Error in IMAP command APPEND: The \\Recent flag cannot be set\n"
          "ERR D BAD Error in IMAP command APPEND: Unknown system flag\n"
          "ERR E BAD Error in IMAP command APPEND: Invalid date-time\n"
          "ERR F BAD Error in IMAP command APPEND: Invalid date-time\n"
          "ERR G BAD Error in IMAP command APPEND: Expected a message literal\n"
          "ERR H BAD Error in IMAP command APPEND: Expected a message literal\n"
          "ERR I BAD Error in IMAP command APPEND: Invalid flag\n");
}

static void test_append_over_limit_is_refused_before_the_data(void **state)
{
    (void)state;
    test_limits.max_append = 10;
    /* {n}: refused, no data follows; the next line is a new command. */
    check("A APPEND x {11}\r\nB NOOP\r\n", "ERR A NO [TOOBIG] Message too large\nB NOOP\n");
    /* {n+}: the data comes anyway and is skipped, with the line's rest. */
    check("A APPEND x {11+}\r\nC NOOP\r\nxyz\r\nB NOOP\r\n",
          "ERR A NO [TOOBIG] Message too large\nB NOOP\n");
    check("A APPEND x {10}\r\n0123456789\r\n",
          "APPEND-LITERAL A APPEND \"x\" () size=10\nDATA 10:0123456789\n"
          "A APPEND \"x\" () size=10\n");
    test_limits.max_append = 0;
    check("A APPEND x {0}\r\n\r\n", "APPEND-LITERAL A APPEND \"x\" () size=0\nDATA 0:\n"
                                    "A APPEND \"x\" () size=0\n");
}

static void test_append_rejected_by_imapd(void **state)
{
    (void)state;
    reject_appends = 1;
    check("A APPEND nosuch {5}\r\nB NOOP\r\n",
          "APPEND-LITERAL A APPEND \"nosuch\" () size=5\nREJECTED\nB NOOP\n");
    check("A APPEND nosuch {5+}\r\nC NOO {2+}\r\nP\r\nD NOOP\r\n",
          "APPEND-LITERAL A APPEND \"nosuch\" () size=5+\nREJECTED\nD NOOP\n");
}

static void test_fetch_items_and_macros(void **state)
{
    (void)state;
    check("A FETCH 1 ALL\r\nB FETCH 1:* fast\r\nC FETCH * FULL\r\n",
          "A FETCH 1 m1 FLAGS INTERNALDATE RFC822.SIZE ENVELOPE\n"
          "B FETCH 1:* m2 FLAGS INTERNALDATE RFC822.SIZE\n"
          "C FETCH * m3 FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY\n");
    check("A FETCH 2 (FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE RFC822.TEXT "
          "ENVELOPE BODY BODYSTRUCTURE UID MODSEQ)\r\nB FETCH 3 uid\r\n",
          "A FETCH 2 m0 FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE RFC822.TEXT "
          "ENVELOPE BODY BODYSTRUCTURE UID MODSEQ\nB FETCH 3 m0 UID\n");
    check("A FETCH 1 (BODY[] BODY.PEEK[HEADER] BODY[TEXT]<0.2048> body[1.2.3] "
          "BODY[1.MIME] BODY.PEEK[2.HEADER.FIELDS (From To \"Subject\")] "
          "BODY[HEADER.FIELDS.NOT ({10}\r\nMessage-ID)]<100.1> BODY[4.2.TEXT])\r\n",
          "+\nA FETCH 1 m0 BODY[] BODY.PEEK[HEADER] BODY[TEXT]<0.2048> BODY[1.2.3] "
          "BODY[1.MIME] BODY.PEEK[2.HEADER.FIELDS (From To Subject)] "
          "BODY[HEADER.FIELDS.NOT (Message-ID)]<100.1> BODY[4.2.TEXT]\n");
    check("A FETCH 1:5 (FLAGS) (CHANGEDSINCE 12345)\r\nB UID FETCH 1 BODY.PEEK[]\r\n",
          "A FETCH 1:5 m0 FLAGS changedsince=12345\nB UID FETCH 1 m0 BODY.PEEK[]\n");
}

static void test_fetch_invalid_arguments(void **state)
{
    (void)state;
    check("A FETCH 1\r\nB FETCH 1 (ALL)\r\nC FETCH 1 BODY.PEEK\r\nD FETCH 1 BODY[MIME]\r\n"
          "E FETCH 1 BODY[1.]\r\nF FETCH 1 BODY[0]\r\nG FETCH 1 BODY[HEADER.FIELDS]\r\n"
          "H FETCH 1 BODY[HEADER.FIELDS ()]\r\nI FETCH 1 BODY[TEXT]<1>\r\n"
          "J FETCH 1 BODY[TEXT]<1.0>\r\nK FETCH 1 (FLAGS\r\nL FETCH 1 FLAGS)\r\n"
          "M FETCH 1 BODY[HEADER.FIELDS (a:b)]\r\nN FETCH 1 (FLAGS) (CHANGEDSINCE 0)\r\n"
          "O FETCH 1 FOO\r\nP FETCH 1 BODY[TEXT\r\nQ FETCH 1 ()\r\n",
          "ERR A BAD Error in IMAP command FETCH: Missing arguments\n"
          "ERR B BAD Error in IMAP command FETCH: Unknown fetch attribute\n"
          "ERR C BAD Error in IMAP command FETCH: BODY.PEEK needs a section\n"
          "ERR D BAD Error in IMAP command FETCH: Invalid section\n"
          "ERR E BAD Error in IMAP command FETCH: Invalid section\n"
          "ERR F BAD Error in IMAP command FETCH: Invalid number\n"
          "ERR G BAD Error in IMAP command FETCH: Expected a space\n"
          "ERR H BAD Error in IMAP command FETCH: Invalid characters in atom\n"
          "ERR I BAD Error in IMAP command FETCH: Expected '.' in partial\n"
          "ERR J BAD Error in IMAP command FETCH: Invalid number\n"
          "ERR K BAD Error in IMAP command FETCH: Expected ')' after fetch attributes\n"
          "ERR L BAD Error in IMAP command FETCH: Invalid fetch attribute\n"
          "ERR M BAD Error in IMAP command FETCH: Invalid header field name\n"
          "ERR N BAD Error in IMAP command FETCH: Invalid mod-sequence\n"
          "ERR O BAD Error in IMAP command FETCH: Unknown fetch attribute\n"
          "ERR P BAD Error in IMAP command FETCH: Expected ']' after section\n"
          "ERR Q BAD Error in IMAP command FETCH: Invalid fetch attribute\n");
    /* Section part numbers are bounded. */
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "A FETCH 1 BODY[1");
    for (int i = 1; i < IMAP_SECTION_PARTS_MAX; i++)
        buf_append_str(&b, ".1");
    buf_append_str(&b, "]\r\nB FETCH 1 BODY[1");
    for (int i = 1; i <= IMAP_SECTION_PARTS_MAX; i++)
        buf_append_str(&b, ".1");
    buf_append_str(&b, "]\r\n");
    char *got = run(b.data, b.len, 0);
    assert_non_null(strstr(got, "A FETCH 1 m0 BODY[1.1.1."));
    assert_non_null(
        strstr(got, "ERR B BAD Error in IMAP command FETCH: Too many section part numbers\n"));
    free(got);
    buf_free(&b);
}

static void test_store(void **state)
{
    (void)state;
    check("A STORE 1 FLAGS (\\Seen)\r\nB STORE 1:3 +FLAGS.SILENT (\\Deleted $Junk)\r\n"
          "C STORE 2 -flags \\Flagged \\Answered\r\nD STORE 1 FLAGS ()\r\n"
          "E UID STORE 5 (UNCHANGEDSINCE 0) +FLAGS \\Seen\r\n",
          "A STORE 1 = (\\Seen)\nB STORE 1:3 +silent (\\Deleted $Junk)\n"
          "C STORE 2 - (\\Flagged \\Answered)\nD STORE 1 = ()\n"
          "E UID STORE 5 + (\\Seen) unchangedsince=0\n");
    check("A STORE 1 FLAGS\r\nB STORE 1 FLAG (\\Seen)\r\nC STORE 1 +FLAGS (\\Recent)\r\n"
          "D STORE 1 FLAGS (\\Seen\r\nE STORE 1 FLAGS \\Seen)\r\nF STORE 1 *FLAGS x\r\n"
          "G STORE 1 (UNCHANGEDSINCE x) FLAGS y\r\nH STORE x FLAGS y\r\n",
          "ERR A BAD Error in IMAP command STORE: Missing arguments\n"
          "ERR B BAD Error in IMAP command STORE: Invalid store attribute\n"
          "ERR C BAD Error in IMAP command STORE: The \\Recent flag cannot be set\n"
          "ERR D BAD Error in IMAP command STORE: Missing ')'\n"
          "ERR E BAD Error in IMAP command STORE: Unexpected ')'\n"
          "ERR F BAD Error in IMAP command STORE: Invalid store attribute\n"
          "ERR G BAD Error in IMAP command STORE: Invalid mod-sequence\n"
          "ERR H BAD Error in IMAP command STORE: Invalid sequence set\n");
}

static void test_copy_move_expunge_uid(void **state)
{
    (void)state;
    check("A COPY 1:3 Trash\r\nB MOVE 2,4 \"Archive 2024\"\r\nC UID COPY 10:* INBOX\r\n"
          "D UID MOVE 7 inbox\r\nE UID EXPUNGE 3:1,9\r\nF EXPUNGE\r\nG UID SEARCH ALL\r\n",
          "A COPY 1:3 \"Trash\"\nB MOVE 2,4 \"Archive 2024\"\nC UID COPY 10:* \"INBOX\"\n"
          "D UID MOVE 7 \"INBOX\"\nE UID EXPUNGE 1:3,9\nF EXPUNGE\nG UID SEARCH (ALL)\n");
    check("A COPY 1\r\nB MOVE x y\r\nC UID EXPUNGE\r\nD EXPUNGE 1\r\nE UID CAPABILITY\r\n"
          "F COPY 1 a b\r\n",
          "ERR A BAD Error in IMAP command COPY: Missing arguments\n"
          "ERR B BAD Error in IMAP command MOVE: Invalid sequence set\n"
          "ERR C BAD Error in IMAP command UID EXPUNGE: Missing arguments\n"
          "ERR D BAD Error in IMAP command EXPUNGE: Unexpected extra arguments\n"
          "ERR E BAD Error in IMAP command UID: Unknown UID command\n"
          "ERR F BAD Error in IMAP command COPY: Unexpected extra arguments\n");
}

static void test_search_every_key(void **state)
{
    (void)state;
    check("A SEARCH ALL ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN UNANSWERED "
          "UNDELETED UNDRAFT UNFLAGGED UNSEEN\r\n",
          "A SEARCH (ALL ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN UNANSWERED "
          "UNDELETED UNDRAFT UNFLAGGED UNSEEN)\n");
    check("A SEARCH BCC a CC \"b c\" FROM {3}\r\nx@y TO to SUBJECT s BODY \"\" TEXT t\r\n",
          "+\nA SEARCH (BCC:\"a\" CC:\"b c\" FROM:\"x@y\" TO:\"to\" SUBJECT:\"s\" BODY:\"\" "
          "TEXT:\"t\")\n");
    check("A search before 1-Feb-1994 On \"07-feb-1994\" SINCE 31-Dec-2023 SENTBEFORE 1-Jan-2000 "
          "SENTON 29-Feb-2000 SENTSINCE 9-Sep-2009\r\n",
          "A SEARCH (BEFORE:1994-02-01 ON:1994-02-07 SINCE:2023-12-31 SENTBEFORE:2000-01-01 "
          "SENTON:2000-02-29 SENTSINCE:2009-09-09)\n");
    check("A SEARCH HEADER Message-ID <x@y> KEYWORD $Junk UNKEYWORD foo LARGER 100 "
          "SMALLER 4294967295 UID 1:*,5 2,4:3 * MODSEQ 7 MODSEQ \"/flags/\\\\draft\" all 0\r\n",
          "A SEARCH (HEADER:\"Message-ID\"=\"<x@y>\" KEYWORD:\"$Junk\" UNKEYWORD:\"foo\" "
          "LARGER:100 SMALLER:4294967295 UID:1:*,5 SEQSET:2,3:4 SEQSET:* MODSEQ:7 "
          "MODSEQ:0)\n");
}

static void test_search_trees(void **state)
{
    (void)state;
    check("A SEARCH OR FROM a TO b\r\n", "A SEARCH (OR{FROM:\"a\",TO:\"b\"})\n");
    check("A SEARCH NOT NOT SEEN\r\n", "A SEARCH (NOT{NOT{SEEN}})\n");
    check("A SEARCH OR (SEEN FLAGGED) NOT (DELETED OR 1 2) UNSEEN\r\n",
          "A SEARCH (OR{(SEEN FLAGGED),NOT{(DELETED OR{SEQSET:1,SEQSET:2})}} UNSEEN)\n");
    check("A SEARCH ((((ALL))))\r\n", "A SEARCH (((((ALL)))))\n");
    check("A SEARCH OR OR OR FROM a FROM b FROM c FROM d\r\n",
          "A SEARCH (OR{OR{OR{FROM:\"a\",FROM:\"b\"},FROM:\"c\"},FROM:\"d\"})\n");
}

static void test_search_invalid_and_unbalanced(void **state)
{
    (void)state;
    check("A SEARCH\r\nB SEARCH FOO\r\nC SEARCH (SEEN\r\nD SEARCH SEEN)\r\nE SEARCH ()\r\n"
          "F SEARCH OR SEEN\r\nG SEARCH NOT\r\nH SEARCH BEFORE 32-Jan-2020\r\n"
          "I SEARCH ON 1-Foo-2020\r\nJ SEARCH LARGER x\r\nK SEARCH LARGER 4294967296\r\n"
          "L SEARCH KEYWORD \\Seen\r\nM SEARCH UID\r\nN SEARCH HEADER x\r\n"
          "O SEARCH SEEN  UNSEEN\r\nP SEARCH ((SEEN)\r\nQ SEARCH (SEEN))\r\nR SEARCH SEENX\r\n"
          "S SEARCH ON 1-Jan-20\r\nT SEARCH MODSEQ \"x\" other 1\r\nU SEARCH 0\r\n",
          "ERR A BAD Error in IMAP command SEARCH: Missing arguments\n"
          "ERR B BAD Error in IMAP command SEARCH: Unknown search key\n"
          "ERR C BAD Error in IMAP command SEARCH: Missing ')'\n"
          "ERR D BAD Error in IMAP command SEARCH: Unexpected ')'\n"
          "ERR E BAD Error in IMAP command SEARCH: Empty search key list\n"
          "ERR F BAD Error in IMAP command SEARCH: Missing arguments\n"
          "ERR G BAD Error in IMAP command SEARCH: Missing arguments\n"
          "ERR H BAD Error in IMAP command SEARCH: Invalid date\n"
          "ERR I BAD Error in IMAP command SEARCH: Invalid date\n"
          "ERR J BAD Error in IMAP command SEARCH: Invalid number\n"
          "ERR K BAD Error in IMAP command SEARCH: Invalid number\n"
          "ERR L BAD Error in IMAP command SEARCH: Invalid atom\n"
          "ERR M BAD Error in IMAP command SEARCH: Missing arguments\n"
          "ERR N BAD Error in IMAP command SEARCH: Missing arguments\n"
          "ERR O BAD Error in IMAP command SEARCH: Unknown search key\n"
          "ERR P BAD Error in IMAP command SEARCH: Missing ')'\n"
          "ERR Q BAD Error in IMAP command SEARCH: Unexpected ')'\n"
          "ERR R BAD Error in IMAP command SEARCH: Unknown search key\n"
          "ERR S BAD Error in IMAP command SEARCH: Invalid date\n"
          "ERR T BAD Error in IMAP command SEARCH: Invalid MODSEQ entry type\n"
          "ERR U BAD Error in IMAP command SEARCH: Invalid sequence set\n");
}

static void test_search_charset(void **state)
{
    (void)state;
    check("A SEARCH CHARSET UTF-8 SUBJECT {4}\r\n\xc3\xa9t\xc3\r\nB SEARCH charset us-ascii ALL\r\n"
          "C SEARCH SUBJECT \"caf\xc3\xa9\"\r\n",
          "+\nA SEARCH CHARSET=UTF-8 (SUBJECT:\"\xc3\xa9t\xc3\")\n"
          "B SEARCH CHARSET=us-ascii (ALL)\nC SEARCH (SUBJECT:\"caf\xc3\xa9\")\n");
    /* An unknown charset is NO [BADCHARSET], before any literal. */
    check("A SEARCH CHARSET KOI8-R SUBJECT x\r\nB SEARCH CHARSET ISO-8859-1 TEXT {3}\r\n"
          "C SEARCH CHARSET\r\nD SEARCH CHARSET UTF-8\r\n",
          "ERR A NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset\n"
          "ERR B NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset\n"
          "ERR C BAD Error in IMAP command SEARCH: Unknown search key\n"
          "ERR D BAD Error in IMAP command SEARCH: Missing arguments\n");
}

static void test_search_limits(void **state)
{
    (void)state;
    test_limits.max_depth = 5;
    check("A SEARCH NOT NOT NOT NOT NOT SEEN\r\nB SEARCH NOT NOT NOT NOT NOT NOT SEEN\r\n"
          "C SEARCH ((((((SEEN))))))\r\nD SEARCH OR OR OR OR OR OR 1 2 3 4 5 6 7\r\n",
          "A SEARCH (NOT{NOT{NOT{NOT{NOT{SEEN}}}}})\n"
          "ERR B BAD Search keys nested too deeply\n"
          "ERR C BAD Search keys nested too deeply\n"
          "ERR D BAD Search keys nested too deeply\n");
    test_limits.max_depth = 100;
    test_limits.max_search_nodes = 3;
    check("A SEARCH SEEN SEEN SEEN\r\nB SEARCH SEEN SEEN SEEN SEEN\r\n",
          "A SEARCH (SEEN SEEN SEEN)\nERR B BAD Too many search keys\n");
    /* The default depth: a deep NOT chain is refused without recursing
       without bound. */
    imap_parser_limits_default(&test_limits);
    char *deep = malloc(200000);
    size_t n = 0;
    n += (size_t)snprintf(deep, 100, "A SEARCH ");
    for (int i = 0; i < 10000; i++) {
        memcpy(deep + n, "NOT ", 4);
        n += 4;
    }
    memcpy(deep + n, "SEEN\r\nB NOOP\r\n", 15);
    char *got = run(deep, strlen(deep), 0);
    assert_string_equal(got, "ERR A BAD Search keys nested too deeply\nB NOOP\n");
    free(got);
    free(deep);
}

static void test_sequence_sets(void **state)
{
    (void)state;
    check("A FETCH 1,3:5,7:* FLAGS\r\nB FETCH *:4 FLAGS\r\nC FETCH 9:2 FLAGS\r\n"
          "D FETCH *:* FLAGS\r\nE FETCH 4294967295 FLAGS\r\n",
          "A FETCH 1,3:5,7:* m0 FLAGS\nB FETCH 4:* m0 FLAGS\nC FETCH 2:9 m0 FLAGS\n"
          "D FETCH * m0 FLAGS\nE FETCH 4294967295 m0 FLAGS\n");
    check("A FETCH 0 FLAGS\r\nB FETCH 01 FLAGS\r\nC FETCH 1, FLAGS\r\nD FETCH ,1 FLAGS\r\n"
          "E FETCH 1:: FLAGS\r\nF FETCH 4294967296 FLAGS\r\nG FETCH 1;2 FLAGS\r\n"
          "H FETCH $ FLAGS\r\nI FETCH 1:2x FLAGS\r\n",
          "ERR A BAD Error in IMAP command FETCH: Invalid sequence set\n"
          "ERR B BAD Error in IMAP command FETCH: Invalid sequence set\n"
          "ERR C BAD Error in IMAP command FETCH: Invalid sequence set\n"
          "ERR D BAD Error in IMAP command FETCH: Invalid sequence set\n"
          "ERR E BAD Error in IMAP command FETCH: Invalid sequence set\n"
          "ERR F BAD Error in IMAP command FETCH: Invalid number\n"
          "ERR G BAD Error in IMAP command FETCH: Invalid sequence set\n"
          "ERR H BAD Error in IMAP command FETCH: Invalid sequence set\n"
          "ERR I BAD Error in IMAP command FETCH: Invalid sequence set\n");
}

static struct imap_command *parse_one(const char *text)
{
    size_t len = strlen(text);
    struct imap_parser *p = imap_parser_create(&test_limits);
    struct buf in;
    buf_init(&in, 0);
    buf_append(&in, text, len);
    struct imap_parse_result res;
    enum imap_parse_status st = imap_parser_next(p, &in, &res);
    if (st != IMAP_PARSE_COMMAND)
        fail_msg("status %d: %s", (int)st, res.error.text);
    assert_int_equal(in.len, 0);
    buf_free(&in);
    imap_parser_destroy(&p);
    return res.command;
}

static void test_sequence_set_of_10000_elements(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "A UID FETCH ");
    for (unsigned i = 0; i < 10000; i++)
        buf_printf(&b, "%s%u", i ? "," : "", 20000 - 2 * i);   /* descending, every other */
    buf_append_str(&b, ",5:3,* FLAGS\r\n");
    struct imap_command *cmd = parse_one(b.data);
    assert_int_equal(cmd->u.fetch.set.count, 10002);
    struct imap_seq_range *r;
    size_t n = imap_seqset_resolve(&cmd->u.fetch.set, 30000, &r);
    /* 2, 4, 6 and 3:5 merge into 2:6. */
    assert_int_equal(r[0].first, 2);
    assert_int_equal(r[0].last, 6);
    assert_int_equal(r[n - 1].first, 30000);
    assert_int_equal(n, 1 + (10000 - 3) + 1);
    assert_true(imap_seqset_contains(r, n, 2));
    assert_true(imap_seqset_contains(r, n, 5));
    assert_true(imap_seqset_contains(r, n, 19998));
    assert_false(imap_seqset_contains(r, n, 19999));
    assert_true(imap_seqset_contains(r, n, 30000));
    assert_false(imap_seqset_contains(r, n, 29999));
    assert_false(imap_seqset_contains(r, n, 1));
    free(r);
    imap_command_destroy(&cmd);
    assert_null(cmd);

    /* Over the limit: one clear BAD, and the next command is fine. */
    test_limits.max_seqset = 5000;
    buf_append_str(&b, "B NOOP\r\n");
    char *got = run(b.data, b.len, 0);
    assert_string_equal(got, "ERR A BAD Too many elements in sequence set\nB NOOP\n");
    free(got);
    buf_free(&b);
}

static void test_seqset_resolve(void **state)
{
    (void)state;
    struct imap_command *cmd = parse_one("A FETCH 5:*,1,2,3,10:8,* FLAGS\r\n");
    struct imap_seq_range *r;
    size_t n = imap_seqset_resolve(&cmd->u.fetch.set, 3, &r);
    /* "5:*" with * = 3 is 3:5; 10:8 stays. */
    assert_int_equal(n, 2);
    assert_int_equal(r[0].first, 1);
    assert_int_equal(r[0].last, 5);
    assert_int_equal(r[1].first, 8);
    assert_int_equal(r[1].last, 10);
    free(r);
    n = imap_seqset_resolve(&cmd->u.fetch.set, 0, &r);   /* empty mailbox: "*" dropped */
    assert_int_equal(n, 2);
    assert_int_equal(r[0].first, 1);
    assert_int_equal(r[0].last, 3);
    assert_int_equal(r[1].first, 8);
    assert_int_equal(r[1].last, 10);
    free(r);
    imap_command_destroy(&cmd);
    cmd = parse_one("A FETCH * FLAGS\r\n");
    n = imap_seqset_resolve(&cmd->u.fetch.set, 0, &r);
    assert_int_equal(n, 0);
    assert_null(r);
    assert_false(imap_seqset_contains(r, n, 1));
    imap_command_destroy(&cmd);
    cmd = parse_one("A FETCH 4294967295,4294967294,1:4294967293 FLAGS\r\n");
    n = imap_seqset_resolve(&cmd->u.fetch.set, 7, &r);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].first, 1);
    assert_int_equal(r[0].last, UINT32_MAX);
    free(r);
    imap_command_destroy(&cmd);
}

static void test_enable_id_namespace(void **state)
{
    (void)state;
    check("A ENABLE CONDSTORE\r\nB ENABLE UTF8=ACCEPT X-FOO\r\nC NAMESPACE\r\n",
          "A ENABLE (CONDSTORE)\nB ENABLE (UTF8=ACCEPT X-FOO)\nC NAMESPACE\n");
    check("A ID NIL\r\nB ID (\"name\" \"Thunderbird\" \"version\" NIL)\r\nC ID ()\r\n"
          "D ID ({4}\r\nname {2+}\r\nxy)\r\n",
          "A ID NIL\nB ID \"name\"=\"Thunderbird\" \"version\"=NIL\nC ID\n+\n"
          "D ID \"name\"=\"xy\"\n");
    check("A ENABLE\r\nB ID\r\nC ID (name \"x\")\r\nD ID (\"name\")\r\nE ID (\"a\" \"b\"\r\n"
          "F ID foo\r\nG ID (\"0123456789012345678901234567890\" NIL)\r\n",
          "ERR A BAD Error in IMAP command ENABLE: Missing arguments\n"
          "ERR B BAD Error in IMAP command ID: Missing arguments\n"
          "ERR C BAD Error in IMAP command ID: Expected a string\n"
          "ERR D BAD Error in IMAP command ID: Expected a space\n"
          "ERR E BAD Error in IMAP command ID: Expected ')'\n"
          "ERR F BAD Error in IMAP command ID: Expected a parameter list or NIL\n"
          "ERR G BAD Error in IMAP command ID: ID field name too long\n");
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "A ID (");
    for (int i = 0; i < 31; i++)
        buf_printf(&b, "%s\"f%d\" NIL", i ? " " : "", i);
    buf_append_str(&b, ")\r\n");
    char *got = run(b.data, b.len, 0);
    assert_string_equal(got, "ERR A BAD Error in IMAP command ID: Too many ID parameters\n");
    free(got);
    buf_free(&b);
}

static void test_literals_sync_and_nonsync(void **state)
{
    (void)state;
    /* "+" only for {n}; {n+} is taken silently; {0}; 8-bit and CRLF in
       literal data; a literal holding what looks like a command. */
    check("A LOGIN {3}\r\nbob {3}\r\npw!\r\n", "+\n+\nA LOGIN \"bob\" \"pw!\"\n");
    check("A LOGIN {3+}\r\nbob {3+}\r\npw!\r\n", "A LOGIN \"bob\" \"pw!\"\n");
    check("A LOGIN {0}\r\n {0+}\r\n\r\n", "+\nA LOGIN \"\" \"\"\n");
    check("A LOGIN {14}\r\nB LOGOUT\r\n\xff\xfe\r\n x\r\n",
          "+\nA LOGIN \"B LOGOUT\r\n\xff\xfe\r\n\" \"x\"\n");
    /* Leading zeros are digits like any other. */
    check("A LOGIN {003+}\r\nbob x\r\n", "A LOGIN \"bob\" \"x\"\n");
    /* The literal must end its line; only CRLF (or LF) follows. */
    check("A LOGIN {3} bob x\r\nB LOGIN {3}x\r\n",
          "ERR A BAD Error in IMAP command LOGIN: Literal must end the line\n"
          "ERR B BAD Error in IMAP command LOGIN: Literal must end the line\n");
    check("A LOGIN {3\r\nB LOGIN {}\r\nC LOGIN {x}\r\nD LOGIN {4294967296}\r\nE NOOP\r\n",
          "ERR A BAD Error in IMAP command LOGIN: Invalid literal\n"
          "ERR B BAD Error in IMAP command LOGIN: Invalid literal\n"
          "ERR C BAD Error in IMAP command LOGIN: Invalid literal\n"
          "ERR D BAD Error in IMAP command LOGIN: Literal size out of range\n"
          "E NOOP\n");
    /* NUL inside a literal. */
    check_bin("A LOGIN {3}\r\na\0b x\r\nB NOOP\r\n",
              "+\nERR A BAD NUL byte in literal\nB NOOP\n");
}

static void test_literal_over_limit_is_refused_before_the_data(void **state)
{
    (void)state;
    test_limits.max_literal = 4;
    /* {n}: no "+", and what follows is the client's next command. */
    check("A LOGIN {5}\r\nB NOOP\r\n", "ERR A BAD [TOOBIG] Literal too large\nB NOOP\n");
    /* {n+}: the bytes are skipped (they may look like commands), and
       the rest of the line too, including further {m+} literals. */
    check("A LOGIN {5+}\r\nC NOO {9+}\r\nD NOOP\r\nP\r\nB NOOP\r\n",
          "ERR A BAD [TOOBIG] Literal too large\nB NOOP\n");
    check("A LOGIN {4}\r\nabcd x\r\n", "+\nA LOGIN \"abcd\" \"x\"\n");
    /* The per-command total. */
    test_limits.max_literal_total = 6;
    check("A LOGIN {4+}\r\nabcd {3+}\r\nxyz\r\nB NOOP\r\n",
          "ERR A BAD [TOOBIG] Literal too large\nB NOOP\n");
    check("A LOGIN {4+}\r\nabcd {2+}\r\nxy\r\n", "A LOGIN \"abcd\" \"xy\"\n");
}

static void test_literal_on_a_bad_line_is_not_read_as_commands(void **state)
{
    (void)state;
    /* Refused at the announcement: the synchronizing literal will not
       come; the non-synchronizing one is skipped. */
    check("A NOOP {5}\r\nB NOOP\r\n",
          "ERR A BAD Error in IMAP command NOOP: Unexpected extra arguments\nB NOOP\n");
    check("A NOOP {11+}\r\nX LOGOUT\r\nY {3+}\r\nZ Z\r\nB NOOP\r\n",
          "ERR A BAD Error in IMAP command NOOP: Unexpected extra arguments\nB NOOP\n");
    check("A BOGUS {8+}\r\nX LOGOUT\r\nB NOOP\r\n", "ERR A BAD Unknown command\nB NOOP\n");
    /* However the announcement on a skipped line is padded. */
    check("A NOOP {1+}\r\nx {0000000000000000000000000000000000000000003+}\r\nX Y\r\n"
          "{{2+}\r\nZZ\r\nB NOOP\r\n",
          "ERR A BAD Error in IMAP command NOOP: Unexpected extra arguments\n"
          "ERR * BAD Missing or invalid tag\nB NOOP\n");
    check("A NOOP {1+}\r\nx {2+}\r\r\nC NOOP\r\nB NOOP\r\n",
          "ERR A BAD Error in IMAP command NOOP: Unexpected extra arguments\nC NOOP\nB NOOP\n");
    check("{8+}\r\nX LOGOUT\r\nB NOOP\r\n", "ERR * BAD Missing or invalid tag\nB NOOP\n");
    /* A literal where the grammar has none: sequence set, flag, atom. */
    check("A FETCH {3+}\r\n1:2 FLAGS\r\nB STORE 1 FLAGS {2+}\r\nxx\r\nC NOOP\r\n",
          "ERR A BAD Error in IMAP command FETCH: Invalid sequence set\n"
          "ERR B BAD Error in IMAP command STORE: Invalid flag\nC NOOP\n");
    /* Inside a quoted string "{3}" is text; the unterminated quote is
       the error. */
    check("A LOGIN \"x{3}\r\nB NOOP\r\n",
          "ERR A BAD Error in IMAP command LOGIN: Unterminated quoted string\nB NOOP\n");
    check("A LOGIN \"x{3+}\r\nabc\r\nB NOOP\r\n",
          "ERR A BAD Error in IMAP command LOGIN: Unterminated quoted string\nB NOOP\n");
}

static void test_too_many_literals(void **state)
{
    (void)state;
    test_limits.max_literals = 2;
    check("A LOGIN {1+}\r\na {1+}\r\nb\r\n", "A LOGIN \"a\" \"b\"\n");
    check("A SEARCH TEXT {1+}\r\na TEXT {1+}\r\nb TEXT {1+}\r\nc\r\nB NOOP\r\n",
          "ERR A BAD Too many literals in command\nB NOOP\n");
}

static void test_line_limit(void **state)
{
    (void)state;
    test_limits.max_line = 20;
    /* 20 bytes without CRLF: fine; 21: too long, the line skipped. */
    check("A LOGIN abcd efghijk\r\n", "A LOGIN \"abcd\" \"efghijk\"\n");
    check("A LOGIN abcd efghijkl\r\nB NOOP\r\n", "ERR A BAD Command line too long\nB NOOP\n");
    check("A LOGIN abcd efghijk\nB LOGIN abcd efghijkl\nC NOOP\n",
          "A LOGIN \"abcd\" \"efghijk\"\nERR B BAD Command line too long\nC NOOP\n");
    /* The limit counts every line of the command, not literal data. */
    check("A LOGIN {10}\r\n0123456789 abc\r\n", "+\nA LOGIN \"0123456789\" \"abc\"\n");
    check("A LOGIN {10}\r\n0123456789 abcdefghijk\r\nB NOOP\r\n",
          "+\nERR A BAD Command line too long\nB NOOP\n");
    /* A long line that ends in {n+}: the literal is skipped as well. */
    check("A LOGIN abcdefghijklmnopqrstuvwxyz {5+}\r\nC X\r\n\r\nB NOOP\r\n",
          "ERR A BAD Command line too long\nB NOOP\n");
    check("A LOGIN abcdefghijklmnopqrstuvwxyz {5}\r\nB NOOP\r\n",
          "ERR A BAD Command line too long\nB NOOP\n");
    /* No tag within reach: untagged. */
    check("AAAAAAAAAAAAAAAAAAAAAAAAA\r\nB NOOP\r\n",
          "ERR * BAD Command line too long\nB NOOP\n");
    /* The error comes before the newline, and skipping goes on. */
    char *big = repeat("A NOOP ", 'x', 100000, "");
    check(big, "ERR A BAD Command line too long\nBUSY\n");
    free(big);
    big = repeat("A NOOP ", 'x', 100000, "\r\nB NOOP\r\n");
    check(big, "ERR A BAD Command line too long\nB NOOP\n");
    free(big);
}

static void test_default_line_limit_is_64k(void **state)
{
    (void)state;
    char *ok = repeat("A LOGIN x ", 'y', 65536 - 10, "\r\n");
    struct imap_command *cmd = parse_one(ok);
    assert_int_equal(strlen(cmd->u.login.password), 65536 - 10);
    imap_command_destroy(&cmd);
    free(ok);
    char *over = repeat("A LOGIN x ", 'y', 65536 - 9, "\r\nB NOOP\r\n");
    char *got = run(over, strlen(over), 4096);
    assert_string_equal(got, "ERR A BAD Command line too long\nB NOOP\n");
    free(got);
    free(over);
}

static void test_nul_and_8bit_garbage(void **state)
{
    (void)state;
    check_bin("A NO\0OP\r\nB NOOP\r\n", "ERR A BAD NUL byte in command\nB NOOP\n");
    check_bin("\0\r\nB NOOP\r\n", "ERR * BAD NUL byte in command\nB NOOP\n");
    check_bin("A LOGIN \"a\0b\" c\r\nB NOOP\r\n", "ERR A BAD NUL byte in command\nB NOOP\n");
    /* A NUL on a line that announces {n+}: refused, the literal skipped. */
    check_bin("A LOGIN \0 {3+}\r\nC X\r\nB NOOP\r\n",
              "ERR A BAD NUL byte in command\nB NOOP\n");
    check("\xff\xfe\xfd\r\nB NOOP\r\n", "ERR * BAD Missing or invalid tag\nB NOOP\n");
    check("A \xc3\xa9\r\nA NO\xffOP\r\nA LOGIN \xff x\r\nA SEARCH \x80\r\n"
          "A SELECT \xe2\x82\xac\r\nA FETCH 1 \x01\r\n",
          "ERR A BAD Unknown command\nERR A BAD Unknown command\n"
          "ERR A BAD Error in IMAP command LOGIN: Invalid characters in atom\n"
          "ERR A BAD Error in IMAP command SEARCH: Unknown search key\n"
          "ERR A BAD Error in IMAP command SELECT: Invalid characters in atom\n"
          "ERR A BAD Error in IMAP command FETCH: Invalid fetch attribute\n");
    /* Bare CR inside a line. */
    check("A NOOP\rB NOOP\r\nC NO\rOP\r\nD NOOP\r\r\n",
          "ERR A BAD Unknown command\nERR C BAD Unknown command\nERR D BAD Unknown command\n");
    check("A LOGIN a\rb c\r\nB LOGIN \"a\rb\" c\r\n",
          "ERR A BAD Error in IMAP command LOGIN: Expected a space\n"
          "ERR B BAD Error in IMAP command LOGIN: CR or LF in quoted string\n");
}

static void test_resync_after_errors(void **state)
{
    (void)state;
    check("A FETCH (\r\nB NOOP\r\nC SEARCH ((\r\nD NOOP\r\n) ) )\r\nE NOOP\r\n",
          "ERR A BAD Error in IMAP command FETCH: Invalid sequence set\nB NOOP\n"
          "ERR C BAD Error in IMAP command SEARCH: Missing search key\nD NOOP\n"
          "ERR * BAD Missing or invalid tag\nE NOOP\n");
    check("A SELECT \"INBOX\r\nB SELECT INBOX\r\n",
          "ERR A BAD Error in IMAP command SELECT: Unterminated quoted string\n"
          "B SELECT \"INBOX\"\n");
}

static void test_token_limit(void **state)
{
    (void)state;
    test_limits.max_tokens = 5;
    check("A STORE 1 FLAGS (a b)\r\nB STORE 1 FLAGS (a b c)\r\n",
          "A STORE 1 = (a b)\nERR B BAD Too many arguments in command\n");
}

static void test_raw_lines_and_idle_done(void **state)
{
    (void)state;
    struct imap_parser *p = imap_parser_create(&test_limits);
    struct buf in;
    buf_init(&in, 0);
    struct imap_parse_result res;
    buf_append_str(&in, "A IDLE\r\nDONE\r\ndone\nB NOOP\r\n");
    assert_int_equal(imap_parser_next(p, &in, &res), IMAP_PARSE_COMMAND);
    assert_int_equal(res.command->cmd, IMAP_CMD_IDLE);
    imap_command_destroy(&res.command);
    assert_int_equal(imap_parser_next_line(p, &in, 100, &res), IMAP_PARSE_LINE);
    assert_true(imap_line_is_done(res.data, res.data_len));
    assert_int_equal(imap_parser_next_line(p, &in, 100, &res), IMAP_PARSE_LINE);
    assert_string_equal(res.data, "done");
    assert_true(imap_line_is_done(res.data, res.data_len));
    assert_false(imap_line_is_done("DONE ", 5));
    assert_false(imap_line_is_done("DON", 3));
    assert_int_equal(imap_parser_next(p, &in, &res), IMAP_PARSE_COMMAND);
    imap_command_destroy(&res.command);
    /* SASL responses: long base64 lines, "*", limits, NUL. */
    char *b64 = repeat("", 'Q', 4000, "==\r\n*\r\n");
    buf_append_str(&in, b64);
    free(b64);
    assert_int_equal(imap_parser_next_line(p, &in, 8192, &res), IMAP_PARSE_LINE);
    assert_int_equal(res.data_len, 4002);
    assert_int_equal(imap_parser_next_line(p, &in, 8192, &res), IMAP_PARSE_LINE);
    assert_string_equal(res.data, "*");
    assert_int_equal(imap_parser_next_line(p, &in, 8192, &res), IMAP_PARSE_NEED_MORE);
    buf_append(&in, "a\0b\r\n", 5);
    assert_int_equal(imap_parser_next_line(p, &in, 8192, &res), IMAP_PARSE_ERROR);
    assert_int_equal(res.error.code, IMAP_PERR_NUL);
    buf_append_str(&in, "0123456789");
    assert_int_equal(imap_parser_next_line(p, &in, 5, &res), IMAP_PARSE_ERROR);
    assert_int_equal(res.error.code, IMAP_PERR_LINE_TOO_LONG);
    assert_int_equal(in.len, 0);
    assert_true(imap_parser_busy(p));
    buf_append_str(&in, "abc\r\nok\r\n");
    assert_int_equal(imap_parser_next_line(p, &in, 5, &res), IMAP_PARSE_LINE);
    assert_string_equal(res.data, "ok");
    assert_false(imap_parser_busy(p));
    buf_free(&in);
    imap_parser_destroy(&p);
}

static void test_reset_and_busy(void **state)
{
    (void)state;
    struct imap_parser *p = imap_parser_create(&test_limits);
    struct buf in;
    buf_init(&in, 0);
    struct imap_parse_result res;
    assert_false(imap_parser_busy(p));
    buf_append_str(&in, "A LOGIN {3}\r\nab");
    assert_int_equal(imap_parser_next(p, &in, &res), IMAP_PARSE_CONTINUE);
    assert_int_equal(imap_parser_next(p, &in, &res), IMAP_PARSE_NEED_MORE);
    assert_true(imap_parser_busy(p));
    /* STARTTLS-like: everything pending is forgotten. */
    imap_parser_reset(p);
    buf_reset(&in);
    assert_false(imap_parser_busy(p));
    buf_append_str(&in, "B STARTTLS\r\n");
    assert_int_equal(imap_parser_next(p, &in, &res), IMAP_PARSE_COMMAND);
    assert_int_equal(res.command->cmd, IMAP_CMD_STARTTLS);
    assert_string_equal(res.command->tag, "B");
    imap_command_destroy(&res.command);
    assert_false(imap_parser_busy(p));
    /* Half a line pending. */
    buf_append_str(&in, "C NO");
    assert_int_equal(imap_parser_next(p, &in, &res), IMAP_PARSE_NEED_MORE);
    assert_true(imap_parser_busy(p));
    buf_free(&in);
    imap_parser_destroy(&p);
    imap_parser_destroy(&p);   /* NULL is fine */
}

static void test_error_format_and_names(void **state)
{
    (void)state;
    struct imap_parse_error e;
    memset(&e, 0, sizeof(e));
    struct buf out;
    buf_init(&out, 0);
    snprintf(e.text, sizeof(e.text), "Oops");
    imap_parse_error_format(&e, &out);
    snprintf(e.tag, sizeof(e.tag), "a1");
    imap_parse_error_format(&e, &out);
    e.no = 1;
    imap_parse_error_format(&e, &out);
    assert_string_equal(out.data, "* BAD Oops\r\na1 BAD Oops\r\na1 NO Oops\r\n");
    buf_free(&out);
    assert_string_equal(imap_cmd_name(IMAP_CMD_UNSELECT), "UNSELECT");
    assert_string_equal(imap_cmd_name(IMAP_CMD_UNKNOWN), "UNKNOWN");
    assert_string_equal(imap_cmd_name(IMAP_CMD_COUNT), "UNKNOWN");
    for (int c = IMAP_CMD_UNKNOWN + 1; c < IMAP_CMD_COUNT; c++)
        assert_string_not_equal(imap_cmd_name((enum imap_cmd)c), "UNKNOWN");
    assert_string_equal(imap_search_type_name(IMAP_SEARCH_SENTBEFORE), "SENTBEFORE");
    for (int t = 0; t < IMAP_SEARCH_TYPE_COUNT; t++)
        assert_string_not_equal(imap_search_type_name((enum imap_search_type)t), "UNKNOWN");
}

static void test_datetime_to_time(void **state)
{
    (void)state;
    struct imap_parser *p = imap_parser_create(&test_limits);
    struct buf in;
    buf_init(&in, 0);
    buf_append_str(&in, "A APPEND x \"17-Jul-1996 02:44:25 -0700\" {0+}\r\n\r\n");
    struct imap_parse_result res;
    assert_int_equal(imap_parser_next(p, &in, &res), IMAP_PARSE_APPEND_LITERAL);
    assert_int_equal(res.command->u.append.message_size, 0);
    assert_false(res.command->u.append.sync);
    /* 1996-07-17 09:44:25 UTC */
    assert_int_equal((long long)imap_datetime_to_time(&res.command->u.append.date), 837596665LL);
    imap_command_destroy(&res.command);
    assert_int_equal(imap_parser_next(p, &in, &res), IMAP_PARSE_COMMAND);
    assert_int_equal(res.command->cmd, IMAP_CMD_APPEND);
    assert_true(res.command->u.append.has_date);
    assert_int_equal(res.command->u.append.date.zone_minutes, -420);
    imap_command_destroy(&res.command);
    buf_free(&in);
    imap_parser_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_commands_without_arguments, setup),
        cmocka_unit_test_setup(test_tags_and_unknown_commands, setup),
        cmocka_unit_test_setup(test_login_and_authenticate, setup),
        cmocka_unit_test_setup(test_mailbox_commands, setup),
        cmocka_unit_test(test_mailbox_name_valid),
        cmocka_unit_test_setup(test_list_lsub_status, setup),
        cmocka_unit_test_setup(test_append_streams_the_message, setup),
        cmocka_unit_test_setup(test_append_invalid_arguments, setup),
        cmocka_unit_test_setup(test_append_over_limit_is_refused_before_the_data, setup),
        cmocka_unit_test_setup(test_append_rejected_by_imapd, setup),
        cmocka_unit_test_setup(test_fetch_items_and_macros, setup),
        cmocka_unit_test_setup(test_fetch_invalid_arguments, setup),
        cmocka_unit_test_setup(test_store, setup),
        cmocka_unit_test_setup(test_copy_move_expunge_uid, setup),
        cmocka_unit_test_setup(test_search_every_key, setup),
        cmocka_unit_test_setup(test_search_trees, setup),
        cmocka_unit_test_setup(test_search_invalid_and_unbalanced, setup),
        cmocka_unit_test_setup(test_search_charset, setup),
        cmocka_unit_test_setup(test_search_limits, setup),
        cmocka_unit_test_setup(test_sequence_sets, setup),
        cmocka_unit_test_setup(test_sequence_set_of_10000_elements, setup),
        cmocka_unit_test_setup(test_seqset_resolve, setup),
        cmocka_unit_test_setup(test_enable_id_namespace, setup),
        cmocka_unit_test_setup(test_literals_sync_and_nonsync, setup),
        cmocka_unit_test_setup(test_literal_over_limit_is_refused_before_the_data, setup),
        cmocka_unit_test_setup(test_literal_on_a_bad_line_is_not_read_as_commands, setup),
        cmocka_unit_test_setup(test_too_many_literals, setup),
        cmocka_unit_test_setup(test_line_limit, setup),
        cmocka_unit_test_setup(test_default_line_limit_is_64k, setup),
        cmocka_unit_test_setup(test_nul_and_8bit_garbage, setup),
        cmocka_unit_test_setup(test_resync_after_errors, setup),
        cmocka_unit_test_setup(test_token_limit, setup),
        cmocka_unit_test_setup(test_raw_lines_and_idle_done, setup),
        cmocka_unit_test_setup(test_reset_and_busy, setup),
        cmocka_unit_test_setup(test_error_format_and_names, setup),
        cmocka_unit_test_setup(test_datetime_to_time, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
