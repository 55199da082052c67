/* Unit tests for lib/imap_msg.c and lib/imap_msg_fetch.c: flags and
   dates, and every FETCH item over real message files in a temporary
   directory (opened through the open callback): simple items without
   opening the file, ENVELOPE/BODY/BODYSTRUCTURE, every section kind
   with part numbers, partials checked byte for byte against the whole
   literal over a bare-LF file, an empty string for missing sections, header-only
   loading, a missing file (ENOENT), an output limit (ENOBUFS), and
   cached structure texts (struct imap_msg_cache) with their callback,
   and the kept header (header_get / header_loaded): handed over once
   read, then used instead of the file with identical responses. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "imap_msg.h"
#include "imap_msg_private.h"
#include "imap_parser.h"
#include "mime.h"
#include "xalloc.h"

static char tmpdir[] = "/tmp/test-imap-msg.XXXXXX";

#include "imap_msg_test.h"

/* Bare LF, as a Maildir file usually is. */
static const char m1[] = "From: Alice <alice@example.test>\n"
                         "To: bob@example.test\n"
                         "Subject: Hello\n"
                         "  folded\n"
                         "Date: Thu, 26 Nov 2026 10:00:00 +0100\n"
                         "Message-ID: <m1@example.test>\n"
                         "\n"
                         "line one\n"
                         "line two\n";

/* CRLF, multipart with an encapsulated message. */
static const char m2[] = "From: a@b.test\r\n"
                         "Subject: multi\r\n"
                         "MIME-Version: 1.0\r\n"
                         "Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
                         "\r\n"
                         "preamble\r\n"
                         "--XX\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "\r\n"
                         "part one\r\n"
                         "--XX\r\n"
                         "Content-Type: message/rfc822\r\n"
                         "\r\n"
                         "Subject: inner\r\n"
                         "From: c@d.test\r\n"
                         "\r\n"
                         "inner body\r\n"
                         "--XX--\r\n";

