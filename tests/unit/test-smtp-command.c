/* Unit tests for lib/smtp_command.c: verbs, MAIL/RCPT paths and ESMTP
   parameters, line limits; whole input and one byte at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "smtp_command.h"

/* Feeds text (whole or bytewise) and renders every result as one line of
   a transcript: "VERB|args|path|K=V,K|arg_error" or "ERR:<n>". */
static char *run(const char *text, size_t len, int bytewise, const struct smtp_command_limits *lim)
{
    struct smtp_command_limits def;
    if (lim == NULL) {
        smtp_command_limits_default(&def);
        lim = &def;
    }
    struct smtp_command_parser *parser = smtp_command_parser_create(lim);
    struct buf in, out;
    buf_init(&in, 0);
    buf_init(&out, 0);
    size_t fed = 0;
    for (;;) {
        size_t n = bytewise ? 1 : len - fed;
        if (fed < len) {
            buf_append(&in, text + fed, n);
            fed += n;
        }
        for (;;) {
            struct smtp_command cmd;
            enum smtp_command_error err;
            enum smtp_command_status st = smtp_command_parser_next(parser, &in, &cmd, &err);
            if (st == SMTP_COMMAND_NEED_MORE)
                break;
            if (st == SMTP_COMMAND_ERROR) {
                buf_printf(&out, "ERR:%d\n", (int)err);
                continue;
            }
            buf_printf(&out, "%s|%s|%s|", cmd.name, cmd.args, cmd.path ? cmd.path : "-");
            for (size_t i = 0; i < cmd.param_count; i++)
                buf_printf(&out, "%s%s%s%s", i ? "," : "", cmd.params[i].keyword,
                           cmd.params[i].value ? "=" : "",
                           cmd.params[i].value ? cmd.params[i].value : "");
            buf_printf(&out, "|%s\n", cmd.arg_error ? cmd.arg_error : "-");
            smtp_command_clear(&cmd);
        }
        if (fed >= len)
            break;
    }
    smtp_command_parser_destroy(&parser);
    assert_null(parser);
    buf_free(&in);
    return buf_steal(&out);
}

static void check(const char *input, const char *expected)
{
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        char *got = run(input, strlen(input), bytewise, NULL);
        if (strcmp(got, expected) != 0)
            fail_msg("input '%s' (bytewise %d):\n got: %s\nwant: %s", input, bytewise, got,
                     expected);
        free(got);
    }
}

static void test_verbs_are_case_insensitive_and_args_trimmed(void **state)
{
    (void)state;
    check("helo client.example\r\n", "HELO|client.example|-||-\n");
    check("EHLO   client.example  \r\n", "EHLO|client.example|-||-\n");
    check("NoOp\r\nQUIT\r\n", "NOOP||-||-\nQUIT||-||-\n");
    check("DATA\r\nRSET\r\nVRFY bob\r\nEXPN list\r\nHELP\r\n",
          "DATA||-||-\nRSET||-||-\nVRFY|bob|-||-\nEXPN|list|-||-\nHELP||-||-\n");
    check("STARTTLS\r\nAUTH PLAIN\r\nBDAT 10\r\nETRN x\r\n",
          "STARTTLS||-||-\nAUTH|PLAIN|-||-\nBDAT|10|-||-\nETRN|x|-||-\n");
}

static void test_unknown_verb_is_returned_not_error(void **state)
{
    (void)state;
    check("FOO bar\r\n", "FOO|bar|-||-\n");
    check("MAILX FROM:<a@b>\r\n", "MAILX|FROM:<a@b>|-||-\n");
    check("AVERYLONGVERBWITHMORETHANSIXTEEN x\r\n", "AVERYLONGVERBWIT|x|-||-\n");
}

static void test_mail_and_rcpt_paths_and_params(void **state)
{
    (void)state;
    check("MAIL FROM:<a@b.example>\r\n", "MAIL|FROM:<a@b.example>|a@b.example||-\n");
    check("mail from:<> SIZE=1000 BODY=8BITMIME\r\n",
          "MAIL|from:<> SIZE=1000 BODY=8BITMIME||SIZE=1000,BODY=8BITMIME|-\n");
    check("MAIL FROM: <a@b.example> smtputf8\r\n",
          "MAIL|FROM: <a@b.example> smtputf8|a@b.example|SMTPUTF8|-\n");
    check("RCPT TO:<c@d.example>\r\n", "RCPT|TO:<c@d.example>|c@d.example||-\n");
    check("RCPT TO:<Postmaster>\r\n", "RCPT|TO:<Postmaster>|Postmaster||-\n");
    check("MAIL FROM:a@b.example SIZE=5\r\n",
          "MAIL|FROM:a@b.example SIZE=5|a@b.example|SIZE=5|-\n");
}

static void test_mail_and_rcpt_syntax_errors_are_arg_errors(void **state)
{
    (void)state;
    check("MAIL <a@b>\r\n", "MAIL|<a@b>|-||501 5.5.4 Syntax: MAIL FROM:<address>\n");
    check("MAIL FROM:\r\n", "MAIL|FROM:|-||501 5.5.4 Syntax: MAIL FROM:<address>\n");
    check("RCPT FROM:<a@b>\r\n", "RCPT|FROM:<a@b>|-||501 5.5.4 Syntax: RCPT TO:<address>\n");
    check("MAIL FROM:<a@@b>\r\n", "MAIL|FROM:<a@@b>|-||501 5.1.7 Bad sender address syntax\n");
    check("RCPT TO:<>\r\n", "RCPT|TO:<>|-||501 5.1.3 Bad recipient address syntax\n");
    check("RCPT TO:<a@b>junk\r\n",
          "RCPT|TO:<a@b>junk|-||501 5.1.3 Bad recipient address syntax\n");
    check("MAIL FROM:<a@b> =x\r\n", "MAIL|FROM:<a@b> =x|-||501 5.5.4 Error: bad parameter syntax\n");
    check("MAIL FROM:<a@b> SIZE=\r\n",
          "MAIL|FROM:<a@b> SIZE=|-||501 5.5.4 Error: bad parameter syntax\n");
    check("MAIL FROM:<a@b> A=1 B=2 C=3 D=4 E=5 F=6 G=7 H=8 I=9 J=10 K=11\r\n",
          "MAIL|FROM:<a@b> A=1 B=2 C=3 D=4 E=5 F=6 G=7 H=8 I=9 J=10 K=11|-||"
          "501 5.5.4 Error: too many parameters\n");
}

