/* Unit tests for lib/smtp_reply.c: valid and invalid replies side by
   side, each fed whole and one byte at a time; one reply per call (the
   next pipelined reply stays in the buffer); limits; formatting, DSN
   codes and EHLO keywords. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "smtp_reply.h"

/* Feeds input whole or bytewise and renders each result as one line of
   a transcript: "code|enhanced|text (lines joined with /)|lines[|T]" or
   "ERR:<error text>" (after which the stream is given up). */
static char *run_limits(const char *input, const struct smtp_reply_limits *limits, int bytewise)
{
    struct smtp_reply_parser *parser = smtp_reply_parser_create(limits);
    struct buf in, out;
    buf_init(&in, 0);
    buf_init(&out, 0);
    size_t len = strlen(input), fed = 0;
    int failed = 0;
    while (!failed) {
        size_t n = bytewise ? 1 : len - fed;
        if (fed < len) {
            buf_append(&in, input + fed, n);
            fed += n;
        }
        for (;;) {
            const struct smtp_reply *reply = NULL;
            enum smtp_reply_error err;
            enum smtp_reply_status st = smtp_reply_parser_next(parser, &in, &reply, &err);
            if (st == SMTP_REPLY_NEED_MORE) {
                assert_int_equal(err, SMTP_REPLY_ERR_NONE);
                break;
            }
            if (st == SMTP_REPLY_ERROR) {
                assert_int_not_equal(err, SMTP_REPLY_ERR_NONE);
                buf_printf(&out, "ERR:%s\n", smtp_reply_error_text(err));
                failed = 1;
                break;
            }
            assert_non_null(reply);
            buf_printf(&out, "%d|%s|", reply->code, reply->enhanced);
            for (size_t i = 0; i < reply->text.len; i++)
                buf_append_char(&out, reply->text.data[i] == '\n' ? '/' : reply->text.data[i]);
            buf_printf(&out, "|%zu%s\n", reply->lines, reply->truncated ? "|T" : "");
        }
        if (fed >= len)
            break;
    }
    smtp_reply_parser_destroy(&parser);
    assert_null(parser);
    buf_free(&in);
    return buf_steal(&out);
}

static void check_limits(const char *input, const struct smtp_reply_limits *limits,
                         const char *expected)
{
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        char *got = run_limits(input, limits, bytewise);
        if (strcmp(got, expected) != 0)
            fail_msg("input \"%s\" (%s): got\n%s\nexpected\n%s", input,
                     bytewise ? "bytewise" : "whole", got, expected);
        free(got);
    }
}

static void check(const char *input, const char *expected)
{
    check_limits(input, NULL, expected);
}

struct reply_case {
    const char *input;
    const char *expected;
};

