/* Unit tests for lib/smtp_data.c: end-of-data framing (including the SMTP
   smuggling variants), dot-unstuffing, bare CR/LF, size limit, pieces;
   every case is fed whole, one byte at a time, and in 3-byte chunks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "smtp_data.h"

struct result {
    char *output;      /* concatenated pieces */
    int pieces;
    int partial_pieces;
    int ended;
    size_t rest;       /* bytes left after the end */
    struct smtp_data_decoder d;
};

static void decode(const char *text, size_t len, size_t chunk,
                   const struct smtp_data_limits *limits, struct result *r)
{
    struct smtp_data_limits def;
    if (limits == NULL) {
        smtp_data_limits_default(&def);
        limits = &def;
    }
    struct buf out, all;
    buf_init(&out, 0);
    buf_init(&all, 0);
    memset(r, 0, sizeof(*r));
    smtp_data_decoder_init(&r->d, limits);
    size_t off = 0;
    while (off < len && !r->ended) {
        size_t avail = chunk == 0 || len - off < chunk ? len - off : chunk;
        size_t pos = 0;
        while (pos < avail) {
            size_t used;
            enum smtp_data_status st = smtp_data_decode(&r->d, text + off + pos, avail - pos,
                                                        &used, &out);
            assert_true(used <= avail - pos);
            pos += used;
            if (st == SMTP_DATA_NEED_MORE) {
                assert_int_equal(pos, avail);
                break;
            }
            if (st == SMTP_DATA_PIECE) {
                assert_true(out.len > 0);
                assert_true(out.len <= limits->max_piece + 1);
                r->pieces++;
                if (!r->d.piece_ends_line)
                    r->partial_pieces++;
                else
                    assert_int_equal(out.data[out.len - 1], '\n');
                buf_append(&all, out.data, out.len);
                buf_reset(&out);
                continue;
            }
            r->ended = 1;
            if (!r->d.too_big && r->d.error == SMTP_DATA_ERR_NONE)
                assert_int_equal(out.len, 0);
            break;
        }
        off += pos;
    }
    r->rest = len - off;
    /* after an error the caller throws the unfinished piece away */
    if (!r->d.too_big && r->d.error == SMTP_DATA_ERR_NONE)
        buf_append(&all, out.data, out.len);
    buf_free(&out);
    r->output = buf_steal(&all);
}

/* Checks the same outcome for whole, bytewise and chunked feeding. */
static void expect(const char *text, const struct smtp_data_limits *limits, int ended,
                   const char *output, size_t rest, int error)
{
    size_t chunks[] = {0, 1, 3};
    for (size_t i = 0; i < 3; i++) {
        struct result r;
        decode(text, strlen(text), chunks[i], limits, &r);
        if (r.ended != ended || strcmp(r.output, output) != 0 || r.rest != rest ||
            (int)r.d.error != error)
            fail_msg("input '%s' chunk %zu: ended %d output '%s' rest %zu error %d",
                     text, chunks[i], r.ended, r.output, r.rest, (int)r.d.error);
        free(r.output);
    }
}

static void test_end_of_data_exactly_crlf_dot_crlf(void **state)
{
    (void)state;
    expect("Subject: x\r\n\r\nbody\r\n.\r\n", NULL, 1, "Subject: x\n\nbody\n", 0, 0);
    expect(".\r\n", NULL, 1, "", 0, 0);   /* empty message */
    expect("a\r\n.\r\nQUIT\r\n", NULL, 1, "a\n", 6, 0);
    expect("a\r\n.\r\n", NULL, 1, "a\n", 0, 0);
    expect("a\r\nb\r\n", NULL, 0, "a\nb\n", 0, 0);
    expect("a\r\n.", NULL, 0, "a\n", 0, 0);
    expect("a\r\n.\r", NULL, 0, "a\n", 0, 0);
}

static void test_smuggling_variants_do_not_end_data(void **state)
{
    (void)state;
    struct smtp_data_limits lenient;
    smtp_data_limits_default(&lenient);
    lenient.forbid_bare_newline = 0;
    lenient.forbid_bare_cr = 0;
    /* LF . CRLF */
    expect("a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", &lenient, 1, "a\n\nMAIL FROM:<x@y>\n", 0, 0);
    /* CRLF . LF */
    expect("a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n", &lenient, 1, "a\n\nMAIL FROM:<x@y>\n", 0, 0);
    /* LF . LF */
    expect("a\n.\nRCPT\r\n.\r\n", &lenient, 1, "a\n\nRCPT\n", 0, 0);
    /* CR . CR */
    expect("a\r.\rb\r\n.\r\n", &lenient, 1, "a\r.\rb\n", 0, 0);
    /* with the default (forbid) the same inputs end only at the real
       end, flag an error and produce no more output */
    expect("a\n.\r\nMAIL FROM:<x@y>\r\n.\r\nQUIT\r\n", NULL, 1, "", 6, SMTP_DATA_ERR_BARE_LF);
    expect("a\r\n.\nX\r\n.\r\n", NULL, 1, "a\n", 0, SMTP_DATA_ERR_BARE_LF);
    expect("a\n.\n", NULL, 0, "", 0, SMTP_DATA_ERR_BARE_LF);
    expect("a\r.\rb\r\n.\r\n", NULL, 1, "", 0, SMTP_DATA_ERR_BARE_CR);
}

