/*
 * NAME
 *	test-content-filter - unit tests for lib/content_filter.c
 * DESCRIPTION
 *	Every message is run three ways (whole, one byte at a time, and in
 *	odd-sized chunks) and the three outputs, verdicts and replies must
 *	agree. Tables are pcre: files in a mkdtemp() directory; log lines
 *	go to a file there so tests can assert on them.
 */
#include <ftw.h>
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
#include "config.h"
#include "content_filter.h"
#include "log.h"
#include "xalloc.h"

struct fixture {
    char dir[64];
    char *log;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test-cf.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->log = xasprintf("%s/log", f->dir);
    log_set_file(f->log);
    *state = f;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    log_set_file("/dev/null");
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f->log);
    free(f);
    return 0;
}

/* Writes a pcre table file; returns its "pcre:/path" spec (malloc'd). */
static char *table(struct fixture *f, const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    char *spec = xasprintf("pcre:%s", path);
    free(path);
    return spec;
}

static char *read_all(const char *path)
{
    struct buf b;
    buf_init(&b, 0);
    FILE *fp = fopen(path, "r");
    if (fp != NULL) {
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
            buf_append(&b, chunk, n);
        fclose(fp);
    }
    char *s = buf_steal(&b);
    buf_free(&b);
    return s ? s : xstrdup("");
}

