/* Unit tests for lib/buf: bounded growth and the bounded line reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "buf.h"

static void append_grows_and_stays_nul_terminated(void **state)
{
    struct buf b;
    buf_init(&b, 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(buf_append_str(&b, "abc"), 0);
    assert_int_equal(b.len, 3000);
    assert_int_equal(b.data[3000], '\0');
    assert_int_equal(buf_printf(&b, "%d-%s", 42, "x"), 0);
    assert_string_equal(b.data + 3000, "42-x");
    buf_free(&b);
}

static void bounded_buffer_refuses_past_limit(void **state)
{
    struct buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(buf_append_char(&b, 'x'), -1);
    assert_int_equal(b.len, 10);
    assert_int_equal(buf_printf(&b, "%s", "y"), -1);
    buf_consume(&b, 4);
    assert_string_equal(b.data, "456789");
    assert_int_equal(buf_append(&b, "abcd", 4), 0);
    assert_int_equal(buf_append(&b, "e", (size_t)-1), -1);   /* huge length: no overflow */
    buf_free(&b);
}

static void steal_returns_string_and_empties(void **state)
{
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "hello");
    char *s = buf_steal(&b);
    assert_string_equal(s, "hello");
    assert_int_equal(b.len, 0);
    free(s);
    buf_free(&b);
}

static void line_reader_reports_crlf_and_bare_lf(void **state)
{
    struct buf in;
    buf_init(&in, 0);
    buf_append_str(&in, "EHLO x\r\nNOOP\nrest");
    const char *line;
    size_t len, consume;
    int crlf;
    assert_int_equal(buf_read_line(&in, 512, &line, &len, &crlf, &consume), BUF_LINE_OK);
    assert_int_equal(len, 6);
    assert_memory_equal(line, "EHLO x", 6);
    assert_true(crlf);
    buf_consume(&in, consume);
    assert_int_equal(buf_read_line(&in, 512, &line, &len, &crlf, &consume), BUF_LINE_OK);
    assert_int_equal(len, 4);
    assert_false(crlf);
    buf_consume(&in, consume);
    assert_int_equal(buf_read_line(&in, 512, &line, &len, &crlf, &consume),
                     BUF_LINE_NEED_MORE);
    buf_free(&in);
}

static void line_reader_detects_too_long_before_newline(void **state)
{
    struct buf in;
    buf_init(&in, 0);
    for (int i = 0; i < 20; i++)
        buf_append_char(&in, 'a');
    const char *line;
    size_t len, consume;
    int crlf;
    /* 20 bytes, limit 10, no newline yet: too long already. */
    assert_int_equal(buf_read_line(&in, 10, &line, &len, &crlf, &consume), BUF_LINE_TOO_LONG);
    assert_int_equal(consume, 20);
    buf_reset(&in);
    /* Exactly the limit plus CRLF is fine, one more is not. */
    buf_append_str(&in, "0123456789\r\n");
    assert_int_equal(buf_read_line(&in, 10, &line, &len, &crlf, &consume), BUF_LINE_OK);
    buf_reset(&in);
    buf_append_str(&in, "0123456789X\r\n");
    assert_int_equal(buf_read_line(&in, 10, &line, &len, &crlf, &consume), BUF_LINE_TOO_LONG);
    assert_int_equal(consume, 13);
    buf_free(&in);
}

static void line_reader_byte_at_a_time(void **state)
{
    const char *text = "MAIL FROM:<a@b>\r\n";
    struct buf in;
    buf_init(&in, 0);
    const char *line;
    size_t len, consume;
    int crlf;
    for (size_t i = 0; i < strlen(text) - 1; i++) {
        buf_append_char(&in, text[i]);
        assert_int_equal(buf_read_line(&in, 512, &line, &len, &crlf, &consume),
                         BUF_LINE_NEED_MORE);
    }
    buf_append_char(&in, '\n');
    assert_int_equal(buf_read_line(&in, 512, &line, &len, &crlf, &consume), BUF_LINE_OK);
    assert_int_equal(len, strlen(text) - 2);
    buf_free(&in);
}

static void fd_read_and_flush_round_trip(void **state)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct buf out, in;
    buf_init(&out, 0);
    buf_init(&in, 0);
    buf_append_str(&out, "payload");
    assert_int_equal(buf_flush_fd(&out, p[1]), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(buf_read_fd(&in, p[0], 100), 7);
    assert_string_equal(in.data, "payload");
    close(p[1]);
    assert_int_equal(buf_read_fd(&in, p[0], 100), 0);
    close(p[0]);
    buf_free(&out);
    buf_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(append_grows_and_stays_nul_terminated),
        cmocka_unit_test(bounded_buffer_refuses_past_limit),
        cmocka_unit_test(steal_returns_string_and_empties),
        cmocka_unit_test(line_reader_reports_crlf_and_bare_lf),
        cmocka_unit_test(line_reader_detects_too_long_before_newline),
        cmocka_unit_test(line_reader_byte_at_a_time),
        cmocka_unit_test(fd_read_and_flush_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