static void test_dot_unstuffing(void **state)
{
    (void)state;
    expect("..\r\n...x\r\n.y\r\n.\r\n", NULL, 1, ".\n..x\ny\n", 0, 0);
    expect("a\r\n..\r\n.\r\n", NULL, 1, "a\n.\n", 0, 0);
    /* a dot in the middle of a line is content */
    expect("a.\r\nb .\r\n.\r\n", NULL, 1, "a.\nb .\n", 0, 0);
}

static void test_bare_cr_and_lf_counted(void **state)
{
    (void)state;
    struct smtp_data_limits lenient;
    smtp_data_limits_default(&lenient);
    lenient.forbid_bare_newline = 0;
    lenient.forbid_bare_cr = 0;
    const char *text = "a\nb\rc\r\r\nd\r\n.\r\n";
    struct result r;
    decode(text, strlen(text), 1, &lenient, &r);
    assert_int_equal(r.ended, 1);
    assert_string_equal(r.output, "a\nb\rc\r\nd\n");
    assert_int_equal(r.d.bare_lf, 1);
    assert_int_equal(r.d.bare_cr, 2);
    assert_int_equal(r.d.lines, 3);
    assert_int_equal(r.d.error, SMTP_DATA_ERR_NONE);
    free(r.output);
}

static void test_size_limit_sets_too_big_and_reads_to_end(void **state)
{
    (void)state;
    struct smtp_data_limits lim;
    smtp_data_limits_default(&lim);
    lim.max_size = 10;
    struct result r;
    const char *text = "0123456789\r\nmore\r\n.\r\nQUIT\r\n";
    for (size_t chunk = 0; chunk <= 1; chunk++) {
        decode(text, strlen(text), chunk, &lim, &r);
        assert_int_equal(r.ended, 1);
        assert_int_equal(r.d.too_big, 1);
        assert_int_equal(r.rest, 6);
        assert_int_equal(r.d.size, 16);
        assert_true(strlen(r.output) <= 10);
        free(r.output);
    }
    lim.max_size = 11;   /* exactly at the limit is fine */
    decode("0123456789\r\n.\r\n", 15, 0, &lim, &r);
    assert_int_equal(r.d.too_big, 0);
    assert_string_equal(r.output, "0123456789\n");
    free(r.output);
}

static void test_long_lines_split_into_pieces_and_counted(void **state)
{
    (void)state;
    struct smtp_data_limits lim;
    smtp_data_limits_default(&lim);
    lim.max_piece = 100;
    struct buf text, want;
    buf_init(&text, 0);
    buf_init(&want, 0);
    for (int i = 0; i < 1500; i++)
        buf_append_char(&text, (char)('a' + i % 26));
    buf_append(&want, text.data, text.len);
    buf_append_str(&text, "\r\nshort\r\n.\r\n");
    buf_append_str(&want, "\nshort\n");
    for (size_t chunk = 0; chunk <= 7; chunk += 7) {
        struct result r;
        decode(text.data, text.len, chunk, &lim, &r);
        assert_int_equal(r.ended, 1);
        assert_string_equal(r.output, want.data);
        assert_int_equal(r.d.long_lines, 1);
        assert_int_equal(r.d.lines, 2);
        assert_int_equal(r.partial_pieces, 15);
        assert_int_equal(r.pieces, 17);
        free(r.output);
    }
    buf_free(&text);
    buf_free(&want);
}

static void test_after_end_decoder_stays_done(void **state)
{
    (void)state;
    struct smtp_data_limits lim;
    smtp_data_limits_default(&lim);
    struct smtp_data_decoder d;
    smtp_data_decoder_init(&d, &lim);
    struct buf out;
    buf_init(&out, 0);
    size_t used;
    assert_int_equal(smtp_data_decode(&d, ".\r\nNOOP\r\n", 9, &used, &out), SMTP_DATA_END);
    assert_int_equal(used, 3);
    assert_int_equal(smtp_data_decode(&d, "NOOP\r\n", 6, &used, &out), SMTP_DATA_END);
    assert_int_equal(used, 0);
    assert_int_equal(out.len, 0);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_end_of_data_exactly_crlf_dot_crlf),
        cmocka_unit_test(test_smuggling_variants_do_not_end_data),
        cmocka_unit_test(test_dot_unstuffing),
        cmocka_unit_test(test_bare_cr_and_lf_counted),
        cmocka_unit_test(test_size_limit_sets_too_big_and_reads_to_end),
        cmocka_unit_test(test_long_lines_split_into_pieces_and_counted),
        cmocka_unit_test(test_after_end_decoder_stays_done),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