static int log_has(struct fixture *f, const char *needle)
{
    char *text = read_all(f->log);
    int found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

static void log_clear(struct fixture *f)
{
    FILE *fp = fopen(f->log, "w");
    if (fp != NULL)
        fclose(fp);
}

static void collect(void *ctx, const char *data, size_t len)
{
    assert_true(len > 0);
    buf_append(ctx, data, len);
}

static const struct content_filter_log test_log = {
    .queue_id = "ABCDEF0123456789A",
    .client = "unknown[192.0.2.1]",
    .sender = "alice@example.org",
    .recipient = "bob@example.test",
    .protocol = "ESMTP",
    .helo = "client.example.org",
};

struct result {
    char *out;
    size_t out_len;
    enum content_verdict verdict;
    char *reply;
};

static void result_free(struct result *r)
{
    free(r->out);
    free(r->reply);
    memset(r, 0, sizeof(*r));
}

/* mode 0: whole; 1: byte by byte; 2: chunks of 1..23 bytes. */
static void run_mode(struct content_checks *checks, const struct content_filter_limits *lim,
                     const char *msg, size_t len, int mode, struct result *r)
{
    struct buf out;
    buf_init(&out, 0);
    struct content_filter *cf = content_filter_create(checks, lim, &test_log, collect, &out);
    size_t pos = 0, step = 7;
    while (pos < len) {
        size_t n = mode == 0 ? len - pos : mode == 1 ? 1 : step;
        if (n > len - pos)
            n = len - pos;
        content_filter_input(cf, msg + pos, n);
        pos += n;
        step = (step * 5 + 3) % 23 + 1;
    }
    content_filter_end(cf);
    r->out_len = out.len;
    r->out = buf_steal(&out);
    if (r->out == NULL)
        r->out = xstrdup("");
    buf_free(&out);
    r->verdict = content_filter_verdict(cf);
    const char *reply = content_filter_reply(cf);
    r->reply = reply ? xstrdup(reply) : NULL;
    content_filter_destroy(&cf);
    assert_null(cf);
}

/* Runs all three modes, checks they agree, returns the result. */
static void run(struct content_checks *checks, const struct content_filter_limits *lim,
                const char *msg, struct result *r)
{
    size_t len = strlen(msg);
    run_mode(checks, lim, msg, len, 0, r);
    for (int mode = 1; mode <= 2; mode++) {
        struct result o;
        run_mode(checks, lim, msg, len, mode, &o);
        if (o.out_len != r->out_len || memcmp(o.out, r->out, r->out_len) != 0)
            fail_msg("mode %d output differs:\n--- whole:\n%s\n--- split:\n%s", mode, r->out,
                     o.out);
        assert_int_equal(o.verdict, r->verdict);
        if (r->reply == NULL)
            assert_null(o.reply);
        else
            assert_string_equal(o.reply, r->reply);
        result_free(&o);
    }
}

static struct content_checks *open_checks(const char *h, const char *m, const char *n,
                                          const char *b)
{
    const char *err = NULL;
    struct content_checks *c = content_checks_open(h, m, n, b, &err);
    if (c == NULL)
        fail_msg("content_checks_open: %s", err);
    return c;
}

/* ---- headers ---- */

static const char header_rules[] =
    "/^Subject: reject-me/ REJECT\n"
    "/^Subject: reject-text/ REJECT No spam here, thanks\n"
    "/^Subject: reject-code/ REJECT 5.7.0 Go away\n"
    "/^Subject: reject-temp/ REJECT 4.7.1 Try later\n"
    "/^Subject: discard/ DISCARD gone\n"
    "/^Subject: hold/ hold held for review\n"
    "/^Subject: warn/ WARN suspicious\n"
    "/^Subject: info/ INFO noted\n"
    "/^X-Ignore:/ IGNORE\n"
    "/^X-Replace: (.*)/ REPLACE X-Replaced: <$1>\n"
    "/^X-Prepend:/ PREPEND X-Added: yes\n"
    "/^X-Dunno:/ DUNNO\n"
    "/^X-Ok:/ OK\n"
    "/^X-Bad-Prepend:/ PREPEND not a header\n"
    "/^X-Unknown:/ FROBNICATE now\n"
    "/^X-Folded: one\\n\\ttwo$/ WARN folded-match\n"
    "/^X-Folded:.*two/ REJECT dot does not cross newlines\n"
    "/^X-Fold-Ignore:/ IGNORE\n";

static void test_header_edit_actions_and_pass_through(void **state)
{
    struct fixture *f = *state;
    char *spec = table(f, "h.pcre", header_rules);
    struct content_checks *c = open_checks(spec, "", "", "");
    struct result r;
    run(c, NULL,
        "Received: from x\n\tby y\n"
        "X-Ignore: drop me\n"
        "X-Replace: old value\n"
        "X-Prepend: here\n"
        "X-Dunno: a\n"
        "X-Ok: b\n"
        "X-Bad-Prepend: c\n"
        "X-Unknown: d\n"
        "X-Fold-Ignore: first\n  second\n\tthird\n"
        "X-Folded: one\n\ttwo\n"
        "Subject: warn me\n"
        "Subject: info me\n"
        "\n"
        "X-Ignore: in the body, not a header\n",
        &r);
    assert_string_equal(r.out,
                        "Received: from x\n\tby y\n"
                        "X-Replaced: <old value>\n"
                        "X-Added: yes\n"
                        "X-Prepend: here\n"
                        "X-Dunno: a\n"
                        "X-Ok: b\n"
                        "X-Bad-Prepend: c\n"
                        "X-Unknown: d\n"
                        "X-Folded: one\n\ttwo\n"
                        "Subject: warn me\n"
                        "Subject: info me\n"
                        "\n"
                        "X-Ignore: in the body, not a header\n");
    assert_int_equal(r.verdict, CONTENT_ACCEPT);
    assert_null(r.reply);
    assert_true(log_has(f, "ABCDEF0123456789A: warning: header X-Folded: one??two from "
                           "unknown[192.0.2.1]; from=<alice@example.org> "
                           "to=<bob@example.test> proto=ESMTP helo=<client.example.org>: "
                           "folded-match"));
    assert_true(log_has(f, "ABCDEF0123456789A: warning: header Subject: warn me from "
                           "unknown[192.0.2.1]; from=<alice@example.org> "
                           "to=<bob@example.test> proto=ESMTP helo=<client.example.org>: "
                           "suspicious"));
    assert_true(log_has(f, "ABCDEF0123456789A: info: header Subject: info me from "));
    assert_true(log_has(f, "unknown action \"FROBNICATE\""));
    assert_true(log_has(f, "bad PREPEND text \"not a header\""));
    result_free(&r);
    content_checks_close(&c);
    assert_null(c);
    free(spec);
}

static void test_header_reject_texts_and_codes(void **state)
{
    struct fixture *f = *state;
    char *spec = table(f, "h.pcre", header_rules);
    struct content_checks *c = open_checks(spec, "", "", "");
    static const struct {
        const char *subject;
        const char *reply;
    } cases[] = {
        {"reject-me", "550 5.7.1 Message content rejected"},
        {"reject-text", "550 5.7.1 No spam here, thanks"},
        {"reject-code", "550 5.7.0 Go away"},
        {"reject-temp", "451 4.7.1 Try later"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *msg = xasprintf("From: a@b\nSubject: %s\nX-Prepend: x\n\nbody\n", cases[i].subject);
        struct result r;
        run(c, NULL, msg, &r);
        assert_int_equal(r.verdict, CONTENT_REJECT);
        assert_string_equal(r.reply, cases[i].reply);
        /* Nothing is written from the rejected header on. */
        assert_string_equal(r.out, "From: a@b\n");
        result_free(&r);
        free(msg);
    }
    assert_true(log_has(f, "ABCDEF0123456789A: reject: header Subject: reject-me from "
                           "unknown[192.0.2.1]; from=<alice@example.org> to=<bob@example.test> "
                           "proto=ESMTP helo=<client.example.org>: 5.7.1 Message content "
                           "rejected"));
    assert_true(log_has(f, "reject: header Subject: reject-code from"));
    assert_true(log_has(f, ": 5.7.0 Go away"));
    content_checks_close(&c);
    free(spec);
}

static void test_discard_and_hold_verdicts(void **state)
{
    struct fixture *f = *state;
    char *spec = table(f, "h.pcre", header_rules);
    struct content_checks *c = open_checks(spec, "", "", "");
    struct result r;
    run(c, NULL, "Subject: hold this\nX-Ignore: y\n\nbody\n", &r);
    assert_int_equal(r.verdict, CONTENT_HOLD);
    assert_null(r.reply);
    assert_string_equal(r.out, "Subject: hold this\n\nbody\n");
    assert_true(log_has(f, "ABCDEF0123456789A: hold: header Subject: hold this from "
                           "unknown[192.0.2.1];"));
    assert_true(log_has(f, "helo=<client.example.org>: held for review"));
    result_free(&r);

    /* HOLD then DISCARD: DISCARD is final. */
    run(c, NULL, "Subject: hold this\nSubject: discard it\n\nbody\n", &r);
    assert_int_equal(r.verdict, CONTENT_DISCARD);
    assert_null(r.reply);
    assert_true(log_has(f, "discard: header Subject: discard it from"));
    result_free(&r);

    /* HOLD then REJECT: REJECT wins. */
    run(c, NULL, "Subject: hold this\nSubject: reject-me\n\nbody\n", &r);
    assert_int_equal(r.verdict, CONTENT_REJECT);
    result_free(&r);
    content_checks_close(&c);
    free(spec);
}

static void test_folded_header_is_one_key_and_byte_identical(void **state)
{
    struct fixture *f = *state;
    char *spec = table(f, "h.pcre",
                       "/^Subject: hello\\n\\tworld\\n  again$/ WARN whole\n"
                       "/^Subject:.*again/s PREPEND X-Seen: $0\n");
    struct content_checks *c = open_checks(spec, "", "", "");
    static const char msg[] = "From: a@b\nSubject: hello\n\tworld\n  again\nTo: c@d\n\nbody\n";
    struct result r;
    run(c, NULL, msg, &r);
    assert_string_equal(r.out, msg);
    assert_true(log_has(f, "warning: header Subject: hello??world?  again from"));
    result_free(&r);
    content_checks_close(&c);
    free(spec);

    /* Without any rule the message is byte-identical too. */
    spec = table(f, "none.pcre", "/^X-Never:/ REJECT\n");
    c = open_checks(spec, spec, spec, spec);
    static const char msg2[] = "Subject: a\n b\n\tc\nX: \n\n\nline\n\n.\n..\nend";
    run(c, NULL, msg2, &r);
    assert_int_equal(r.out_len, strlen(msg2));
    assert_memory_equal(r.out, msg2, r.out_len);
    result_free(&r);
    content_checks_close(&c);
    free(spec);
}

static void test_prepend_with_captured_folded_text_keeps_header_shape(void **state)
{
    struct fixture *f = *state;
    char *spec = table(f, "h.pcre", "/^Subject: (.*)$/s REPLACE Subject: [tagged] $1\n");
    struct content_checks *c = open_checks(spec, "", "", "");
    struct result r;
    run(c, NULL, "Subject: one\n\ttwo\n\nb\n", &r);
    assert_string_equal(r.out, "Subject: [tagged] one\n\ttwo\n\nb\n");
    result_free(&r);
    content_checks_close(&c);
    free(spec);
}

/* ---- MIME ---- */

static const char mime_msg[] =
    "From: a@b\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed;\n"
    "\tboundary=\"outer\"\n"
    "Subject: primary\n"
    "\n"
    "preamble line\n"
    "--outer\n"
    "Content-Type: text/plain\n"
    "X-Part: first\n"
    "\n"
    "first body\n"
    "--outer\n"
    "Content-Type: application/octet-stream\n"
    "Content-Disposition: attachment; filename=\"evil.exe\"\n"
    "\n"
    "TVqQAAMAAAAEAAAA\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "Subject: inner\n"
    "X-Nested: yes\n"
    "Content-Type: multipart/alternative; boundary=inner\n"
    "\n"
    "--inner\n"
    "X-Deep: 1\n"
    "\n"
    "deep body\n"
    "--outer\n"
    "X-After: back in outer\n"
    "\n"
    "last part body\n"
    "--outer--\n"
    "epilogue\n";

static void test_mime_nested_and_primary_headers_go_to_their_tables(void **state)
{
    struct fixture *f = *state;
    char *h = table(f, "h.pcre",
                    "/^Subject: (.*)/ WARN primary-$1\n"
                    "/^X-/ WARN header_checks-saw-X\n"
                    "/^Content-/ WARN header_checks-saw-content\n");
    char *m = table(f, "m.pcre",
                    "/^(Content-[a-z]+|MIME-Version|X-[a-z]+):/ WARN mime-$1\n");
    char *n = table(f, "n.pcre", "/^(Subject|X-[a-z]+): (.*)/ WARN nested-$1-$2\n");
    char *b = table(f, "b.pcre", "/^(.*)$/ WARN body=$1\n");
    struct content_checks *c = open_checks(h, m, n, b);
    struct result r;
    run(c, NULL, mime_msg, &r);
    assert_string_equal(r.out, mime_msg);
    assert_int_equal(r.verdict, CONTENT_ACCEPT);

    /* Primary: non-MIME headers -> header_checks, MIME ones -> mime. */
    assert_true(log_has(f, "header Subject: primary from unknown[192.0.2.1]; from=<alice@example.org> to=<bob@example.test> proto=ESMTP helo=<client.example.org>: primary-primary"));
    assert_true(log_has(f, "header MIME-Version: 1.0 from"));
    assert_true(log_has(f, "mime-MIME-Version"));
    assert_true(log_has(f, "header Content-Type: multipart/mixed;??boundary=\"outer\" from"));
    assert_false(log_has(f, "header_checks-saw-content"));
    /* Part headers (also non-MIME ones) -> mime_header_checks. */
    assert_true(log_has(f, "header X-Part: first from"));
    assert_true(log_has(f, ": mime-X-Part"));
    assert_true(log_has(f, ": mime-Content-Disposition"));
    assert_true(log_has(f, ": mime-X-Deep"));
    assert_true(log_has(f, ": mime-X-After"));
    assert_false(log_has(f, "header_checks-saw-X"));
    /* Attached message headers -> nested_header_checks, its MIME ones -> mime. */
    assert_true(log_has(f, ": nested-Subject-inner"));
    assert_true(log_has(f, ": nested-X-Nested-yes"));
    assert_false(log_has(f, "primary-inner"));
    assert_false(log_has(f, "nested-Content"));
    /* Body lines of every part, boundaries included; header lines never. */
    assert_true(log_has(f, "body preamble line from"));
    assert_true(log_has(f, "body --outer from"));
    assert_true(log_has(f, ": body=first body"));
    assert_true(log_has(f, ": body=TVqQAAMAAAAEAAAA"));
    assert_true(log_has(f, ": body=deep body"));
    assert_true(log_has(f, ": body=--inner"));
    assert_true(log_has(f, ": body=last part body"));
    assert_true(log_has(f, ": body=--outer--"));
    assert_true(log_has(f, ": body=epilogue"));
    assert_false(log_has(f, ": body=X-Part"));
    assert_false(log_has(f, ": body=Subject: inner"));
    assert_false(log_has(f, ": body=X-After"));
    result_free(&r);
    content_checks_close(&c);
    free(h);
    free(m);
    free(n);
    free(b);
}

static void test_mime_header_reject_and_nested_hold(void **state)
{
    struct fixture *f = *state;
    char *h = table(f, "h.pcre", "/^Subject: inner/ REJECT must not see nested\n");
    char *m = table(f, "m.pcre",
                    "/^Content-Disposition:.*filename=\"?[^\"]*\\.(exe|scr)/ REJECT "
                    "Executable attachments are not accepted\n");
    char *n = table(f, "n.pcre", "/^Subject: inner/ HOLD nested subject\n");
    struct content_checks *c = open_checks(h, m, n, "");
    struct result r;
    run(c, NULL, mime_msg, &r);
    assert_int_equal(r.verdict, CONTENT_REJECT);
    assert_string_equal(r.reply, "550 5.7.1 Executable attachments are not accepted");
    assert_true(log_has(f, "reject: header Content-Disposition: attachment; "
                           "filename=\"evil.exe\" from unknown[192.0.2.1];"));
    result_free(&r);
    content_checks_close(&c);

    /* Without the attachment rule the nested Subject holds the message. */
    c = open_checks(h, "", n, "");
    run(c, NULL, mime_msg, &r);
    assert_int_equal(r.verdict, CONTENT_HOLD);
    assert_string_equal(r.out, mime_msg);
    assert_true(log_has(f, "hold: header Subject: inner from"));
    result_free(&r);
    content_checks_close(&c);
    free(h);
    free(m);
    free(n);
}

static void test_mime_part_header_edits(void **state)
{
    struct fixture *f = *state;
    char *m = table(f, "m.pcre",
                    "/^X-Part:/ IGNORE\n"
                    "/^X-After: (.*)/ REPLACE X-After: edited $1\n"
                    "/^X-Deep:/ PREPEND X-Before-Deep: 1\n");
    struct content_checks *c = open_checks("", m, "", "");
    struct result r;
    run(c, NULL, mime_msg, &r);
    assert_null(strstr(r.out, "X-Part:"));
    assert_non_null(strstr(r.out, "\nX-After: edited back in outer\n\nlast part body\n"));
    assert_non_null(strstr(r.out, "\n--inner\nX-Before-Deep: 1\nX-Deep: 1\n\ndeep body\n"));
    result_free(&r);
    content_checks_close(&c);
    free(m);
}

static void test_digest_parts_default_to_message_rfc822(void **state)
{
    struct fixture *f = *state;
    char *n = table(f, "n.pcre", "/^Subject: (.*)/ WARN nested-$1\n");
    char *h = table(f, "h.pcre", "/^Subject: (.*)/ WARN primary-$1\n");
    struct content_checks *c = open_checks(h, "", n, "");
    struct result r;
    run(c, NULL,
        "Subject: digest\n"
        "Content-Type: multipart/digest; boundary=d\n"
        "\n"
        "--d\n"
        "\n"
        "Subject: digested one\n"
        "\n"
        "text\n"
        "--d\n"
        "Content-Type: text/plain\n"
        "\n"
        "Subject: not a header here\n"
        "--d--\n",
        &r);
    assert_true(log_has(f, ": primary-digest"));
    assert_true(log_has(f, ": nested-digested one"));
    assert_false(log_has(f, "not a header here"));
    result_free(&r);
    content_checks_close(&c);
    free(n);
    free(h);
}

static void test_encoded_message_rfc822_is_not_descended(void **state)
{
    struct fixture *f = *state;
    char *n = table(f, "n.pcre", "/^Subject:/ REJECT nested\n");
    struct content_checks *c = open_checks("", "", n, "");
    struct result r;
    run(c, NULL,
        "Content-Type: message/rfc822\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        "Subject: looks nested but is encoded\n",
        &r);
    assert_int_equal(r.verdict, CONTENT_ACCEPT);
    result_free(&r);
    /* Not encoded: descended. */
    run(c, NULL, "Content-Type: message/rfc822\n\nSubject: nested\n\nb\n", &r);
    assert_int_equal(r.verdict, CONTENT_REJECT);
    assert_string_equal(r.reply, "550 5.7.1 nested");
    result_free(&r);
    content_checks_close(&c);
    free(n);
}

static void test_mime_depth_limit_makes_deeper_parts_opaque(void **state)
{
    struct fixture *f = *state;
    char *m = table(f, "m.pcre", "/^X-Level: (.*)/ WARN level-$1\n");
    char *b = table(f, "b.pcre", "/^X-Level: (.*)/ WARN body-level-$1\n");
    struct content_checks *c = open_checks("", m, "", b);
    struct content_filter_limits lim;
    content_filter_limits_default(&lim);
    lim.max_depth = 2;
    struct result r;
    run(c, &lim,
        "Content-Type: multipart/mixed; boundary=a\n\n"
        "--a\nX-Level: 1\nContent-Type: multipart/mixed; boundary=b\n\n"
        "--b\nX-Level: 2\nContent-Type: multipart/mixed; boundary=c\n\n"
        "--c\nX-Level: 3\n\nthree\n--c--\n--b--\n--a--\n",
        &r);
    assert_true(log_has(f, ": level-1"));
    assert_true(log_has(f, ": level-2"));
    assert_false(log_has(f, ": level-3"));
    assert_true(log_has(f, ": body-level-3"));
    result_free(&r);
    content_checks_close(&c);
    free(m);
    free(b);
}

/* ---- body ---- */

static void test_body_actions(void **state)
{
    struct fixture *f = *state;
    char *b = table(f, "b.pcre",
                    "/^drop me/ IGNORE\n"
                    "/^replace (.*)/ REPLACE replaced: $1\n"
                    "/^prepend/ PREPEND inserted line\n"
                    "/^warn/ WARN body warning\n"
                    "/^hold/ HOLD\n"
                    "/^spam spam$/ REJECT\n");
    struct content_checks *c = open_checks("", "", "", b);
    struct result r;
    run(c, NULL,
        "Subject: drop me\n\n"
        "keep\n"
        "drop me please\n"
        "replace this\n"
        "prepend here\n"
        "warn line\n"
        "hold line\n"
        "\n"
        "end\n",
        &r);
    assert_string_equal(r.out,
                        "Subject: drop me\n\n"
                        "keep\n"
                        "replaced: this\n"
                        "inserted line\n"
                        "prepend here\n"
                        "warn line\n"
                        "hold line\n"
                        "\n"
                        "end\n");
    assert_int_equal(r.verdict, CONTENT_HOLD);
    assert_true(log_has(f, "ABCDEF0123456789A: warning: body warn line from unknown[192.0.2.1]; "
                           "from=<alice@example.org> to=<bob@example.test> proto=ESMTP "
                           "helo=<client.example.org>: body warning"));
    assert_true(log_has(f, "hold: body hold line from"));
    result_free(&r);

    run(c, NULL, "Subject: x\n\nfine\nspam spam\nafter\n", &r);
    assert_int_equal(r.verdict, CONTENT_REJECT);
    assert_string_equal(r.reply, "550 5.7.1 Message content rejected");
    assert_string_equal(r.out, "Subject: x\n\nfine\n");
    assert_true(log_has(f, "reject: body spam spam from unknown[192.0.2.1];"));
    result_free(&r);
    content_checks_close(&c);
    free(b);
}

static void test_body_checks_size_limit_per_part(void **state)
{
    struct fixture *f = *state;
    char *b = table(f, "b.pcre", "/^needle (.*)/ WARN found-$1\n");
    struct content_checks *c = open_checks("", "", "", b);
    struct content_filter_limits lim;
    content_filter_limits_default(&lim);
    lim.body_max = 100;
    struct buf msg;
    buf_init(&msg, 0);
    buf_append_str(&msg, "Content-Type: multipart/mixed; boundary=xx\n\n--xx\n\n");
    buf_append_str(&msg, "needle early-one\n");
    for (int i = 0; i < 10; i++)
        buf_append_str(&msg, "filler filler filler\n");   /* 21 bytes each */
    buf_append_str(&msg, "needle late-one\n");
    buf_append_str(&msg, "--xx\n\nneedle early-two\n--xx--\n");
    struct result r;
    run(c, &lim, msg.data, &r);
    assert_int_equal(r.out_len, msg.len);
    assert_true(log_has(f, ": found-early-one"));
    assert_false(log_has(f, ": found-late-one"));
    assert_true(log_has(f, ": found-early-two"));
    result_free(&r);

    /* body_checks_size_limit 0: body_checks see nothing. */
    log_clear(f);
    lim.body_max = 0;
    run(c, &lim, "S: x\n\nneedle zero\n", &r);
    assert_false(log_has(f, "found-zero"));
    result_free(&r);

    /* From the configuration. */
    config_override("body_checks_size_limit", "1234");
    config_override("header_size_limit", "999");
    content_filter_limits_config(&lim);
    assert_int_equal(lim.body_max, 1234);
    assert_int_equal(lim.line_max, 999);
    config_override("header_size_limit", "102400");
    content_filter_limits_config(&lim);
    assert_int_equal(lim.line_max, 4096);
    buf_free(&msg);
    content_checks_close(&c);
    free(b);
}

/* ---- limits ---- */

static void test_header_longer_than_limit_is_cut_for_matching_only(void **state)
{
    struct fixture *f = *state;
    char *h = table(f, "h.pcre",
                    "/^Subject: start/ WARN long-start\n"
                    "/TAIL-MARKER/ REJECT must not be seen\n"
                    "/^X-Drop:/ IGNORE\n"
                    "/^X-Swap:/ REPLACE X-Swapped: yes\n");
    struct content_checks *c = open_checks(h, "", "", "");
    struct content_filter_limits lim;
    content_filter_limits_default(&lim);
    lim.line_max = 128;
    struct buf msg, want;
    buf_init(&msg, 0);
    buf_init(&want, 0);
    /* A folded Subject of ~1000 bytes with the marker near its end, and
       two long headers, one of them a single physical line. */
    buf_append_str(&msg, "Subject: start");
    for (int i = 0; i < 20; i++)
        buf_append_str(&msg, "\n\tfiller text filler text filler text filler text");
    buf_append_str(&msg, " TAIL-MARKER\n");
    buf_append_str(&msg, "X-Keep: short\n");
    size_t drop_at = msg.len;
    buf_append_str(&msg, "X-Drop: ");
    for (int i = 0; i < 300; i++)
        buf_append_char(&msg, 'd');
    buf_append_str(&msg, "\n\tcontinued\n");
    size_t swap_at = msg.len;
    buf_append_str(&msg, "X-Swap: a");
    for (int i = 0; i < 20; i++)
        buf_append_str(&msg, "\n folded line of the swapped header");
    buf_append_str(&msg, "\n");
    size_t rest_at = msg.len;
    buf_append_str(&msg, "\nbody\n");

    buf_append(&want, msg.data, drop_at);
    buf_append_str(&want, "X-Swapped: yes\n");
    buf_append(&want, msg.data + rest_at, msg.len - rest_at);
    (void)swap_at;

    struct result r;
    run(c, &lim, msg.data, &r);
    assert_int_equal(r.verdict, CONTENT_ACCEPT);
    assert_int_equal(r.out_len, want.len);
    assert_memory_equal(r.out, want.data, want.len);
    assert_true(log_has(f, ": long-start"));
    result_free(&r);

    /* Without rules the long headers pass byte-identical. */
    struct content_checks *none = open_checks(h, "", "", "");
    char *plain = xstrdup(msg.data);
    memcpy(strstr(plain, "X-Drop"), "X-Kept", 6);
    memcpy(strstr(plain, "X-Swap"), "X-Same", 6);
    run(none, &lim, plain, &r);
    assert_int_equal(r.out_len, strlen(plain));
    assert_memory_equal(r.out, plain, r.out_len);
    result_free(&r);
    free(plain);
    content_checks_close(&none);
    buf_free(&msg);
    buf_free(&want);
    content_checks_close(&c);
    free(h);
}

static void test_long_body_line_decided_on_its_head(void **state)
{
    struct fixture *f = *state;
    char *b = table(f, "b.pcre", "/^DROPLONG/ IGNORE\n/^SWAPLONG/ REPLACE short\n");
    struct content_checks *c = open_checks("", "", "", b);
    struct buf msg;
    buf_init(&msg, 0);
    buf_append_str(&msg, "S: x\n\n");
    const char *heads[] = {"DROPLONG", "SWAPLONG", "KEEPLONG"};
    for (int k = 0; k < 3; k++) {
        buf_append_str(&msg, heads[k]);
        for (int i = 0; i < 10000; i++)
            buf_append_char(&msg, (char)('a' + i % 26));
        buf_append_char(&msg, '\n');
    }
    buf_append_str(&msg, "end\n");
    struct result r;
    run(c, NULL, msg.data, &r);
    const char *keep = strstr(msg.data, "KEEPLONG");
    struct buf want;
    buf_init(&want, 0);
    buf_append_str(&want, "S: x\n\nshort\n");
    buf_append_str(&want, keep);
    assert_int_equal(r.out_len, want.len);
    assert_memory_equal(r.out, want.data, want.len);
    result_free(&r);
    buf_free(&want);
    buf_free(&msg);
    content_checks_close(&c);
    free(b);
}

static void test_last_line_without_newline_and_empty_message(void **state)
{
    struct fixture *f = *state;
    char *h = table(f, "h.pcre", "/^Subject: end$/ WARN eof-header\n");
    char *b = table(f, "b.pcre", "/^tail$/ WARN eof-body\n");
    struct content_checks *c = open_checks(h, "", "", b);
    struct result r;
    run(c, NULL, "Subject: end", &r);
    assert_string_equal(r.out, "Subject: end");
    assert_true(log_has(f, ": eof-header"));
    result_free(&r);
    run(c, NULL, "S: x\n\ntail", &r);
    assert_string_equal(r.out, "S: x\n\ntail");
    assert_true(log_has(f, ": eof-body"));
    result_free(&r);
    run(c, NULL, "", &r);
    assert_int_equal(r.out_len, 0);
    assert_int_equal(r.verdict, CONTENT_ACCEPT);
    result_free(&r);
    content_checks_close(&c);
    free(h);
    free(b);
}

static void test_table_failure_is_tempfail(void **state)
{
    struct fixture *f = *state;
    char *b = table(f, "b.pcre", "/^(a|a)+$/ REJECT\n");
    struct content_checks *c = open_checks("", "", "", b);
    char msg[128];
    memcpy(msg, "S: x\n\n", 6);
    memset(msg + 6, 'a', 40);
    memcpy(msg + 46, "b\nmore\n", 8);
    struct result r;
    run(c, NULL, msg, &r);
    assert_int_equal(r.verdict, CONTENT_TEMPFAIL);
    assert_string_equal(r.reply, "451 4.3.0 Temporary lookup failure");
    assert_true(log_has(f, "body_checks lookup problem"));
    result_free(&r);
    content_checks_close(&c);
    free(b);
}

static void test_open_errors_sharing_and_inactive(void **state)
{
    struct fixture *f = *state;
    const char *err = NULL;
    assert_null(content_checks_open("pcre:/nonexistent/x.pcre", "", "", "", &err));
    assert_non_null(err);
    struct content_checks *c = open_checks("", NULL, " , ", "");
    assert_false(content_checks_active(c));
    content_checks_close(&c);
    char *h = table(f, "h.pcre", "/^X:/ WARN\n");
    c = open_checks(h, h, h, "");   /* shared: closed once (ASan checks) */
    assert_true(content_checks_active(c));
    content_checks_close(&c);
    free(h);

    /* From main.cf parameters (mime and nested default to $header_checks). */
    h = table(f, "cfg.pcre", "/^Subject: cfg/ REJECT from config\n");
    config_override("header_checks", h);
    config_override("body_checks", "");
    c = content_checks_open_config(&err);
    assert_non_null(c);
    struct result r;
    run(c, NULL, "Content-Type: message/rfc822\n\nSubject: cfg\n\nx\n", &r);
    assert_int_equal(r.verdict, CONTENT_REJECT);
    assert_string_equal(r.reply, "550 5.7.1 from config");
    result_free(&r);
    content_checks_close(&c);
    config_override("header_checks", "");
    free(h);
}

static void test_format_log_line(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    content_filter_format_log(&b, &test_log, "reject", "header", "Subject: a\n\tb", 13,
                              "5.7.1 Message content rejected");
    assert_string_equal(b.data,
                        "ABCDEF0123456789A: reject: header Subject: a??b from "
                        "unknown[192.0.2.1]; from=<alice@example.org> to=<bob@example.test> "
                        "proto=ESMTP helo=<client.example.org>: 5.7.1 Message content "
                        "rejected");
    buf_reset(&b);
    struct content_filter_log minimal = {.sender = ""};
    content_filter_format_log(&b, &minimal, "warning", "body", "x", 1, NULL);
    assert_string_equal(b.data, "NOQUEUE: warning: body x from unknown; from=<>");
    buf_reset(&b);
    char big[3000];
    memset(big, 'z', sizeof(big));
    content_filter_format_log(&b, NULL, "info", "body", big, sizeof(big), "");
    assert_true(b.len < 1100);
    buf_free(&b);
}

/* ---- memory ---- */

static size_t max_memory;

static void count_only(void *ctx, const char *data, size_t len)
{
    (void)data;
    *(size_t *)ctx += len;
}

static void test_ten_megabytes_stream_through_in_bounded_memory(void **state)
{
    struct fixture *f = *state;
    char *h = table(f, "h.pcre", "/^Subject: never/ REJECT\n");
    char *b = table(f, "b.pcre", "/^never matches this line$/ REJECT\n");
    struct content_checks *c = open_checks(h, h, h, b);
    size_t written = 0;
    struct content_filter *cf = content_filter_create(c, NULL, &test_log, count_only, &written);
    static const char head[] =
        "Subject: big\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B\n"
        "Content-Type: text/plain\n\n";
    content_filter_input(cf, head, strlen(head));
    size_t total = strlen(head);
    char chunk[4096];
    /* Lines of 76 characters, as base64 bodies have, plus one 64 KiB
       line and a new part every 1000 chunks. */
    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = (i % 77 == 76) ? '\n' : (char)('A' + i % 26);
    size_t round = 0;
    while (total < 10 * 1024 * 1024) {
        content_filter_input(cf, chunk, sizeof(chunk));
        total += sizeof(chunk);
        if (++round % 1000 == 0) {
            static const char part[] = "\n--B\nContent-Type: text/plain\n\n";
            content_filter_input(cf, part, strlen(part));
            total += strlen(part);
            static char longline[4000];
            memset(longline, 'x', sizeof(longline));
            for (int i = 0; i < 16; i++)
                content_filter_input(cf, longline, sizeof(longline));
            content_filter_input(cf, "\n", 1);
            total += 16 * sizeof(longline) + 1;
        }
        size_t m = content_filter_memory(cf);
        if (m > max_memory)
            max_memory = m;
    }
    content_filter_input(cf, "\n--B--\n", 7);
    total += 7;
    content_filter_end(cf);
    assert_int_equal(content_filter_verdict(cf), CONTENT_ACCEPT);
    assert_int_equal(written, total);
    /* 3 buffers of line_max plus the frame stack: never the message. */
    assert_true(max_memory < 64 * 1024);
    content_filter_destroy(&cf);
    content_checks_close(&c);
    free(h);
    free(b);
}

int main(void)
{
    log_init("test-content-filter");
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_header_edit_actions_and_pass_through),
        T(test_header_reject_texts_and_codes),
        T(test_discard_and_hold_verdicts),
        T(test_folded_header_is_one_key_and_byte_identical),
        T(test_prepend_with_captured_folded_text_keeps_header_shape),
        T(test_mime_nested_and_primary_headers_go_to_their_tables),
        T(test_mime_header_reject_and_nested_hold),
        T(test_mime_part_header_edits),
        T(test_digest_parts_default_to_message_rfc822),
        T(test_encoded_message_rfc822_is_not_descended),
        T(test_mime_depth_limit_makes_deeper_parts_opaque),
        T(test_body_actions),
        T(test_body_checks_size_limit_per_part),
        T(test_header_longer_than_limit_is_cut_for_matching_only),
        T(test_long_body_line_decided_on_its_head),
        T(test_last_line_without_newline_and_empty_message),
        T(test_table_failure_is_tempfail),
        T(test_open_errors_sharing_and_inactive),
        T(test_format_log_line),
        T(test_ten_megabytes_stream_through_in_bounded_memory),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    config_free_all();
    return rc;
}