static void test_utf8_path_depends_on_limits(void **state)
{
    (void)state;
    struct smtp_command_limits lim;
    smtp_command_limits_default(&lim);
    const char *input = "RCPT TO:<j\xc3\xb6rg@example.com>\r\n";
    char *got = run(input, strlen(input), 0, &lim);
    assert_string_equal(got, "RCPT|TO:<j\xc3\xb6rg@example.com>|j\xc3\xb6rg@example.com||-\n");
    free(got);
    lim.smtputf8 = 0;
    got = run(input, strlen(input), 1, &lim);
    assert_string_equal(got, "RCPT|TO:<j\xc3\xb6rg@example.com>|-||"
                             "501 5.1.3 Bad recipient address syntax\n");
    free(got);
}

static void test_line_errors_nul_cr_bare_lf_empty(void **state)
{
    (void)state;
    char nul[] = "NOOP\0x\r\nQUIT\r\n";
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        char *got = run(nul, sizeof(nul) - 1, bytewise, NULL);
        assert_string_equal(got, "ERR:2\nQUIT||-||-\n");
        free(got);
    }
    check("NO\rOP\r\nQUIT\r\n", "ERR:4\nQUIT||-||-\n");
    check("NOOP\nQUIT\r\n", "ERR:3\nQUIT||-||-\n");
    check("\r\n   \r\nQUIT\r\n", "ERR:5\nERR:5\nQUIT||-||-\n");
    struct smtp_command_limits lim;
    smtp_command_limits_default(&lim);
    lim.forbid_bare_newline = 0;
    char *got = run("NOOP\nQUIT\r\n", 11, 1, &lim);
    assert_string_equal(got, "NOOP||-||-\nQUIT||-||-\n");
    free(got);
}

static void test_overlong_line_reported_once_then_skipped(void **state)
{
    (void)state;
    struct smtp_command_limits lim;
    smtp_command_limits_default(&lim);
    lim.max_line = 20;
    struct buf text;
    buf_init(&text, 0);
    /* exactly max_line is fine */
    buf_append_str(&text, "NOOP 123456789012345\r\n");
    buf_append_str(&text, "NOOP 1234567890123456\r\n");
    buf_append_str(&text, "VRFY ");
    for (int i = 0; i < 500; i++)
        buf_append_str(&text, "xxxxxxxxxx");
    buf_append_str(&text, "\r\nQUIT\r\n");
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        char *got = run(text.data, text.len, bytewise, &lim);
        assert_string_equal(got, "NOOP|123456789012345|-||-\nERR:1\nERR:1\nQUIT||-||-\n");
        free(got);
    }
    buf_free(&text);
}

static void test_param_lookup_is_case_insensitive(void **state)
{
    (void)state;
    struct smtp_command_limits lim;
    smtp_command_limits_default(&lim);
    struct smtp_command cmd;
    enum smtp_command_error err;
    const char *line = "MAIL FROM:<a@b> size=42 smtputf8";
    assert_int_equal(smtp_command_parse_line(&lim, line, strlen(line), &cmd, &err),
                     SMTP_COMMAND_OK);
    assert_int_equal(cmd.verb, SMTP_VERB_MAIL);
    int present;
    assert_string_equal(smtp_command_param(&cmd, "SIZE", &present), "42");
    assert_int_equal(present, 1);
    assert_null(smtp_command_param(&cmd, "SMTPUTF8", &present));
    assert_int_equal(present, 1);
    assert_null(smtp_command_param(&cmd, "BODY", &present));
    assert_int_equal(present, 0);
    smtp_command_clear(&cmd);
    assert_null(cmd.args);
}

static void test_error_replies_have_enhanced_codes(void **state)
{
    (void)state;
    assert_string_equal(smtp_command_error_reply(SMTP_CMDERR_TOO_LONG),
                        "500 5.5.2 Error: line too long");
    assert_string_equal(smtp_command_error_reply(SMTP_CMDERR_NUL),
                        "500 5.5.2 Error: NUL character in command");
    assert_string_equal(smtp_command_error_reply(SMTP_CMDERR_EMPTY),
                        "500 5.5.2 Error: bad syntax");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs_are_case_insensitive_and_args_trimmed),
        cmocka_unit_test(test_unknown_verb_is_returned_not_error),
        cmocka_unit_test(test_mail_and_rcpt_paths_and_params),
        cmocka_unit_test(test_mail_and_rcpt_syntax_errors_are_arg_errors),
        cmocka_unit_test(test_utf8_path_depends_on_limits),
        cmocka_unit_test(test_line_errors_nul_cr_bare_lf_empty),
        cmocka_unit_test(test_overlong_line_reported_once_then_skipped),
        cmocka_unit_test(test_param_lookup_is_case_insensitive),
        cmocka_unit_test(test_error_replies_have_enhanced_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