static int setup(void **state)
{
    assert_non_null(mkdtemp(tmpdir));
    put(1, m1, strlen(m1));
    put(2, m2, strlen(m2));
    /* a NUL byte and a message without a blank line */
    put(3, "Subject: nul\n\nab\0cd\n", 20);
    put(4, "Subject: no body", 16);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct imap_command *parse(const char *line)
{
    struct imap_parser_limits limits;
    imap_parser_limits_default(&limits);
    struct imap_parser *p = imap_parser_create(&limits);
    struct buf in;
    buf_init(&in, 0);
    buf_append_str(&in, line);
    struct imap_parse_result res;
    enum imap_parse_status st = imap_parser_next(p, &in, &res);
    if (st != IMAP_PARSE_COMMAND)
        fail_msg("%s: status %d: %s", line, (int)st, res.error.text);
    buf_free(&in);
    imap_parser_destroy(&p);
    return res.command;
}

static struct imap_msg make_msg(uint32_t seq, uint32_t uid, const char *flags)
{
    struct imap_msg msg = {
        .seq = seq,
        .uid = uid,
        .maildir_flags = flags,
        .recent = 0,
        .internal_date = 1795772836,
        .crlf_size = 1234,
        .modseq = 77,
        .open = open_msg,
        .open_ctx = tmpdir,
    };
    return msg;
}

/* The response of FETCH <items> for msg, as a string (the literals of
   these tests hold no NUL: it is sent as 0x80). */
static char *fetch_opt(const char *items, const struct imap_msg *msg, unsigned options)
{
    char line[1024];
    snprintf(line, sizeof(line), "a FETCH 1 %s\r\n", items);
    struct imap_command *cmd = parse(line);
    struct imap_msg_content *content = NULL;
    struct buf out;
    buf_init(&out, 0);
    uint64_t bytes = 0;
    assert_int_equal(imap_msg_fetch(cmd, msg, options, &content, &out, &bytes), 0);
    imap_msg_content_free(&content);
    assert_null(content);
    imap_command_destroy(&cmd);
    return buf_steal(&out);
}

static char *fetch(const char *items, uint32_t uid)
{
    struct imap_msg msg = make_msg(3, uid, "S");
    return fetch_opt(items, &msg, 0);
}

static void expect(const char *items, uint32_t uid, const char *expected)
{
    char *got = fetch(items, uid);
    assert_string_equal(got, expected);
    free(got);
}

/* ---- flags and dates ---- */

static void test_flags_format(void **state)
{
    struct buf b;
    buf_init(&b, 0);
    imap_msg_flags_format("DFPRST", NULL, 1, &b);
    assert_string_equal(b.data, "(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\Recent)");
    buf_reset(&b);
    imap_msg_flags_format("", NULL, 0, &b);
    assert_string_equal(b.data, "()");
    buf_reset(&b);
    imap_msg_flags_format("P", NULL, 1, &b);  /* passed has no IMAP flag */
    assert_string_equal(b.data, "(\\Recent)");
    buf_reset(&b);
    imap_msg_flags_format(NULL, NULL, 0, &b);
    assert_string_equal(b.data, "()");
    /* Keyword letters: named by the map, after the system flags; a
       letter without a name is not shown. */
    struct maildir_keywords *kw = maildir_keywords_new("/nonexistent");
    static const char map[] = "0 $Junk\n2 NonJunk\n";
    maildir_keywords_parse(kw, map, sizeof(map) - 1);
    buf_reset(&b);
    imap_msg_flags_format("Sabc", kw, 1, &b);
    assert_string_equal(b.data, "(\\Seen \\Recent $Junk NonJunk)");
    buf_reset(&b);
    imap_msg_flags_format("Sabc", NULL, 0, &b);
    assert_string_equal(b.data, "(\\Seen)");
    maildir_keywords_free(&kw);
    buf_free(&b);
}

static void test_flags_to_maildir(void **state)
{
    char out[IMAP_MSG_LETTERS_SIZE];
    const char *bad = NULL;
    char *sys[] = {"\\Seen", "\\Answered", "\\draft", "\\Seen", "\\Flagged", "\\Deleted"};
    assert_int_equal(imap_msg_flags_to_maildir(sys, 6, NULL, out, &bad), 0);
    assert_string_equal(out, "DFRST");
    /* Without a map no keyword has a letter: 1 names the first one. */
    char *ok[] = {"\\Seen", "\\Answered", "$Junk", "\\draft", "\\Seen", "\\Flagged", "\\Deleted"};
    assert_int_equal(imap_msg_flags_to_maildir(ok, 7, NULL, out, &bad), 1);
    assert_string_equal(out, "DFRST");
    assert_string_equal(bad, "$Junk");
    struct maildir_keywords *map = maildir_keywords_new("/nonexistent");
    static const char text[] = "1 $Forwarded\n3 NonJunk\n";
    maildir_keywords_parse(map, text, sizeof(text) - 1);
    char *kw[] = {"nonjunk", "$Forwarded", "\\Seen"};
    assert_int_equal(imap_msg_flags_to_maildir(kw, 3, map, out, &bad), 0);
    assert_string_equal(out, "Sbd");
    char *some[] = {"$Forwarded", "$Label1", "Other"};
    assert_int_equal(imap_msg_flags_to_maildir(some, 3, map, out, &bad), 1);
    assert_string_equal(out, "b");
    assert_string_equal(bad, "$Label1");
    maildir_keywords_free(&map);
    assert_int_equal(imap_msg_flags_to_maildir(NULL, 0, NULL, out, &bad), 0);
    assert_string_equal(out, "");
    char *recent[] = {"\\Seen", "\\Recent"};
    assert_int_equal(imap_msg_flags_to_maildir(recent, 2, NULL, out, &bad), -1);
    assert_string_equal(bad, "\\Recent");
    char *unknown[] = {"\\Foo"};
    assert_int_equal(imap_msg_flags_to_maildir(unknown, 1, NULL, out, &bad), -1);
    assert_string_equal(bad, "\\Foo");
    assert_int_equal(imap_msg_flags_to_maildir(unknown, 1, NULL, out, NULL), -1);
}

static void test_date_format(void **state)
{
    struct buf b;
    buf_init(&b, 0);
    imap_msg_date_format(1795772836, &b);
    assert_string_equal(b.data, "27-Nov-2026 09:47:16 +0000");
    buf_reset(&b);
    imap_msg_date_format(0, &b);
    assert_string_equal(b.data, "01-Jan-1970 00:00:00 +0000");
    buf_reset(&b);
    imap_msg_date_format(-5, &b);  /* clamped */
    assert_string_equal(b.data, "01-Jan-1970 00:00:00 +0000");
    buf_reset(&b);
    imap_msg_date_format(INT64_MAX, &b);
    assert_string_equal(b.data, "31-Dec-9999 23:59:59 +0000");
    buf_reset(&b);
    imap_msg_date_format(951782400, &b);  /* leap day */
    assert_string_equal(b.data, "29-Feb-2000 00:00:00 +0000");
    buf_free(&b);
}

/* ---- simple items ---- */

static void test_simple_items_do_not_open(void **state)
{
    struct imap_msg msg = make_msg(5, 999, "FS");  /* no such file */
    msg.recent = 1;
    opens = 0;
    char *got = fetch_opt("(FLAGS INTERNALDATE RFC822.SIZE UID MODSEQ)", &msg, 0);
    assert_string_equal(got, "* 5 FETCH (FLAGS (\\Flagged \\Seen \\Recent) INTERNALDATE "
                             "\"27-Nov-2026 09:47:16 +0000\" RFC822.SIZE 1234 UID 999 "
                             "MODSEQ (77))\r\n");
    free(got);
    got = fetch_opt("FAST", &msg, 0);
    assert_string_equal(got, "* 5 FETCH (FLAGS (\\Flagged \\Seen \\Recent) INTERNALDATE "
                             "\"27-Nov-2026 09:47:16 +0000\" RFC822.SIZE 1234)\r\n");
    free(got);
    assert_int_equal(opens, 0);
}

static void test_options(void **state)
{
    struct imap_msg msg = make_msg(2, 7, "S");
    char *got = fetch_opt("FLAGS", &msg, IMAP_MSG_FETCH_UID);
    assert_string_equal(got, "* 2 FETCH (UID 7 FLAGS (\\Seen))\r\n");
    free(got);
    /* UID named: in its place, once */
    got = fetch_opt("(FLAGS UID)", &msg, IMAP_MSG_FETCH_UID);
    assert_string_equal(got, "* 2 FETCH (FLAGS (\\Seen) UID 7)\r\n");
    free(got);
    /* FLAGS added after a \Seen change, MODSEQ for CONDSTORE */
    got = fetch_opt("RFC822.SIZE", &msg,
                    IMAP_MSG_FETCH_UID | IMAP_MSG_FETCH_FLAGS | IMAP_MSG_FETCH_MODSEQ);
    assert_string_equal(got, "* 2 FETCH (UID 7 RFC822.SIZE 1234 FLAGS (\\Seen) MODSEQ (77))\r\n");
    free(got);
    got = fetch_opt("(MODSEQ FLAGS)", &msg, IMAP_MSG_FETCH_FLAGS | IMAP_MSG_FETCH_MODSEQ);
    assert_string_equal(got, "* 2 FETCH (MODSEQ (77) FLAGS (\\Seen))\r\n");
    free(got);
    /* duplicates are sent once */
    got = fetch_opt("(UID FLAGS UID FLAGS)", &msg, 0);
    assert_string_equal(got, "* 2 FETCH (UID 7 FLAGS (\\Seen))\r\n");
    free(got);
}

static void test_sets_seen_needs_content(void **state)
{
    static const struct {
        const char *items;
        int seen, content;
    } cases[] = {
        {"FLAGS", 0, 0},
        {"FAST", 0, 0},
        {"(UID MODSEQ RFC822.SIZE INTERNALDATE)", 0, 0},
        {"ALL", 0, 1},
        {"FULL", 0, 1},
        {"ENVELOPE", 0, 1},
        {"BODY", 0, 1},
        {"BODYSTRUCTURE", 0, 1},
        {"RFC822.HEADER", 0, 1},
        {"RFC822", 1, 1},
        {"RFC822.TEXT", 1, 1},
        {"BODY[]", 1, 1},
        {"BODY.PEEK[]", 0, 1},
        {"BODY[HEADER.FIELDS (From)]", 1, 1},
        {"(FLAGS BODY.PEEK[1] BODY[2.MIME])", 1, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char line[200];
        snprintf(line, sizeof(line), "a FETCH 1 %s\r\n", cases[i].items);
        struct imap_command *cmd = parse(line);
        assert_int_equal(imap_msg_fetch_sets_seen(cmd), cases[i].seen);
        assert_int_equal(imap_msg_fetch_needs_content(cmd), cases[i].content);
        imap_command_destroy(&cmd);
    }
}

/* ---- structure items ---- */

static char *mime_text(const char *file, int what)
{
    struct mime_message *mime = mime_message_parse(file, strlen(file), NULL);
    struct buf b;
    buf_init(&b, 0);
    if (what == 0)
        mime_imap_envelope(mime, mime->root, &b);
    else
        mime_imap_bodystructure(mime, mime->root, what == 2, &b);
    mime_message_destroy(&mime);
    return buf_steal(&b);
}

static void test_envelope_body_bodystructure(void **state)
{
    char *env = mime_text(m2, 0), *body = mime_text(m2, 1), *bs = mime_text(m2, 2);
    char *expected = xasprintf("* 3 FETCH (ENVELOPE %s BODY %s BODYSTRUCTURE %s)\r\n", env,
                               body, bs);
    expect("(ENVELOPE BODY BODYSTRUCTURE)", 2, expected);
    free(expected);
    expected = xasprintf("* 3 FETCH (FLAGS (\\Seen) INTERNALDATE \"27-Nov-2026 09:47:16 "
                         "+0000\" RFC822.SIZE 1234 ENVELOPE %s BODY %s)\r\n",
                         env, body);
    expect("FULL", 2, expected);
    free(expected);
    free(env);
    free(body);
    free(bs);
    env = mime_text(m1, 0);
    assert_non_null(strstr(env, "\"Hello  folded\""));
    expected = xasprintf("* 3 FETCH (ENVELOPE %s)\r\n", env);
    expect("ENVELOPE", 1, expected);
    free(expected);
    free(env);
}

/* ---- sections ---- */

static const char m1_header_crlf[] = "From: Alice <alice@example.test>\r\n"
                                     "To: bob@example.test\r\n"
                                     "Subject: Hello\r\n"
                                     "  folded\r\n"
                                     "Date: Thu, 26 Nov 2026 10:00:00 +0100\r\n"
                                     "Message-ID: <m1@example.test>\r\n"
                                     "\r\n";
static const char m1_text_crlf[] = "line one\r\nline two\r\n";

static void test_sections_bare_lf(void **state)
{
    char *whole = xasprintf("%s%s", m1_header_crlf, m1_text_crlf);
    char *expected = xasprintf("* 3 FETCH (BODY[] {%zu}\r\n%s)\r\n", strlen(whole), whole);
    expect("BODY[]", 1, expected);
    expect("BODY.PEEK[]", 1, expected);
    free(expected);
    expected = xasprintf("* 3 FETCH (RFC822 {%zu}\r\n%s RFC822.HEADER {%zu}\r\n%s "
                         "RFC822.TEXT {%zu}\r\n%s)\r\n",
                         strlen(whole), whole, strlen(m1_header_crlf), m1_header_crlf,
                         strlen(m1_text_crlf), m1_text_crlf);
    expect("(RFC822 RFC822.HEADER RFC822.TEXT)", 1, expected);
    free(expected);
    expected = xasprintf("* 3 FETCH (BODY[HEADER] {%zu}\r\n%s BODY[TEXT] {%zu}\r\n%s)\r\n",
                         strlen(m1_header_crlf), m1_header_crlf, strlen(m1_text_crlf),
                         m1_text_crlf);
    expect("(BODY[HEADER] BODY.PEEK[TEXT])", 1, expected);
    free(expected);
    /* a single-part message: part 1 is its body; 1.MIME its header */
    expected = xasprintf("* 3 FETCH (BODY[1] {%zu}\r\n%s)\r\n", strlen(m1_text_crlf),
                         m1_text_crlf);
    expect("BODY[1]", 1, expected);
    free(expected);
    expect("BODY[2]", 1, "* 3 FETCH (BODY[2] {0}\r\n)\r\n");
    expect("BODY[1.HEADER]", 1, "* 3 FETCH (BODY[1.HEADER] {0}\r\n)\r\n");
    free(whole);
}

static void test_header_fields(void **state)
{
    expect("BODY.PEEK[HEADER.FIELDS (SUBJECT from)]", 1,
           "* 3 FETCH (BODY[HEADER.FIELDS (SUBJECT from)] {62}\r\n"
           "From: Alice <alice@example.test>\r\n"
           "Subject: Hello\r\n"
           "  folded\r\n"
           "\r\n)\r\n");
    expect("BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT from Date message-id)]", 1,
           "* 3 FETCH (BODY[HEADER.FIELDS.NOT (SUBJECT from Date message-id)] {24}\r\n"
           "To: bob@example.test\r\n"
           "\r\n)\r\n");
    /* nothing matches: the blank line alone */
    expect("BODY.PEEK[HEADER.FIELDS (X-None)]", 1,
           "* 3 FETCH (BODY[HEADER.FIELDS (X-None)] {2}\r\n\r\n)\r\n");
    /* partial of a filtered header */
    expect("BODY.PEEK[HEADER.FIELDS (Subject)]<9.5>", 1,
           "* 3 FETCH (BODY[HEADER.FIELDS (Subject)]<9> {5}\r\nHello)\r\n");
    /* names that are not atoms are quoted; quoted atoms are echoed bare */
    expect("BODY.PEEK[HEADER.FIELDS (\"to\" \"X]Y\")]", 1,
           "* 3 FETCH (BODY[HEADER.FIELDS (to \"X]Y\")] {24}\r\n"
           "To: bob@example.test\r\n\r\n)\r\n");
}

/* Extracts the literal of the first "{n}\r\n" in resp. */
static char *literal_of(const char *resp, size_t *len_r)
{
    const char *p = strchr(resp, '{');
    assert_non_null(p);
    char *end;
    size_t n = strtoul(p + 1, &end, 10);
    assert_memory_equal(end, "}\r\n", 3);
    *len_r = n;
    assert_true(strlen(end + 3) >= n + 3);
    assert_string_equal(end + 3 + n, ")\r\n");
    return xstrndup(end + 3, n);
}

static void test_partials_bare_lf(void **state)
{
    char *whole = xasprintf("%s%s", m1_header_crlf, m1_text_crlf);
    size_t wlen = strlen(whole);
    for (size_t origin = 0; origin <= wlen + 2; origin++) {
        for (size_t count = 1; count <= wlen + 2 - origin + 1; count++) {
            char items[64];
            snprintf(items, sizeof(items), "BODY.PEEK[]<%zu.%zu>", origin, count);
            char *got = fetch(items, 1);
            char prefix[64];
            snprintf(prefix, sizeof(prefix), "* 3 FETCH (BODY[]<%zu> {", origin);
            assert_memory_equal(got, prefix, strlen(prefix));
            size_t n;
            char *lit = literal_of(got, &n);
            size_t want = origin >= wlen ? 0 : (wlen - origin < count ? wlen - origin : count);
            assert_int_equal(n, want);
            assert_memory_equal(lit, whole + (origin < wlen ? origin : wlen), n);
            free(lit);
            free(got);
        }
    }
    /* partials of TEXT and of a part */
    expect("BODY.PEEK[TEXT]<8.3>", 1, "* 3 FETCH (BODY[TEXT]<8> {3}\r\n\r\nl)\r\n");
    expect("BODY.PEEK[TEXT]<9.1>", 1, "* 3 FETCH (BODY[TEXT]<9> {1}\r\n\n)\r\n");
    expect("BODY.PEEK[1]<5.3>", 1, "* 3 FETCH (BODY[1]<5> {3}\r\none)\r\n");
    expect("BODY.PEEK[TEXT]<100.3>", 1, "* 3 FETCH (BODY[TEXT]<100> {0}\r\n)\r\n");
    free(whole);
}

static void test_multipart_sections(void **state)
{
    expect("BODY.PEEK[1]", 2, "* 3 FETCH (BODY[1] {8}\r\npart one)\r\n");
    expect("BODY.PEEK[1.MIME]", 2,
           "* 3 FETCH (BODY[1.MIME] {43}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n)\r\n");
    expect("BODY.PEEK[2.MIME]", 2,
           "* 3 FETCH (BODY[2.MIME] {32}\r\nContent-Type: message/rfc822\r\n\r\n)\r\n");
    expect("BODY.PEEK[2]", 2,
           "* 3 FETCH (BODY[2] {44}\r\nSubject: inner\r\nFrom: c@d.test\r\n\r\ninner body)\r\n");
    expect("BODY.PEEK[2.HEADER]", 2,
           "* 3 FETCH (BODY[2.HEADER] {34}\r\nSubject: inner\r\nFrom: c@d.test\r\n\r\n)\r\n");
    expect("BODY.PEEK[2.HEADER.FIELDS (FROM)]", 2,
           "* 3 FETCH (BODY[2.HEADER.FIELDS (FROM)] {18}\r\nFrom: c@d.test\r\n\r\n)\r\n");
    expect("BODY.PEEK[2.HEADER.FIELDS.NOT (FROM)]", 2,
           "* 3 FETCH (BODY[2.HEADER.FIELDS.NOT (FROM)] {18}\r\nSubject: inner\r\n\r\n)\r\n");
    expect("BODY.PEEK[2.TEXT]", 2, "* 3 FETCH (BODY[2.TEXT] {10}\r\ninner body)\r\n");
    expect("BODY.PEEK[2.1]", 2, "* 3 FETCH (BODY[2.1] {10}\r\ninner body)\r\n");
    expect("BODY.PEEK[2.1]<6.100>", 2, "* 3 FETCH (BODY[2.1]<6> {4}\r\nbody)\r\n");
    expect("BODY.PEEK[3]", 2, "* 3 FETCH (BODY[3] {0}\r\n)\r\n");
    expect("BODY.PEEK[1.HEADER]", 2, "* 3 FETCH (BODY[1.HEADER] {0}\r\n)\r\n");
    expect("BODY.PEEK[1.TEXT]", 2, "* 3 FETCH (BODY[1.TEXT] {0}\r\n)\r\n");
    expect("BODY.PEEK[1.2]", 2, "* 3 FETCH (BODY[1.2] {0}\r\n)\r\n");
    expect("BODY.PEEK[3.MIME]<0.5>", 2, "* 3 FETCH (BODY[3.MIME]<0> {0}\r\n)\r\n");
    expect("BODY.PEEK[HEADER.FIELDS (Subject)]", 2,
           "* 3 FETCH (BODY[HEADER.FIELDS (Subject)] {18}\r\nSubject: multi\r\n\r\n)\r\n");
    char *got = fetch("BODY.PEEK[TEXT]", 2);
    assert_non_null(strstr(got, "{161}\r\npreamble\r\n--XX\r\n"));
    free(got);
}

static void test_nul_and_no_blank_line(void **state)
{
    expect("BODY.PEEK[TEXT]", 3, "* 3 FETCH (BODY[TEXT] {7}\r\nab\x80" "cd\r\n)\r\n");
    expect("BODY.PEEK[TEXT]<2.2>", 3, "* 3 FETCH (BODY[TEXT]<2> {2}\r\n\x80" "c)\r\n");
    expect("BODY.PEEK[HEADER]", 4, "* 3 FETCH (BODY[HEADER] {16}\r\nSubject: no body)\r\n");
    expect("BODY.PEEK[TEXT]", 4, "* 3 FETCH (BODY[TEXT] {0}\r\n)\r\n");
    expect("BODY.PEEK[HEADER.FIELDS (subject)]", 4,
           "* 3 FETCH (BODY[HEADER.FIELDS (subject)] {20}\r\nSubject: no body\r\n\r\n)\r\n");
}

static void test_header_only_load(void **state)
{
    struct imap_msg msg = make_msg(1, 2, "");
    struct imap_msg_content *content = NULL;
    struct buf out;
    buf_init(&out, 0);
    struct imap_command *cmd = parse("a FETCH 1 (ENVELOPE BODY.PEEK[HEADER])\r\n");
    opens = 0;
    assert_int_equal(imap_msg_fetch(cmd, &msg, 0, &content, &out, NULL), 0);
    assert_non_null(content);
    assert_false(content->whole);
    assert_int_equal(content->size, strstr(m2, "\r\n\r\n") + 4 - m2);
    /* the same content serves the next header-only FETCH without opening */
    assert_int_equal(imap_msg_fetch(cmd, &msg, 0, &content, &out, NULL), 0);
    assert_int_equal(opens, 1);
    imap_command_destroy(&cmd);
    /* a whole-message item replaces it */
    cmd = parse("a FETCH 1 BODY.PEEK[1]\r\n");
    assert_int_equal(imap_msg_fetch(cmd, &msg, 0, &content, &out, NULL), 0);
    assert_true(content->whole);
    assert_int_equal(content->size, strlen(m2));
    assert_int_equal(opens, 2);
    imap_command_destroy(&cmd);
    /* and a whole one serves header items too */
    cmd = parse("a FETCH 1 RFC822.HEADER\r\n");
    assert_int_equal(imap_msg_fetch(cmd, &msg, 0, &content, &out, NULL), 0);
    assert_int_equal(opens, 2);
    imap_command_destroy(&cmd);
    /* another message is loaded afresh even if the caller forgot to free */
    msg = make_msg(1, 1, "");
    cmd = parse("a FETCH 1 BODY.PEEK[HEADER]\r\n");
    assert_int_equal(imap_msg_fetch(cmd, &msg, 0, &content, &out, NULL), 0);
    assert_int_equal(content->uid, 1);
    assert_int_equal(opens, 3);
    imap_command_destroy(&cmd);
    imap_msg_content_free(&content);
    buf_free(&out);
}

static void test_big_message_header_only(void **state)
{
    /* The header-only load stops early in a big file. */
    size_t body = 3 << 20;
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "Subject: big\n\n");
    char *w = buf_reserve(&b, body);
    memset(w, 'x', body);
    buf_commit(&b, body);
    put(10, b.data, b.len);
    struct imap_msg msg = make_msg(1, 10, "");
    struct imap_msg_content *content = NULL;
    assert_int_equal(imap_msg_content_load(&msg, IMAP_MSG_NEED_HEADER, &content), 0);
    assert_int_equal(content->size, 14);
    assert_false(content->whole);
    assert_int_equal(imap_msg_content_load(&msg, IMAP_MSG_NEED_WHOLE, &content), 0);
    assert_int_equal(content->size, b.len);
    assert_true(content->whole);
    imap_msg_content_free(&content);
    /* a header longer than IMAP_MSG_MAX_HEADER: the whole file is taken */
    buf_reset(&b);
    buf_append_str(&b, "X-Long: ");
    w = buf_reserve(&b, IMAP_MSG_MAX_HEADER + 10);
    memset(w, 'y', IMAP_MSG_MAX_HEADER + 10);
    buf_commit(&b, IMAP_MSG_MAX_HEADER + 10);
    buf_append_str(&b, "\n\nbody\n");
    put(11, b.data, b.len);
    msg.uid = 11;
    assert_int_equal(imap_msg_content_load(&msg, IMAP_MSG_NEED_HEADER, &content), 0);
    assert_true(content->whole);
    assert_int_equal(content->size, b.len);
    imap_msg_content_free(&content);
    buf_free(&b);
}

static void test_missing_file(void **state)
{
    struct imap_msg msg = make_msg(1, 404, "");
    struct imap_msg_content *content = NULL;
    struct buf out;
    buf_init(&out, 0);
    buf_append_str(&out, "before");
    struct imap_command *cmd = parse("a FETCH 1 (FLAGS BODY[])\r\n");
    errno = 0;
    assert_int_equal(imap_msg_fetch(cmd, &msg, 0, &content, &out, NULL), -1);
    assert_int_equal(errno, ENOENT);
    assert_string_equal(out.data, "before");
    assert_null(content);
    imap_command_destroy(&cmd);
    buf_free(&out);
}

static void test_output_limit(void **state)
{
    struct imap_msg msg = make_msg(1, 1, "");
    struct imap_msg_content *content = NULL;
    struct buf out;
    buf_init(&out, 64);
    buf_append_str(&out, "x");
    struct imap_command *cmd = parse("a FETCH 1 (FLAGS BODY.PEEK[])\r\n");
    errno = 0;
    assert_int_equal(imap_msg_fetch(cmd, &msg, 0, &content, &out, NULL), -1);
    assert_int_equal(errno, ENOBUFS);
    assert_string_equal(out.data, "x");
    imap_command_destroy(&cmd);
    cmd = parse("a FETCH 1 BODY.PEEK[]<0.10>\r\n");
    uint64_t bytes = 0;
    assert_int_equal(imap_msg_fetch(cmd, &msg, 0, &content, &out, &bytes), 0);
    assert_int_equal(bytes, 10);
    imap_command_destroy(&cmd);
    imap_msg_content_free(&content);
    buf_free(&out);
}

static void test_bytes_counted(void **state)
{
    struct imap_msg msg = make_msg(1, 2, "");
    struct imap_msg_content *content = NULL;
    struct buf out;
    buf_init(&out, 0);
    struct imap_command *cmd = parse("a FETCH 1 (BODY.PEEK[1] BODY.PEEK[3] RFC822.TEXT)\r\n");
    uint64_t bytes = 0;
    assert_int_equal(imap_msg_fetch(cmd, &msg, 0, &content, &out, &bytes), 0);
    assert_int_equal(bytes, 8 + 161);
    imap_command_destroy(&cmd);
    imap_msg_content_free(&content);
    buf_free(&out);
}

/* ---- cached ENVELOPE / BODY / BODYSTRUCTURE (struct imap_msg_cache) ---- */

struct seen_texts {
    int calls;
    char *text[IMAP_FETCH_ITEM_COUNT];
};

static void record_rendered(void *ctx, enum imap_fetch_item item, const char *text, size_t len)
{
    struct seen_texts *seen = ctx;
    assert_true(item == IMAP_FETCH_ENVELOPE || item == IMAP_FETCH_BODY ||
                item == IMAP_FETCH_BODYSTRUCTURE);
    assert_null(seen->text[item]);   /* once per item */
    seen->text[item] = xstrndup(text, len);
    seen->calls++;
}

static void seen_free(struct seen_texts *seen)
{
    for (size_t i = 0; i < IMAP_FETCH_ITEM_COUNT; i++)
        free(seen->text[i]);
    memset(seen, 0, sizeof(*seen));
}

static void test_cache_texts_keep_order_without_open(void **state)
{
    struct imap_msg_cache cache = {0};
    struct seen_texts seen = {0};
    cache.text[IMAP_FETCH_ENVELOPE] = "(ENV)xx";
    cache.len[IMAP_FETCH_ENVELOPE] = 5;   /* len counts, not NUL */
    cache.text[IMAP_FETCH_BODY] = "(B)";
    cache.len[IMAP_FETCH_BODY] = 3;
    cache.text[IMAP_FETCH_BODYSTRUCTURE] = "(BS)";
    cache.len[IMAP_FETCH_BODYSTRUCTURE] = 4;
    /* entries of other items are not read */
    cache.text[IMAP_FETCH_FLAGS] = "(bogus)";
    cache.len[IMAP_FETCH_FLAGS] = 7;
    cache.rendered = record_rendered;
    cache.rendered_ctx = &seen;
    struct imap_msg msg = make_msg(5, 999, "S");  /* no such file */
    msg.cache = &cache;
    opens = 0;
    char *got = fetch_opt("(BODYSTRUCTURE FLAGS ENVELOPE RFC822.SIZE BODY)", &msg,
                          IMAP_MSG_FETCH_UID);
    assert_string_equal(got, "* 5 FETCH (UID 999 BODYSTRUCTURE (BS) FLAGS (\\Seen) ENVELOPE "
                             "(ENV) RFC822.SIZE 1234 BODY (B))\r\n");
    free(got);
    got = fetch_opt("FULL", &msg, 0);
    assert_string_equal(got, "* 5 FETCH (FLAGS (\\Seen) INTERNALDATE \"27-Nov-2026 09:47:16 "
                             "+0000\" RFC822.SIZE 1234 ENVELOPE (ENV) BODY (B))\r\n");
    free(got);
    assert_int_equal(opens, 0);
    assert_int_equal(seen.calls, 0);
    /* a content item that is not cached still opens the file */
    struct imap_msg_content *content = NULL;
    struct buf out;
    buf_init(&out, 0);
    struct imap_command *cmd = parse("a FETCH 1 (ENVELOPE BODY.PEEK[])\r\n");
    errno = 0;
    assert_int_equal(imap_msg_fetch(cmd, &msg, 0, &content, &out, NULL), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(opens, 1);
    imap_command_destroy(&cmd);
    buf_free(&out);
}

static void test_cache_rendered_callback(void **state)
{
    char *env = mime_text(m2, 0), *body = mime_text(m2, 1), *bs = mime_text(m2, 2);
    struct imap_msg_cache cache = {0};
    struct seen_texts seen = {0};
    cache.rendered = record_rendered;
    cache.rendered_ctx = &seen;
    struct imap_msg msg = make_msg(3, 2, "S");
    msg.cache = &cache;
    /* nothing cached: each rendered item is handed over, in its place */
    char *got = fetch_opt("(BODY UID BODYSTRUCTURE ENVELOPE BODY)", &msg, 0);
    char *expected =
        xasprintf("* 3 FETCH (BODY %s UID 2 BODYSTRUCTURE %s ENVELOPE %s)\r\n", body, bs, env);
    assert_string_equal(got, expected);
    free(got);
    free(expected);
    assert_int_equal(seen.calls, 3);
    assert_string_equal(seen.text[IMAP_FETCH_ENVELOPE], env);
    assert_string_equal(seen.text[IMAP_FETCH_BODY], body);
    assert_string_equal(seen.text[IMAP_FETCH_BODYSTRUCTURE], bs);
    seen_free(&seen);
    /* ENVELOPE cached: only BODY rendered (and reported), the order kept */
    cache.text[IMAP_FETCH_ENVELOPE] = env;
    cache.len[IMAP_FETCH_ENVELOPE] = strlen(env);
    opens = 0;
    got = fetch_opt("(BODY ENVELOPE)", &msg, 0);
    expected = xasprintf("* 3 FETCH (BODY %s ENVELOPE %s)\r\n", body, env);
    assert_string_equal(got, expected);
    free(got);
    free(expected);
    assert_int_equal(opens, 1);
    assert_int_equal(seen.calls, 1);
    assert_string_equal(seen.text[IMAP_FETCH_BODY], body);
    seen_free(&seen);
    /* ENVELOPE from a header-only load is the same text */
    cache.text[IMAP_FETCH_ENVELOPE] = NULL;
    got = fetch_opt("ENVELOPE", &msg, 0);
    assert_int_equal(seen.calls, 1);
    assert_string_equal(seen.text[IMAP_FETCH_ENVELOPE], env);
    free(got);
    seen_free(&seen);
    /* an output limit hit: nothing is handed over, out unchanged */
    struct imap_msg_content *content = NULL;
    struct buf out;
    buf_init(&out, 40);
    struct imap_command *cmd = parse("a FETCH 1 BODYSTRUCTURE\r\n");
    errno = 0;
    assert_int_equal(imap_msg_fetch(cmd, &msg, 0, &content, &out, NULL), -1);
    assert_int_equal(errno, ENOBUFS);
    assert_int_equal(out.len, 0);
    assert_int_equal(seen.calls, 0);
    imap_command_destroy(&cmd);
    imap_msg_content_free(&content);
    buf_free(&out);
    free(env);
    free(body);
    free(bs);
}

/* ---- the kept header (header_get / header_loaded) ---- */

static void header_cache_init(struct imap_msg_cache *cache, struct header_store *h)
{
    memset(cache, 0, sizeof(*cache));
    cache->header_get = store_get;
    cache->header_loaded = store_loaded;
    cache->header_ctx = h;
}

static const char *const header_items =
    "(ENVELOPE RFC822.HEADER BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (Subject Date)]<4.30> "
    "BODY.PEEK[HEADER.FIELDS.NOT (To)] FLAGS)";

static void test_cache_header_loaded_then_used(void **state)
{
    for (uint32_t uid = 1; uid <= 4; uid++) {
        const char *file = uid == 1 ? m1 : uid == 2 ? m2 : uid == 3 ? "Subject: nul\n\nab\0cd\n"
                                                                    : "Subject: no body";
        size_t file_len = uid == 1 ? strlen(m1) : uid == 2 ? strlen(m2) : uid == 3 ? 20 : 16;
        /* what a header-only load keeps: up to the blank line, or all */
        size_t hlen = uid == 1   ? (size_t)(strstr(m1, "\n\n") + 2 - m1)
                      : uid == 2 ? (size_t)(strstr(m2, "\r\n\r\n") + 4 - m2)
                      : uid == 3 ? 14
                                 : 16;
        struct imap_msg plain = make_msg(1, uid, "S");
        char *want = fetch_opt(header_items, &plain, IMAP_MSG_FETCH_UID);

        struct header_store h = {0};
        struct imap_msg_cache cache;
        header_cache_init(&cache, &h);
        struct imap_msg msg = make_msg(1, uid, "S");
        msg.cache = &cache;
        /* not kept: the file is read, the header handed over */
        opens = 0;
        char *got = fetch_opt(header_items, &msg, IMAP_MSG_FETCH_UID);
        assert_string_equal(got, want);
        free(got);
        assert_int_equal(opens, 1);
        assert_int_equal(h.gets, 1);
        assert_int_equal(h.asked_uid, uid);
        assert_int_equal(h.loads, 1);
        assert_int_equal(h.loaded_len, hlen);
        assert_memory_equal(h.loaded, file, hlen);
        assert_true(hlen <= file_len);
        /* kept: the same response without the file */
        h.give = h.loaded;
        h.give_len = h.loaded_len;
        h.loads = 0;
        opens = 0;
        got = fetch_opt(header_items, &msg, IMAP_MSG_FETCH_UID);
        assert_string_equal(got, want);
        free(got);
        assert_int_equal(opens, 0);
        assert_int_equal(h.gets, 2);
        assert_int_equal(h.loads, 0);
        /* a whole-message item ignores the hooks */
        got = fetch_opt("(ENVELOPE BODY.PEEK[])", &msg, 0);
        free(got);
        assert_int_equal(opens, 1);
        assert_int_equal(h.gets, 2);
        assert_int_equal(h.loads, 0);
        /* items that need no file ask nothing */
        got = fetch_opt("(FLAGS UID RFC822.SIZE)", &msg, 0);
        free(got);
        assert_int_equal(h.gets, 2);
        free(h.loaded);
        free(want);
    }
}

static void test_cache_header_is_what_is_rendered(void **state)
{
    /* The kept header is used as given, even when it is not the file's
       (the file is not opened at all: here it does not exist). */
    static const char kept[] = "Subject: kept\r\nFrom: k@example.test\r\n\r\n";
    struct header_store h = {.give = kept, .give_len = sizeof(kept) - 1};
    struct imap_msg_cache cache;
    header_cache_init(&cache, &h);
    struct imap_msg msg = make_msg(2, 999, "");
    msg.cache = &cache;
    opens = 0;
    char *got = fetch_opt("(BODY.PEEK[HEADER.FIELDS (SUBJECT)] RFC822.HEADER)", &msg, 0);
    assert_string_equal(got, "* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {17}\r\nSubject: kept"
                             "\r\n\r\n RFC822.HEADER {39}\r\nSubject: kept\r\nFrom: "
                             "k@example.test\r\n\r\n)\r\n");
    free(got);
    assert_int_equal(opens, 0);
    /* ENVELOPE texts and the header together: no file either, and the
       rendered callback still gets the ENVELOPE made from the header */
    struct seen_texts seen = {0};
    cache.rendered = record_rendered;
    cache.rendered_ctx = &seen;
    got = fetch_opt("ENVELOPE", &msg, 0);
    assert_non_null(strstr(got, "\"kept\""));
    free(got);
    assert_int_equal(seen.calls, 1);
    assert_non_null(strstr(seen.text[IMAP_FETCH_ENVELOPE], "\"kept\""));
    seen_free(&seen);
    assert_int_equal(opens, 0);
    /* a missing file behind a kept header: only whole items fail */
    struct imap_msg_content *content = NULL;
    struct buf out;
    buf_init(&out, 0);
    struct imap_command *cmd = parse("a FETCH 1 BODY.PEEK[TEXT]\r\n");
    errno = 0;
    assert_int_equal(imap_msg_fetch(cmd, &msg, 0, &content, &out, NULL), -1);
    assert_int_equal(errno, ENOENT);
    imap_command_destroy(&cmd);
    imap_msg_content_free(&content);
    buf_free(&out);
}

static void test_cache_header_limit(void **state)
{
    /* A header over IMAP_MSG_CACHE_HEADER_MAX is not handed over; one
       of exactly that size is. */
    struct buf b;
    buf_init(&b, 0);
    for (size_t extra = 0; extra < 2; extra++) {
        buf_reset(&b);
        buf_append_str(&b, "X-Pad: ");
        size_t pad = IMAP_MSG_CACHE_HEADER_MAX - 7 - 2 + extra;
        memset(buf_reserve(&b, pad), 'p', pad);
        buf_commit(&b, pad);
        buf_append_str(&b, "\n\nbody\n");
        put(12, b.data, b.len);
        struct header_store h = {0};
        struct imap_msg_cache cache;
        header_cache_init(&cache, &h);
        struct imap_msg msg = make_msg(1, 12, "");
        msg.cache = &cache;
        char *got = fetch_opt("BODY.PEEK[HEADER]", &msg, 0);
        free(got);
        assert_int_equal(h.loads, extra ? 0 : 1);
        if (!extra)
            assert_int_equal(h.loaded_len, IMAP_MSG_CACHE_HEADER_MAX);
        free(h.loaded);
    }
    buf_free(&b);
}

static void test_option_items_sent_once(void **state)
{
    struct imap_msg msg = make_msg(2, 7, "S");
    unsigned all = IMAP_MSG_FETCH_UID | IMAP_MSG_FETCH_FLAGS | IMAP_MSG_FETCH_MODSEQ;
    char *got = fetch_opt("(FLAGS MODSEQ UID)", &msg, all);
    assert_string_equal(got, "* 2 FETCH (FLAGS (\\Seen) MODSEQ (77) UID 7)\r\n");
    free(got);
    got = fetch_opt("(MODSEQ RFC822.SIZE)", &msg, all);
    assert_string_equal(got, "* 2 FETCH (UID 7 MODSEQ (77) RFC822.SIZE 1234 FLAGS (\\Seen))\r\n");
    free(got);
    got = fetch_opt("FAST", &msg, all);
    assert_string_equal(got, "* 2 FETCH (UID 7 FLAGS (\\Seen) INTERNALDATE \"27-Nov-2026 "
                             "09:47:16 +0000\" RFC822.SIZE 1234 MODSEQ (77))\r\n");
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flags_format),
        cmocka_unit_test(test_flags_to_maildir),
        cmocka_unit_test(test_date_format),
        cmocka_unit_test(test_simple_items_do_not_open),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_sets_seen_needs_content),
        cmocka_unit_test(test_envelope_body_bodystructure),
        cmocka_unit_test(test_sections_bare_lf),
        cmocka_unit_test(test_header_fields),
        cmocka_unit_test(test_partials_bare_lf),
        cmocka_unit_test(test_multipart_sections),
        cmocka_unit_test(test_nul_and_no_blank_line),
        cmocka_unit_test(test_header_only_load),
        cmocka_unit_test(test_big_message_header_only),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_bytes_counted),
        cmocka_unit_test(test_cache_texts_keep_order_without_open),
        cmocka_unit_test(test_cache_rendered_callback),
        cmocka_unit_test(test_cache_header_loaded_then_used),
        cmocka_unit_test(test_cache_header_is_what_is_rendered),
        cmocka_unit_test(test_cache_header_limit),
        cmocka_unit_test(test_option_items_sent_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
