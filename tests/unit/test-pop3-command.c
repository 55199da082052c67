/* Unit tests for lib/pop3_command.c: verbs, arguments, the RFC 2449 line
   limit, NUL/CR, bare LF, raw SASL lines; whole input and one byte at a
   time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "pop3_command.h"

/* Feeds text (whole or bytewise) and renders every result as one line of
   a transcript: "VERB|rest|arg1,arg2|extra" or "ERR:<n>". */
static char *run(const char *text, size_t len, int bytewise)
{
    struct pop3_command_limits lim;
    pop3_command_limits_default(&lim);
    struct pop3_command_parser *parser = pop3_command_parser_create(&lim);
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
            struct pop3_command cmd;
            enum pop3_command_error err;
            enum pop3_command_status st = pop3_command_parser_next(parser, &in, &cmd, &err);
            if (st == POP3_COMMAND_NEED_MORE)
                break;
            if (st == POP3_COMMAND_ERROR) {
                buf_printf(&out, "ERR:%d\n", (int)err);
                continue;
            }
            buf_printf(&out, "%s/%s|%s|", pop3_verb_name(cmd.verb), cmd.name, cmd.rest);
            for (size_t i = 0; i < cmd.argc; i++)
                buf_printf(&out, "%s%s", i ? "," : "", cmd.argv[i]);
            buf_printf(&out, "|%d\n", cmd.extra_args);
            pop3_command_clear(&cmd);
        }
        if (fed >= len)
            break;
    }
    pop3_command_parser_destroy(&parser);
    assert_null(parser);
    buf_free(&in);
    return buf_steal(&out);
}

static void check_len(const char *input, size_t len, const char *expected)
{
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        char *got = run(input, len, bytewise);
        if (strcmp(got, expected) != 0)
            fail_msg("input '%.60s' (bytewise %d):\n got: %s\nwant: %s", input, bytewise, got,
                     expected);
        free(got);
    }
}

static void check(const char *input, const char *expected)
{
    check_len(input, strlen(input), expected);
}

static void test_verbs_are_case_insensitive(void **state)
{
    (void)state;
    check("user bob\r\n", "USER/USER|bob|bob|0\n");
    check("StAt\r\nquit\r\n", "STAT/STAT|||0\nQUIT/QUIT|||0\n");
    check("CAPA\r\nSTLS\r\nNOOP\r\nRSET\r\nLAST\r\n",
          "CAPA/CAPA|||0\nSTLS/STLS|||0\nNOOP/NOOP|||0\nRSET/RSET|||0\nLAST/LAST|||0\n");
    check("apop a b\r\nauth PLAIN\r\n", "APOP/APOP|a b|a,b|0\nAUTH/AUTH|PLAIN|PLAIN|0\n");
    check("dele 1\r\nlist\r\nretr 2\r\nuidl 3\r\n",
          "DELE/DELE|1|1|0\nLIST/LIST|||0\nRETR/RETR|2|2|0\nUIDL/UIDL|3|3|0\n");
}

static void test_unknown_verbs_are_commands_not_errors(void **state)
{
    (void)state;
    check("XYZZY 1\r\n", "UNKNOWN/XYZZY|1|1|0\n");
    check("USERS\r\n", "UNKNOWN/USERS|||0\n");
    check("abcdefghijklmnopqrstuvwxyz\r\n", "UNKNOWN/ABCDEFGHIJKLMNOP|||0\n");
    check("\x01\xffX\r\n", "UNKNOWN/??X|||0\n");
}

static void test_two_arguments_and_extra_flag(void **state)
{
    (void)state;
    check("TOP 1 10\r\n", "TOP/TOP|1 10|1,10|0\n");
    check("TOP  1\t 10  \r\n", "TOP/TOP| 1\t 10  |1,10|0\n");
    check("TOP 1 10 20\r\n", "TOP/TOP|1 10 20|1,10|1\n");
}

static void test_pass_keeps_spaces_in_rest(void **state)
{
    (void)state;
    check("PASS my secret pw \r\n", "PASS/PASS|my secret pw |my,secret|1\n");
    check("PASS\r\n", "PASS/PASS|||0\n");
    check("PASS \r\n", "PASS/PASS|||0\n");
}

static void test_bare_lf_is_accepted(void **state)
{
    (void)state;
    check("STAT\nLIST 1\n", "STAT/STAT|||0\nLIST/LIST|1|1|0\n");
    check("STAT\r\nLIST\nQUIT\r\n", "STAT/STAT|||0\nLIST/LIST|||0\nQUIT/QUIT|||0\n");
}

static void test_incomplete_line_needs_more(void **state)
{
    (void)state;
    check("STAT", "");
    check("STAT\r", "");
    check("STAT\r\nLIS", "STAT/STAT|||0\n");
}

static void test_nul_cr_and_empty_lines_are_errors(void **state)
{
    (void)state;
    check_len("US\0ER bob\r\nNOOP\r\n", 17, "ERR:2\nNOOP/NOOP|||0\n");
    check("US\rER\r\nNOOP\r\n", "ERR:3\nNOOP/NOOP|||0\n");
    check("STAT\r\r\n", "ERR:3\n");
    check("\r\n\nNOOP\r\n", "ERR:4\nERR:4\nNOOP/NOOP|||0\n");
    check(" STAT\r\n", "ERR:4\n");
}

static char *repeat(char c, size_t n, const char *tail)
{
    size_t t = strlen(tail);
    char *s = malloc(n + t + 1);
    memset(s, c, n);
    memcpy(s + n, tail, t + 1);
    return s;
}

