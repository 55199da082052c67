/* Unit tests for lib/imap_msg_search.c and lib/imap_msg_text.c: every
   SEARCH key over real message files in a temporary directory, AND /
   OR / NOT, sequence and UID sets with "*", flags, dates (internal in
   UTC, sent in the Date: field's own zone, the fallback when Date: is
   missing or the file is gone), sizes, MODSEQ, and text keys with
   RFC 2047 (B and Q, UTF-8 and ISO-8859-1), base64 and quoted-printable
   bodies, case folding, FROM/TO/CC/BCC on parsed addresses (comments
   and blanks inside an address removed, names decoded), matches across
   the matcher's pieces, header-only
   loading, the kept header of struct imap_msg_cache (every header key
   answers as from the file, without opening it; TEXT tries the header
   first; a header read is handed over once), and imap_msg_parse_date()
   edge cases. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "imap_msg.h"
#include "imap_msg_private.h"
#include "imap_parser.h"
#include "xalloc.h"

static char tmpdir[] = "/tmp/test-imap-search.XXXXXX";

#include "imap_msg_test.h"

static const char s1[] = "From: \"J\xc3\xb6hn Doe\" <john@example.test>\n"
                         "To: =?UTF-8?B?w4lsaXNl?= <elise@example.test>\n"
                         "Cc: carol@example.test\n"
                         "Bcc: dave@example.test\n"
                         "Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?=\n"
                         "   =?utf-8?q?_and_more?=\n"
                         "Date: Thu, 26 Nov 2026 23:30:00 -0800\n"
                         "X-Empty:\n"
                         "X-Spam: yes\n"
                         "\n"
                         "Hello World, this is plain text.\n";

static const char s2[] = "From: alice@example.test\r\n"
                         "Subject: parts\r\n"
                         "Date: 1 Jan 99 00:00 GMT\r\n"
                         "MIME-Version: 1.0\r\n"
                         "Content-Type: multipart/mixed; boundary=b1\r\n"
                         "\r\n"
                         "--b1\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Transfer-Encoding: base64\r\n"
                         "\r\n"
                         "R3LDvMOfZSBhdXMgQmVybGluLCBzZWNy\r\n"
                         "ZXQtd29yZC1vbmUK\r\n"
                         "--b1\r\n"
                         "Content-Type: text/html; charset=iso-8859-1\r\n"
                         "Content-Transfer-Encoding: Quoted-Printable\r\n"
                         "\r\n"
                         "<p>Soft=\r\n"
                         "break: hyphen=3Dated na=EFve</p>\r\n"
                         "--b1\r\n"
                         "Content-Type: message/rfc822\r\n"
                         "\r\n"
                         "Subject: forwarded inner\r\n"
                         "From: zed@example.test\r\n"
                         "\r\n"
                         "inner words here\r\n"
                         "--b1--\r\n";

/* Addresses that only a parse finds (Dovecot's imaptest search-addresses). */
static const char s4[] = "From: <user-from (comment)@ (comment) domain.org>\n"
                         "To: \"Quoted, Name\" <to.user @ example . test>,\n"
                         " Friends: g1@d1.org, =?ISO-8859-1?Q?J=F6rg?= <jorg@d2.org>;\n"
                         "Cc: ann@x.test (Ann Comment)\n"
                         "Bcc: undisclosed-recipients:;\n"
                         "Subject: about user-other@other.org\n"
                         "\n"
                         "to.user@example.test in the body\n";

static void base64_append(struct buf *out, const char *s, size_t len)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned char)s[i] << 16;
        if (i + 1 < len)
            v |= (unsigned char)s[i + 1] << 8;
        if (i + 2 < len)
            v |= (unsigned char)s[i + 2];
        char q[4] = {a[v >> 18], a[(v >> 12) & 63], i + 1 < len ? a[(v >> 6) & 63] : '=',
                     i + 2 < len ? a[v & 63] : '='};
        buf_append(out, q, 4);
        if ((i / 3) % 19 == 18)
            buf_append_str(out, "\n");
    }
}