static void valid_replies(void **state)
{
    static const struct reply_case cases[] = {
        {"220 mx.b.test ESMTP\r\n", "220||mx.b.test ESMTP|1\n"},
        {"250 2.0.0 Ok: queued as XYZ\r\n", "250|2.0.0|Ok: queued as XYZ|1\n"},
        {"250\r\n", "250|||1\n"},
        {"250 \r\n", "250|||1\n"},
        {"354 End data with <CR><LF>.<CR><LF>\r\n", "354||End data with <CR><LF>.<CR><LF>|1\n"},
        {"250-mx.b.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n",
         "250||mx.b.test/PIPELINING/SIZE 10240000/8BITMIME|4\n"},
        {"250-\r\n250 last\r\n", "250||/last|2\n"},
        /* the enhanced code shows once, even when every line repeats it */
        {"550-5.1.1 no such\r\n550-5.1.1 user here\r\n550 5.1.1 sorry\r\n",
         "550|5.1.1|no such/user here/sorry|3\n"},
        /* bare LF tolerated */
        {"451 4.3.0 try later\n", "451|4.3.0|try later|1\n"},
        /* an enhanced code of another class is only text */
        {"550 2.1.1 odd\r\n", "550||2.1.1 odd|1\n"},
        {"250 2.1.5\r\n", "250|2.1.5||1\n"},
        {"250 2.1.5x\r\n", "250||2.1.5x|1\n"},
        {"250 2.1234.5 x\r\n", "250||2.1234.5 x|1\n"},
        {"421 4.4.2 a\tb\r\n", "421|4.4.2|a b|1\n"},
        /* two replies in one read: one reply per call */
        {"250 ok\r\n354 go\r\n", "250||ok|1\n354||go|1\n"},
        {"250 ok\r\n250 2.1.0 ok\r\n550 5.1.1 no\r\n354 go\r\n",
         "250||ok|1\n250|2.1.0|ok|1\n550|5.1.1|no|1\n354||go|1\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check(cases[i].input, cases[i].expected);
}

static void invalid_replies(void **state)
{
    static const struct reply_case cases[] = {
        {"hello\r\n", "ERR:reply line does not start with a 3-digit code\n"},
        {"25\r\n", "ERR:reply line does not start with a 3-digit code\n"},
        {"2500 x\r\n", "ERR:reply line does not start with a 3-digit code\n"},
        {"150 x\r\n", "ERR:reply line does not start with a 3-digit code\n"},
        {"650 x\r\n", "ERR:reply line does not start with a 3-digit code\n"},
        {"25a x\r\n", "ERR:reply line does not start with a 3-digit code\n"},
        {"\r\n", "ERR:reply line does not start with a 3-digit code\n"},
        {"250_x\r\n", "ERR:reply line does not start with a 3-digit code\n"},
        {"250-a\r\n251 b\r\n", "ERR:different codes in one multi-line reply\n"},
        {"250-a\r\njunk\r\n", "ERR:reply line does not start with a 3-digit code\n"},
        /* the error comes after the good reply before it */
        {"250 ok\r\nxyz\r\n", "250||ok|1\nERR:reply line does not start with a 3-digit code\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check(cases[i].input, cases[i].expected);
}

static void incomplete_reply_needs_more_and_consumes_only_whole_lines(void **state)
{
    check("250-first\r\n250 sec", "");
    struct smtp_reply_parser *parser = smtp_reply_parser_create(NULL);
    struct buf in;
    buf_init(&in, 0);
    buf_append_str(&in, "250-first\r\n250 sec");
    const struct smtp_reply *reply = NULL;
    enum smtp_reply_error err;
    assert_int_equal(smtp_reply_parser_next(parser, &in, &reply, &err), SMTP_REPLY_NEED_MORE);
    assert_string_equal(in.data, "250 sec");
    buf_append_str(&in, "ond\r\n\x16\x03\x01");   /* TLS bytes behind it stay */
    assert_int_equal(smtp_reply_parser_next(parser, &in, &reply, &err), SMTP_REPLY_OK);
    assert_string_equal(reply->text.data, "first\nsecond");
    assert_int_equal(in.len, 3);
    /* reset forgets a half-read reply */
    buf_reset(&in);
    buf_append_str(&in, "250-half\r\n");
    assert_int_equal(smtp_reply_parser_next(parser, &in, &reply, &err), SMTP_REPLY_NEED_MORE);
    smtp_reply_parser_reset(parser);
    buf_append_str(&in, "220 fresh\r\n");
    assert_int_equal(smtp_reply_parser_next(parser, &in, &reply, &err), SMTP_REPLY_OK);
    assert_int_equal(reply->code, 220);
    assert_int_equal(reply->lines, 1);
    assert_string_equal(reply->text.data, "fresh");
    buf_free(&in);
    smtp_reply_parser_destroy(&parser);
}

static void line_limit_counts_crlf_and_is_detected_before_the_newline(void **state)
{
    struct smtp_reply_limits lim;
    smtp_reply_limits_default(&lim);
    lim.line_max = 16;
    check_limits("250 0123456789\r\n", &lim, "250||0123456789|1\n");     /* 16 */
    check_limits("250 0123456789a\r\n", &lim, "ERR:reply line too long\n");
    check_limits("250 0123456789a\n", &lim, "ERR:reply line too long\n");
    /* no newline at all: the error comes once line_max is exceeded */
    struct smtp_reply_parser *parser = smtp_reply_parser_create(&lim);
    struct buf in;
    buf_init(&in, 0);
    const struct smtp_reply *reply;
    enum smtp_reply_error err;
    size_t fed = 0;
    enum smtp_reply_status st = SMTP_REPLY_NEED_MORE;
    while (st == SMTP_REPLY_NEED_MORE && fed < 10 * 1024 * 1024) {
        buf_append_char(&in, 'x');
        fed++;
        st = smtp_reply_parser_next(parser, &in, &reply, &err);
    }
    assert_int_equal(st, SMTP_REPLY_ERROR);
    assert_int_equal(err, SMTP_REPLY_ERR_LINE_TOO_LONG);
    assert_true(fed <= lim.line_max);
    buf_free(&in);
    smtp_reply_parser_destroy(&parser);
}

static void lines_limit_and_text_limit(void **state)
{
    struct smtp_reply_limits lim;
    smtp_reply_limits_default(&lim);
    lim.lines_max = 3;
    check_limits("250-a\r\n250-b\r\n250 c\r\n", &lim, "250||a/b/c|3\n");
    check_limits("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", &lim,
                 "ERR:too many lines in one reply\n");
    smtp_reply_limits_default(&lim);
    lim.text_max = 5;
    check_limits("250-abc\r\n250 defgh\r\n", &lim, "250||abc/d|2|T\n");
    /* a later reply starts with a fresh text budget */
    check_limits("250 abcdefgh\r\n250 ok\r\n", &lim, "250||abcde|1|T\n250||ok|1\n");
}

static void a_flood_of_continuation_lines_is_refused(void **state)
{
    struct buf big;
    buf_init(&big, 0);
    for (int i = 0; i < 2000; i++)
        buf_append_str(&big, "250-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n");
    buf_append_str(&big, "250 end\r\n");
    char *got = run_limits(big.data, NULL, 0);
    assert_string_equal(got, "ERR:too many lines in one reply\n");
    free(got);
    buf_free(&big);
}

static const struct smtp_reply *parse_one(struct smtp_reply_parser *parser, struct buf *in,
                                          const char *text)
{
    buf_reset(in);
    buf_append_str(in, text);
    const struct smtp_reply *reply = NULL;
    enum smtp_reply_error err;
    assert_int_equal(smtp_reply_parser_next(parser, in, &reply, &err), SMTP_REPLY_OK);
    return reply;
}

static void format_and_dsn(void **state)
{
    struct smtp_reply_parser *parser = smtp_reply_parser_create(NULL);
    struct buf in, out;
    buf_init(&in, 0);
    buf_init(&out, 0);
    char dsn[SMTP_REPLY_ENHANCED_SIZE];

    const struct smtp_reply *r = parse_one(parser, &in, "550-5.1.1 no such\r\n550 5.1.1 user\r\n");
    smtp_reply_format(r, &out, 1000);
    assert_string_equal(out.data, "550 5.1.1 no such user");
    smtp_reply_dsn(r, dsn, sizeof(dsn));
    assert_string_equal(dsn, "5.1.1");

    buf_reset(&out);
    r = parse_one(parser, &in, "451 try later\r\n");
    smtp_reply_format(r, &out, 1000);
    assert_string_equal(out.data, "451 try later");
    smtp_reply_dsn(r, dsn, sizeof(dsn));
    assert_string_equal(dsn, "4.0.0");

    buf_reset(&out);
    r = parse_one(parser, &in, "250\r\n");
    smtp_reply_format(r, &out, 1000);
    assert_string_equal(out.data, "250");
    smtp_reply_dsn(r, dsn, sizeof(dsn));
    assert_string_equal(dsn, "2.0.0");

    r = parse_one(parser, &in, "354 go ahead\r\n");
    smtp_reply_dsn(r, dsn, sizeof(dsn));
    assert_string_equal(dsn, "2.0.0");
    r = parse_one(parser, &in, "554 5.7.1 policy\r\n");
    smtp_reply_dsn(r, dsn, 4);
    assert_string_equal(dsn, "5.7");

    buf_reset(&out);
    r = parse_one(parser, &in, "550 0123456789\r\n");
    smtp_reply_format(r, &out, 4);
    assert_string_equal(out.data, "550 0123...");

    buf_free(&in);
    buf_free(&out);
    smtp_reply_parser_destroy(&parser);
}

static void ehlo_keywords(void **state)
{
    struct smtp_reply_parser *parser = smtp_reply_parser_create(NULL);
    struct buf in;
    buf_init(&in, 0);
    struct smtp_ehlo ehlo;

    const struct smtp_reply *r = parse_one(
        parser, &in,
        "250-mx.b.test Hello PIPELINING\r\n250-pipelining\r\n250-SIZE 10240000\r\n"
        "250-8BITMIME\r\n250-SMTPUTF8\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n"
        "250 DSN\r\n");
    smtp_ehlo_parse(r, &ehlo);
    assert_int_equal(ehlo.flags, SMTP_EHLO_PIPELINING | SMTP_EHLO_SIZE | SMTP_EHLO_8BITMIME |
                                     SMTP_EHLO_SMTPUTF8 | SMTP_EHLO_STARTTLS);
    assert_true(ehlo.size_limit == 10240000ULL);

    /* the greeting line's words are not keywords */
    r = parse_one(parser, &in, "250 mx.b.test PIPELINING STARTTLS\r\n");
    smtp_ehlo_parse(r, &ehlo);
    assert_int_equal(ehlo.flags, 0);

    r = parse_one(parser, &in, "250-x\r\n250-SIZE\r\n250 STARTTLSX\r\n");
    smtp_ehlo_parse(r, &ehlo);
    assert_int_equal(ehlo.flags, SMTP_EHLO_SIZE);
    assert_true(ehlo.size_limit == 0);

    r = parse_one(parser, &in, "250-x\r\n250 SIZE 12abc\r\n");
    smtp_ehlo_parse(r, &ehlo);
    assert_int_equal(ehlo.flags, SMTP_EHLO_SIZE);
    assert_true(ehlo.size_limit == 0);

    r = parse_one(parser, &in, "250-x\r\n250 SIZE 99999999999999999999999\r\n");
    smtp_ehlo_parse(r, &ehlo);
    assert_true(ehlo.size_limit == 0);

    r = parse_one(parser, &in, "250-x\r\n250 size 0\r\n");
    smtp_ehlo_parse(r, &ehlo);
    assert_int_equal(ehlo.flags, SMTP_EHLO_SIZE);
    assert_true(ehlo.size_limit == 0);

    r = parse_one(parser, &in, "250-x\r\n250-  8bitmime  \r\n250 AUTH PLAIN\r\n");
    smtp_ehlo_parse(r, &ehlo);
    assert_int_equal(ehlo.flags, SMTP_EHLO_8BITMIME);

    buf_free(&in);
    smtp_reply_parser_destroy(&parser);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_replies),
        cmocka_unit_test(invalid_replies),
        cmocka_unit_test(incomplete_reply_needs_more_and_consumes_only_whole_lines),
        cmocka_unit_test(line_limit_counts_crlf_and_is_detected_before_the_newline),
        cmocka_unit_test(lines_limit_and_text_limit),
        cmocka_unit_test(a_flood_of_continuation_lines_is_refused),
        cmocka_unit_test(format_and_dsn),
        cmocka_unit_test(ehlo_keywords),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