static void test_line_limit_is_255_octets_with_crlf(void **state)
{
    (void)state;
    /* "NOOP " + 248 = 253 bytes + CRLF = 255: the longest legal line. */
    char *body = repeat('a', 248, "\r\n");
    char *line = malloc(300);
    strcpy(line, "NOOP ");
    strcat(line, body);
    char *want = malloc(600);
    strcpy(want, "NOOP/NOOP|");
    strncat(want, body, 248);
    strcat(want, "|");
    strncat(want, body, 248);
    strcat(want, "|0\n");
    check(line, want);
    free(body);
    free(line);
    free(want);

    /* One byte more: too long, reported once, the line skipped. */
    char *lng = repeat('b', 254, "\r\nSTAT\r\n");
    check(lng, "ERR:1\nSTAT/STAT|||0\n");
    free(lng);
}

static void test_very_long_line_is_skipped_to_its_newline(void **state)
{
    (void)state;
    char *lng = repeat('x', 100000, "\r\nNOOP\r\n");
    check(lng, "ERR:1\nNOOP/NOOP|||0\n");
    free(lng);
    char *no_nl = repeat('y', 5000, "");
    check(no_nl, "ERR:1\n");
    free(no_nl);
    /* A newline arriving later ends the skipping. */
    char *two = repeat('z', 600, "\nQUIT\n");
    check(two, "ERR:1\nQUIT/QUIT|||0\n");
    free(two);
}

static void test_raw_lines_for_sasl(void **state)
{
    (void)state;
    struct pop3_command_limits lim;
    pop3_command_limits_default(&lim);
    struct pop3_command_parser *parser = pop3_command_parser_create(&lim);
    struct buf in;
    buf_init(&in, 0);
    char *line;
    size_t len;
    enum pop3_command_error err;
    char *big = repeat('Q', 4000, "==\r\n*\r\nab");
    buf_append_str(&in, big);
    free(big);
    assert_int_equal(pop3_command_parser_next_line(parser, &in, 8192, &line, &len, &err),
                     POP3_COMMAND_OK);
    assert_int_equal(len, 4002);
    assert_int_equal(line[4001], '=');
    free(line);
    assert_int_equal(pop3_command_parser_next_line(parser, &in, 8192, &line, &len, &err),
                     POP3_COMMAND_OK);
    assert_string_equal(line, "*");
    free(line);
    assert_int_equal(pop3_command_parser_next_line(parser, &in, 8192, &line, &len, &err),
                     POP3_COMMAND_NEED_MORE);
    assert_null(line);
    buf_append(&in, "c\0d\n", 4);
    assert_int_equal(pop3_command_parser_next_line(parser, &in, 8192, &line, &len, &err),
                     POP3_COMMAND_ERROR);
    assert_int_equal(err, POP3_CMDERR_NUL);
    assert_int_equal(in.len, 0);
    buf_append_str(&in, "0123456789\r\nok\r\n");
    assert_int_equal(pop3_command_parser_next_line(parser, &in, 5, &line, &len, &err),
                     POP3_COMMAND_ERROR);
    assert_int_equal(err, POP3_CMDERR_TOO_LONG);
    assert_int_equal(pop3_command_parser_next_line(parser, &in, 5, &line, &len, &err),
                     POP3_COMMAND_OK);
    assert_string_equal(line, "ok");
    free(line);
    buf_free(&in);
    pop3_command_parser_destroy(&parser);
}

static void test_reset_forgets_skipping(void **state)
{
    (void)state;
    struct pop3_command_limits lim;
    pop3_command_limits_default(&lim);
    struct pop3_command_parser *parser = pop3_command_parser_create(&lim);
    struct buf in;
    buf_init(&in, 0);
    char *lng = repeat('x', 400, "");
    buf_append_str(&in, lng);
    free(lng);
    struct pop3_command cmd;
    enum pop3_command_error err;
    assert_int_equal(pop3_command_parser_next(parser, &in, &cmd, &err), POP3_COMMAND_ERROR);
    pop3_command_parser_reset(parser);
    buf_append_str(&in, "CAPA\r\n");
    assert_int_equal(pop3_command_parser_next(parser, &in, &cmd, &err), POP3_COMMAND_OK);
    assert_int_equal(cmd.verb, POP3_VERB_CAPA);
    pop3_command_clear(&cmd);
    buf_free(&in);
    pop3_command_parser_destroy(&parser);
}

static void test_error_replies_are_err_lines(void **state)
{
    (void)state;
    for (int e = POP3_CMDERR_NONE; e <= POP3_CMDERR_EMPTY; e++)
        assert_memory_equal(pop3_command_error_reply((enum pop3_command_error)e), "-ERR ", 5);
    assert_string_equal(pop3_verb_name(POP3_VERB_TOP), "TOP");
    assert_string_equal(pop3_verb_name(POP3_VERB_COUNT), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs_are_case_insensitive),
        cmocka_unit_test(test_unknown_verbs_are_commands_not_errors),
        cmocka_unit_test(test_two_arguments_and_extra_flag),
        cmocka_unit_test(test_pass_keeps_spaces_in_rest),
        cmocka_unit_test(test_bare_lf_is_accepted),
        cmocka_unit_test(test_incomplete_line_needs_more),
        cmocka_unit_test(test_nul_cr_and_empty_lines_are_errors),
        cmocka_unit_test(test_line_limit_is_255_octets_with_crlf),
        cmocka_unit_test(test_very_long_line_is_skipped_to_its_newline),
        cmocka_unit_test(test_raw_lines_for_sasl),
        cmocka_unit_test(test_reset_forgets_skipping),
        cmocka_unit_test(test_error_replies_are_err_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