static int setup(void **state)
{
    assert_non_null(mkdtemp(tmpdir));
    put(1, s1, strlen(s1));
    put(2, s2, strlen(s2));
    put(4, s4, strlen(s4));
    /* uid 3: no Date:, a raw body with a word across the 16 KiB pieces,
       and a base64 part with one across the 4 KiB decode pieces */
    struct buf b, text;
    buf_init(&b, 0);
    buf_init(&text, 0);
    buf_append_str(&b, "Subject: big\nContent-Type: multipart/mixed; boundary=zz\n\n--zz\n\n");
    size_t body = b.len;
    for (size_t i = 0; i < 16380; i++)
        buf_append_char(&b, 'a');
    assert_int_equal(b.len - body, 16380);
    buf_append_str(&b, "needle");
    for (size_t i = 0; i < 20000; i++)
        buf_append_char(&b, 'b');
    buf_append_str(&b, "\n--zz\nContent-Transfer-Encoding: base64\n\n");
    for (size_t i = 0; i < 4093; i++)
        buf_append_char(&text, 'x');
    buf_append_str(&text, "crossing");
    for (size_t i = 0; i < 6000; i++)
        buf_append_char(&text, 'y');
    base64_append(&b, text.data, text.len);
    buf_append_str(&b, "\n--zz--\n");
    put(3, b.data, b.len);
    buf_free(&b);
    buf_free(&text);
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

static struct imap_msg make_msg(uint32_t seq, uint32_t uid, const char *flags, int recent)
{
    struct imap_msg msg = {
        .seq = seq,
        .uid = uid,
        .maildir_flags = flags,
        .recent = recent,
        .internal_date = 1795772836, /* 27-Nov-2026 09:47:16 UTC */
        .crlf_size = 1000,
        .modseq = 77,
        .open = open_msg,
        .open_ctx = tmpdir,
    };
    return msg;
}

/* The view has 10 messages, the highest UID is 50. */
static int search_msg(const char *keys, const struct imap_msg *msg)
{
    char line[1024];
    snprintf(line, sizeof(line), "a SEARCH %s\r\n", keys);
    struct imap_command *cmd = parse(line);
    struct imap_search *s = imap_search_compile(cmd, 10, 50);
    struct imap_msg_content *content = NULL;
    int r = imap_search_match(s, msg, &content);
    imap_msg_content_free(&content);
    imap_search_free(&s);
    assert_null(s);
    imap_command_destroy(&cmd);
    return r;
}

static int search_uid(const char *keys, uint32_t uid)
{
    struct imap_msg msg = make_msg(3, uid, "", 0);
    return search_msg(keys, &msg);
}

#define YES(keys, uid) assert_int_equal(search_uid(keys, uid), 1)
#define NO(keys, uid) assert_int_equal(search_uid(keys, uid), 0)

static void test_sets(void **state)
{
    struct imap_msg msg = make_msg(3, 7, "", 0);
    assert_true(search_msg("3", &msg));
    assert_true(search_msg("1,3:4", &msg));
    assert_false(search_msg("1:2", &msg));
    assert_true(search_msg("2:*", &msg));
    assert_false(search_msg("*", &msg));
    assert_true(search_msg("*:3", &msg));
    assert_true(search_msg("UID 7", &msg));
    assert_true(search_msg("UID 1:5,7", &msg));
    assert_false(search_msg("UID 8:*", &msg));
    assert_false(search_msg("UID *", &msg));
    msg = make_msg(10, 50, "", 0);
    assert_true(search_msg("*", &msg));
    assert_true(search_msg("UID *", &msg));
    assert_true(search_msg("UID 60:*", &msg));  /* "*" is 50: 50:60 */
    assert_true(search_msg("11:*", &msg));      /* 10:11 */
    assert_false(search_msg("UID 51:60", &msg));
    assert_true(search_msg("ALL", &msg));
}

static void test_empty_view(void **state)
{
    struct imap_command *cmd = parse("a SEARCH 1:* UID *\r\n");
    struct imap_search *s = imap_search_compile(cmd, 0, 0);
    struct imap_msg msg = make_msg(1, 1, "", 0);
    struct imap_msg_content *content = NULL;
    assert_int_equal(imap_search_match(s, &msg, &content), 0);
    assert_false(imap_search_needs_content(s));
    imap_search_free(&s);
    imap_command_destroy(&cmd);
}

static void test_flags(void **state)
{
    struct imap_msg msg = make_msg(1, 1, "FPS", 1);
    static const struct {
        const char *keys;
        int yes;
    } cases[] = {
        {"ANSWERED", 0},     {"FLAGGED", 1},      {"SEEN", 1},        {"DELETED", 0},
        {"DRAFT", 0},        {"UNANSWERED", 1},   {"UNFLAGGED", 0},   {"UNSEEN", 0},
        {"UNDELETED", 1},    {"UNDRAFT", 1},      {"RECENT", 1},      {"NEW", 0},
        {"OLD", 0},          {"KEYWORD $Junk", 0}, {"UNKEYWORD $Junk", 1},
        {"NOT KEYWORD x", 1}, {"FLAGGED SEEN RECENT", 1}, {"FLAGGED DELETED", 0},
        {"OR DELETED FLAGGED", 1}, {"OR DELETED DRAFT", 0}, {"NOT (DELETED DRAFT)", 1},
        {"(FLAGGED (SEEN (NOT DRAFT)))", 1}, {"NOT NOT SEEN", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (search_msg(cases[i].keys, &msg) != cases[i].yes)
            fail_msg("%s: expected %d", cases[i].keys, cases[i].yes);
    msg = make_msg(1, 1, "DRT", 1);
    assert_true(search_msg("NEW ANSWERED DELETED DRAFT UNSEEN UNFLAGGED", &msg));
    msg.recent = 0;
    assert_true(search_msg("OLD", &msg));
    assert_false(search_msg("NEW", &msg));
    assert_false(search_msg("RECENT", &msg));
    msg.maildir_flags = NULL;
    assert_true(search_msg("UNSEEN UNANSWERED", &msg));
}

/* KEYWORD / UNKEYWORD go by name through the folder's map. */
static void test_keywords(void **state)
{
    struct maildir_keywords *kw = maildir_keywords_new("/nonexistent");
    static const char map[] = "0 $Junk\n1 NonJunk\n3 $Label1\n";
    maildir_keywords_parse(kw, map, sizeof(map) - 1);
    struct imap_msg msg = make_msg(1, 1, "Sacq", 0);
    msg.keywords = kw;
    assert_true(search_msg("KEYWORD $Junk", &msg));
    assert_true(search_msg("KEYWORD $JUNK", &msg));
    assert_false(search_msg("UNKEYWORD $junk", &msg));
    assert_false(search_msg("KEYWORD NonJunk", &msg));    /* b not in the name */
    assert_true(search_msg("UNKEYWORD NonJunk", &msg));
    assert_false(search_msg("KEYWORD Unknown", &msg));    /* c has no name */
    assert_true(search_msg("UNKEYWORD Unknown", &msg));
    assert_true(search_msg("KEYWORD $Junk SEEN NOT KEYWORD $Label1", &msg));
    assert_true(search_msg("OR KEYWORD NonJunk KEYWORD $Junk", &msg));
    /* Without a map no keyword is set. */
    msg.keywords = NULL;
    assert_false(search_msg("KEYWORD $Junk", &msg));
    assert_true(search_msg("UNKEYWORD $Junk", &msg));
    maildir_keywords_free(&kw);
}

static void test_sizes_modseq(void **state)
{
    struct imap_msg msg = make_msg(1, 404, "", 0);
    assert_true(search_msg("LARGER 999", &msg));
    assert_false(search_msg("LARGER 1000", &msg));
    assert_true(search_msg("SMALLER 1001", &msg));
    assert_false(search_msg("SMALLER 1000", &msg));
    assert_true(search_msg("MODSEQ 77", &msg));
    assert_true(search_msg("MODSEQ 1", &msg));
    assert_false(search_msg("MODSEQ 78", &msg));
    assert_true(search_msg("MODSEQ \"/flags/\\\\draft\" all 77", &msg));
}

static void test_internal_dates(void **state)
{
    struct imap_msg msg = make_msg(1, 404, "", 0);  /* 27-Nov-2026 09:47:16 UTC */
    assert_false(search_msg("BEFORE 27-Nov-2026", &msg));
    assert_true(search_msg("BEFORE 28-Nov-2026", &msg));
    assert_true(search_msg("ON 27-Nov-2026", &msg));
    assert_false(search_msg("ON 26-Nov-2026", &msg));
    assert_true(search_msg("SINCE 27-Nov-2026", &msg));
    assert_true(search_msg("SINCE 1-Jan-1970", &msg));
    assert_false(search_msg("SINCE 28-Nov-2026", &msg));
    msg.internal_date = 1795737600 - 1;  /* 26-Nov-2026 23:59:59 UTC */
    assert_true(search_msg("ON 26-Nov-2026", &msg));
    msg.internal_date++;
    assert_true(search_msg("ON 27-Nov-2026", &msg));
    msg.internal_date = 0;
    assert_true(search_msg("ON 1-Jan-1970", &msg));
}

static void test_sent_dates(void **state)
{
    /* Thu, 26 Nov 2026 23:30:00 -0800 is 27 Nov in UTC: its own day counts */
    YES("SENTON 26-Nov-2026", 1);
    NO("SENTON 27-Nov-2026", 1);
    YES("SENTBEFORE 27-Nov-2026", 1);
    NO("SENTBEFORE 26-Nov-2026", 1);
    YES("SENTSINCE 26-Nov-2026", 1);
    NO("SENTSINCE 27-Nov-2026", 1);
    YES("SENTON 1-Jan-1999", 2);   /* "1 Jan 99 00:00 GMT" */
    /* no Date: (uid 3) or no file (404): the internal date */
    YES("SENTON 27-Nov-2026", 3);
    YES("SENTON 27-Nov-2026", 404);
    NO("SENTBEFORE 27-Nov-2026", 404);
}

static void test_header_keys(void **state)
{
    YES("FROM john", 1);
    YES("FROM JOHN@example", 1);
    YES("CHARSET UTF-8 FROM \"j\xc3\xb6hn\"", 1);
    YES("CHARSET UTF-8 FROM \"J\xc3\x96HN DOE\"", 1);  /* Ö folds to ö */
    NO("FROM alice", 1);
    YES("TO elise@", 1);
    YES("CHARSET UTF-8 TO \"\xc3\xa9lise\"", 1);  /* =?UTF-8?B?w4lsaXNl?= is Élise */
    YES("CHARSET UTF-8 TO \"\xc3\x89LISE <\"", 1);
    YES("CC carol", 1);
    NO("CC dave", 1);
    YES("BCC dave", 1);
    NO("BCC carol", 1);
    /* Q in ISO-8859-1, folded, then UTF-8; no blank between encoded words */
    YES("CHARSET UTF-8 SUBJECT \"caf\xc3\xa9 cr\xc3\xa8me and more\"", 1);
    YES("CHARSET UTF-8 SUBJECT \"CAF\xc3\x89 CR\xc3\x88ME\"", 1);
    NO("SUBJECT \"=?ISO\"", 1);
    NO("SUBJECT \"creme\"", 1);
    YES("SUBJECT \"\"", 1);  /* has a Subject: */
    YES("HEADER X-Spam yes", 1);
    YES("HEADER x-spam \"\"", 1);
    YES("HEADER X-Empty \"\"", 1);
    NO("HEADER X-None \"\"", 1);
    NO("HEADER X-Spam no", 1);
    NO("HEADER From hello", 1);  /* a body word */
    YES("SUBJECT parts FROM alice", 2);
    NO("SUBJECT forwarded", 2);  /* only in the encapsulated message */
    NO("FROM zed", 2);
}

static void test_address_keys(void **state)
{
    /* the parsed address: comments and blanks inside it are gone */
    YES("FROM user-from@domain.org", 4);
    YES("FROM USER-FROM@DOMAIN.ORG", 4);
    YES("FROM \"m@domain\"", 4);
    YES("FROM comment", 4);                  /* the raw text, too */
    NO("FROM user-other@other.org", 4);      /* only in Subject */
    NO("TO user-from@domain.org", 4);        /* only in From */
    YES("TO to.user@example.test", 4);
    YES("TO \"quoted, name <to.user@example.test>\"", 4);
    YES("TO \"example . test>\"", 4);        /* the raw text as it is */
    /* group members, and a display name decoded (ISO-8859-1 to UTF-8) */
    YES("TO g1@d1.org", 4);
    YES("TO friends", 4);
    YES("CHARSET UTF-8 TO \"J\xc3\xb6rg <jorg@d2.org>\"", 4);
    YES("CHARSET UTF-8 TO \"j\xc3\x96RG\"", 4);
    NO("TO ann@x.test", 4);
    YES("CC ann@x.test", 4);
    YES("CC \"ann comment <ann@\"", 4);      /* a comment names the address */
    YES("BCC undisclosed-recipients", 4);
    NO("BCC to.user", 4);
    YES("FROM \"\"", 4);
    YES("OR FROM nobody TO jorg@d2.ORG", 4);
    YES("FROM \"comment <user-from@domain.org>\"", 4);  /* the comment names it */
    NO("TO \"<g1@d1.org>\"", 4);            /* no display name: no brackets */
    YES("FROM john@example.test", 1);        /* plain addresses as before */
}

static void test_body_and_text(void **state)
{
    YES("BODY \"hello world\"", 1);
    NO("BODY john", 1);
    YES("TEXT john", 1);
    YES("TEXT \"plain text\"", 1);
    YES("TEXT \"x-spam: yes\"", 1);
    NO("TEXT \"yes hello\"", 1);  /* no match across fields and parts */
    YES("TEXT \"\"", 1);
    YES("BODY \"\"", 1);
    NO("BODY \"nothing like this\"", 1);
    /* base64 UTF-8 part */
    YES("CHARSET UTF-8 BODY \"gr\xc3\xbc\xc3\x9f" "e aus\"", 2);
    YES("CHARSET UTF-8 BODY \"GR\xc3\x9c\xc3\x9f" "E AUS berlin\"", 2);
    YES("BODY secret-word-one", 2);
    NO("BODY R3LDvMOf", 2);  /* the encoded form is not the text */
    /* quoted-printable ISO-8859-1 part: soft break, =3D, ï */
    YES("BODY softbreak", 2);
    YES("BODY hyphen=ated", 2);
    YES("CHARSET UTF-8 BODY \"na\xc3\xafve\"", 2);
    YES("CHARSET UTF-8 BODY \"NA\xc3\x8fVE\"", 2);
    NO("BODY \"Soft=\"", 2);
    /* the encapsulated message: its header and body are body text */
    YES("BODY \"forwarded inner\"", 2);
    YES("BODY \"from: zed\"", 2);
    YES("BODY \"inner words\"", 2);
    YES("TEXT \"subject: parts\"", 2);
    NO("BODY \"subject: parts\"", 2);
    /* pieces: raw across 16 KiB, base64 across 4 KiB */
    YES("BODY aaaaneedlebbbb", 3);
    YES("BODY xxxcrossingyyy", 3);
    NO("BODY needlex", 3);
}

static void test_loading(void **state)
{
    struct imap_msg msg = make_msg(1, 2, "", 0);
    struct imap_msg_content *content = NULL;
    struct imap_command *cmd = parse("a SEARCH SUBJECT parts\r\n");
    struct imap_search *s = imap_search_compile(cmd, 10, 50);
    assert_true(imap_search_needs_content(s));
    assert_int_equal(imap_search_match(s, &msg, &content), 1);
    assert_false(content->whole);  /* the header was enough */
    imap_search_free(&s);
    imap_command_destroy(&cmd);
    imap_msg_content_free(&content);

    /* cheap keys first: a failing flag key means no open at all */
    cmd = parse("a SEARCH BODY foo SEEN\r\n");
    s = imap_search_compile(cmd, 10, 50);
    opens = 0;
    assert_int_equal(imap_search_match(s, &msg, &content), 0);
    assert_int_equal(opens, 0);
    assert_null(content);
    /* one load (whole) for header and body keys together */
    imap_search_free(&s);
    imap_command_destroy(&cmd);
    cmd = parse("a SEARCH SUBJECT parts BODY inner OR FROM nobody TEXT zed\r\n");
    s = imap_search_compile(cmd, 10, 50);
    assert_int_equal(imap_search_match(s, &msg, &content), 1);
    assert_int_equal(opens, 1);
    assert_true(content->whole);
    imap_search_free(&s);
    imap_command_destroy(&cmd);
    imap_msg_content_free(&content);

    cmd = parse("a SEARCH OR SEEN NOT FLAGGED LARGER 5 SINCE 1-Jan-2000 UID 1:* BODY \"\"\r\n");
    s = imap_search_compile(cmd, 10, 50);
    assert_false(imap_search_needs_content(s));
    imap_search_free(&s);
    imap_command_destroy(&cmd);
    cmd = parse("a SEARCH NOT SENTON 1-Jan-2000\r\n");
    s = imap_search_compile(cmd, 10, 50);
    assert_true(imap_search_needs_content(s));
    imap_search_free(&s);
    imap_command_destroy(&cmd);
}

/* ---- the kept header (struct imap_msg_cache header_get / header_loaded) ---- */

static int search_kept(const char *keys, uint32_t uid, struct header_store *h)
{
    struct imap_msg_cache cache = {0};
    cache.header_get = store_get;
    cache.header_loaded = store_loaded;
    cache.header_ctx = h;
    struct imap_msg msg = make_msg(3, uid, "", 0);
    msg.cache = &cache;
    return search_msg(keys, &msg);
}

static const char *const kept_keys[] = {
    "SUBJECT \"caf\xc3\xa9 cr\xc3\xa8me and\"", "FROM john", "FROM \"j\xc3\xb6hn\"", "TO elise",
    "CC carol", "BCC dave", "HEADER X-Spam yes", "HEADER X-Empty \"\"", "HEADER X-None \"\"",
    "SENTON 26-Nov-2026", "SENTSINCE 27-Nov-2026", "SENTBEFORE 2-Jan-1999", "SUBJECT parts",
    "FROM alice", "TO to.user@example.test", "TO jorg", "BCC undisclosed-recipients",
    "SUBJECT big", "NOT SUBJECT x", "OR SUBJECT nothing FROM zed", "TEXT world",
    "TEXT \"subject: parts\"", "TEXT zed", "TEXT needle", "TEXT crossing",
    "SUBJECT parts BODY inner", "OR SUBJECT zzz BODY \"hello world\"",
};
#define NKEPT_KEYS (sizeof(kept_keys) / sizeof(kept_keys[0]))

static void test_kept_header_same_answers(void **state)
{
    static const uint32_t uids[] = {1, 2, 3, 4};
    for (size_t u = 0; u < 4; u++) {
        uint32_t uid = uids[u];
        /* read once through the hooks, the header is handed over ... */
        struct header_store h = {0};
        assert_int_equal(search_kept("HEADER Subject \"\"", uid, &h), 1);
        assert_int_equal(h.gets, 1);
        assert_int_equal(h.loads, 1);
        h.give = h.loaded;
        h.give_len = h.loaded_len;
        h.loaded = NULL;
        for (size_t k = 0; k < NKEPT_KEYS; k++) {
            int plain = search_uid(kept_keys[k], uid);
            h.loads = 0;
            int kept = search_kept(kept_keys[k], uid, &h);
            if (plain != kept)
                fail_msg("uid %u, %s: %d without the kept header, %d with it", uid,
                         kept_keys[k], plain, kept);
            /* ... and never again (a search that reads the body after
               the kept header says nothing: the header is kept) */
            assert_int_equal(h.loads, 0);
        }
        free((char *)h.give); /* this test allocates it */
        free(h.loaded);
    }
}

static void test_kept_header_needs_no_file(void **state)
{
    struct header_store h = {0};
    /* a header-only search reads the file once, header-only */
    opens = 0;
    assert_int_equal(search_kept("SUBJECT parts", 2, &h), 1);
    assert_int_equal(opens, 1);
    assert_int_equal(h.loads, 1);
    assert_int_equal(h.loaded_len, strstr(s2, "\r\n\r\n") + 4 - s2);
    assert_memory_equal(h.loaded, s2, h.loaded_len);
    h.give = h.loaded;
    h.give_len = h.loaded_len;
    h.loaded = NULL;
    h.gets = h.loads = 0;
    /* kept: header keys, SENT* and a TEXT found in the header need no file */
    opens = 0;
    assert_int_equal(search_kept("SUBJECT parts FROM alice NOT TO bob", 2, &h), 1);
    assert_int_equal(search_kept("SENTON 1-Jan-1999", 2, &h), 1);
    assert_int_equal(search_kept("HEADER Content-Type mixed", 2, &h), 1);
    assert_int_equal(search_kept("TEXT \"subject: parts\"", 2, &h), 1);
    assert_int_equal(search_kept("OR SUBJECT nothing HEADER X-None \"\"", 2, &h), 0);
    assert_int_equal(opens, 0);
    assert_int_equal(h.gets, 5);
    /* TEXT not in the header, and BODY: the whole file, nothing handed over */
    assert_int_equal(search_kept("TEXT \"inner words\"", 2, &h), 1);
    assert_int_equal(opens, 1);
    assert_int_equal(search_kept("SUBJECT parts BODY soft", 2, &h), 1);
    assert_int_equal(opens, 2);
    assert_int_equal(h.loads, 0);
    /* BODY alone does not ask for the header */
    h.gets = 0;
    assert_int_equal(search_kept("BODY \"inner words\"", 2, &h), 1);
    assert_int_equal(h.gets, 0);
    /* cheap keys that settle it ask nothing */
    assert_int_equal(search_kept("SEEN SUBJECT parts", 2, &h), 0);
    assert_int_equal(h.gets, 0);
    /* the file gone (unreadable): the kept header still answers */
    opens = 0;
    assert_int_equal(search_kept("SUBJECT parts", 404, &h), 1);
    assert_int_equal(search_kept("TEXT \"subject: parts\"", 404, &h), 1);
    assert_int_equal(opens, 0);
    assert_int_equal(search_kept("BODY soft", 404, &h), 0);
    assert_int_equal(search_kept("TEXT nothing", 404, &h), 0);
    free((char *)h.give); /* this test allocates it */
    free(h.loaded);

    /* TEXT without a kept header: one whole load, its header handed over */
    struct header_store t = {0};
    opens = 0;
    assert_int_equal(search_kept("TEXT \"hello world\"", 1, &t), 1);
    assert_int_equal(opens, 1);
    assert_int_equal(t.gets, 1);
    assert_int_equal(t.loads, 1);
    assert_int_equal(t.loaded_len, strstr(s1, "\n\n") + 2 - s1);
    assert_memory_equal(t.loaded, s1, t.loaded_len);
    free(t.loaded);
    /* a missing file without a kept header: no match, nothing handed over */
    struct header_store m = {0};
    assert_int_equal(search_kept("SUBJECT x", 404, &m), 0);
    assert_int_equal(search_kept("TEXT x", 404, &m), 0);
    assert_int_equal(m.loads, 0);
}

static void test_missing_file(void **state)
{
    NO("SUBJECT x", 404);
    YES("NOT SUBJECT x", 404);
    NO("BODY x", 404);
    NO("TEXT x", 404);
    YES("TEXT \"\"", 404);
    YES("ALL", 404);
    NO("HEADER X-Spam \"\"", 404);
}

static void test_parse_date(void **state)
{
    static const struct {
        const char *text;
        int ok;
        int64_t utc;
        int y, m, d;
    } cases[] = {
        {"Fri, 27 Nov 2026 09:47:16 +0000", 1, 1795772836, 2026, 11, 27},
        {"27 Nov 2026 09:47:16 +0000", 1, 1795772836, 2026, 11, 27},
        {"Fri, 27 Nov 2026 10:47:16 +0100", 1, 1795772836, 2026, 11, 27},
        {"Thu, 26 Nov 2026 23:30:00 -0800", 1, 1795764600, 2026, 11, 26},
        {"Fri, 27 Nov 2026 09:47 +0000", 1, 1795772820, 2026, 11, 27},
        {"Fri,27 Nov 2026 09:47:16 GMT", 1, 1795772836, 2026, 11, 27},
        {"Fri, 27 Nov 2026 04:47:16 EST", 1, 1795772836, 2026, 11, 27},
        {"Fri, 27 Nov 2026 01:47:16 PST", 1, 1795772836, 2026, 11, 27},
        {"Fri, 27 Nov 2026 09:47:16 UT", 1, 1795772836, 2026, 11, 27},
        {"Fri, 27 Nov 2026 09:47:16 A", 1, 1795772836, 2026, 11, 27},  /* military: -0000 */
        {"Fri, 27 Nov 2026 09:47:16", 1, 1795772836, 2026, 11, 27},    /* no zone */
        {"Fri, 27 Nov 2026 09:47:16 +0000 (UTC)", 1, 1795772836, 2026, 11, 27},
        {" (comment) Friday , 27 (x (nested)) November 2026 09 : 47 : 16 +0000", 1,
         1795772836, 2026, 11, 27},
        {"\r\n Fri, 27 Nov\r\n 2026 09:47:16 +0000", 1, 1795772836, 2026, 11, 27},
        {"7 nov 2026 00:00:00 +0000", 1, 1794009600, 2026, 11, 7},
        {"27-Nov-2026 09:47:16 +0000", 1, 1795772836, 2026, 11, 27},
        {"1 Jan 99 00:00 GMT", 1, 915148800, 1999, 1, 1},
        {"1 Jan 49 00:00 GMT", 1, 2493072000LL, 2049, 1, 1},
        {"1 Jan 103 00:00 GMT", 1, 1041379200, 2003, 1, 1},
        {"29 Feb 2024 12:00:00 +0000", 1, 1709208000, 2024, 2, 29},
        {"30 Sep 2026 23:59:60 +0000", 1, 1790812800, 2026, 9, 30},  /* leap second */
        {"1 Sept 2026 00:00:00 +0000", 1, 1788220800, 2026, 9, 1},
        {"1 Jan 1970 00:00:00 +0100", 1, -3600, 1970, 1, 1},
        {"29 Feb 2026 12:00:00 +0000", 0, 0, 0, 0, 0},
        {"31 Apr 2026 12:00:00 +0000", 0, 0, 0, 0, 0},
        {"0 Nov 2026 12:00:00 +0000", 0, 0, 0, 0, 0},
        {"27 Foo 2026 12:00:00 +0000", 0, 0, 0, 0, 0},
        {"27 Nov 2026 24:00:00 +0000", 0, 0, 0, 0, 0},
        {"27 Nov 2026 12:60:00 +0000", 0, 0, 0, 0, 0},
        {"27 Nov 2026 12:00:61 +0000", 0, 0, 0, 0, 0},
        {"27 Nov 2026 12:00:00 +00", 0, 0, 0, 0, 0},
        {"27 Nov 2026 12:00:00 +0099", 0, 0, 0, 0, 0},
        {"27 Nov 2026", 0, 0, 0, 0, 0},
        {"27 Nov 2026 12", 0, 0, 0, 0, 0},
        {"Nov 27 2026 12:00:00", 0, 0, 0, 0, 0},
        {"2026-11-27T12:00:00Z", 0, 0, 0, 0, 0},
        {"1 Jan 1 00:00 GMT", 0, 0, 0, 0, 0},
        {"Fr, 27 Nov 2026 12:00:00", 0, 0, 0, 0, 0},
        {"", 0, 0, 0, 0, 0},
        {"(unterminated comment", 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t utc = -1;
        int y = 0, m = 0, d = 0;
        int rc = imap_msg_parse_date(cases[i].text, strlen(cases[i].text), &utc, &y, &m, &d);
        if (rc != (cases[i].ok ? 0 : -1))
            fail_msg("\"%s\": rc %d", cases[i].text, rc);
        if (!cases[i].ok)
            continue;
        if (utc != cases[i].utc || y != cases[i].y || m != cases[i].m || d != cases[i].d)
            fail_msg("\"%s\": %lld %d-%d-%d", cases[i].text, (long long)utc, y, m, d);
    }
    /* the length bounds the text: no NUL needed */
    assert_int_equal(imap_msg_parse_date("1 Jan 2000 00:00 +0000XYZ", 22, NULL, NULL, NULL, NULL),
                     0);
    assert_int_equal(imap_msg_parse_date("1 Jan 2000 00:00", 12, NULL, NULL, NULL, NULL), -1);
}

static void expect_decoded(const char *raw, const char *expected)
{
    struct buf b;
    buf_init(&b, 0);
    imap_msg_decode_header(&b, raw, strlen(raw));
    assert_string_equal(b.data ? b.data : "", expected);
    buf_free(&b);
}

static void test_decode_header(void **state)
{
    expect_decoded(" plain  value ", "plain  value");
    expect_decoded("=?utf-8?b?SGVsbG8=?= =?UTF-8?B?V29ybGQ=?=", "HelloWorld");
    expect_decoded("=?utf-8?b?SGVsbG8=?=\r\n\t=?UTF-8?B?V29ybGQ=?=", "HelloWorld");
    expect_decoded("=?utf-8?b?SGVsbG8=?==?UTF-8?B?V29ybGQ=?=", "HelloWorld");
    expect_decoded("a =?utf-8?q?b?= c", "a b c");
    expect_decoded("a =?utf-8?q?b_c=3D?=d", "a b c=d");
    expect_decoded("=?iso-8859-1*en?q?caf=E9?=", "caf\xc3\xa9");
    expect_decoded("=?latin1?B?6Q==?=", "\xc3\xa9");
    expect_decoded("=?us-ascii?q?a=5Fb?=", "a_b");
    expect_decoded("=?utf-8?x?abc?=", "=?utf-8?x?abc?=");
    expect_decoded("=?utf-8?q?no end", "=?utf-8?q?no end");
    expect_decoded("=??q?empty charset?=", "=??q?empty charset?=");
    expect_decoded("=?utf-8?q?a b?=", "=?utf-8?q?a b?=");
    expect_decoded("=?koi8-r?b?8g==?=", "\xf2");  /* other charsets: raw bytes */
    expect_decoded("x=?utf-8?q?y?=", "xy");
    expect_decoded("=?utf-8?q?=E2=82?= =?utf-8?q?=AC?=", "\xe2\x82\xac");  /* split character */
    expect_decoded("\"=?utf-8?q?quoted?=\"", "\"quoted\"");
    expect_decoded("=", "=");
    expect_decoded("", "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sets),
        cmocka_unit_test(test_empty_view),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_sizes_modseq),
        cmocka_unit_test(test_internal_dates),
        cmocka_unit_test(test_sent_dates),
        cmocka_unit_test(test_header_keys),
        cmocka_unit_test(test_address_keys),
        cmocka_unit_test(test_body_and_text),
        cmocka_unit_test(test_loading),
        cmocka_unit_test(test_kept_header_same_answers),
        cmocka_unit_test(test_kept_header_needs_no_file),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_parse_date),
        cmocka_unit_test(test_decode_header),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
