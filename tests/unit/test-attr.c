/*
 * NAME
 *	test-attr - attribute message encoder, decoder and fd helpers
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "attr.h"
#include "buf.h"

/* Builds a frame with the given body (len bytes) into b. */
static void frame(struct buf *b, const void *body, size_t len)
{
    unsigned char h[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                          (unsigned char)(len >> 8), (unsigned char)len};
    buf_append(b, h, 4);
    buf_append(b, body, len);
}

static void test_round_trip_keeps_pairs_in_order(void **state)
{
    struct attr_msg m, d;
    struct buf b;
    const char *err = NULL;
    attr_msg_init(&m);
    attr_msg_init(&d);
    buf_init(&b, 0);
    attr_msg_add(&m, "id", "42");
    attr_msg_add(&m, "request", "new");
    attr_msg_add(&m, "empty", "");
    attr_msg_addf(&m, "size", "%d", 1234);
    attr_msg_add(&m, "reason", "b\xc3\xa4" "d = \"x\"\n\ttab");
    attr_msg_add(&m, "id", "dup");
    attr_msg_encode(&m, &b);
    assert_int_equal(attr_msg_decode(&b, &d, &err), ATTR_OK);
    assert_int_equal(b.len, 0);
    assert_int_equal(d.count, 6);
    for (size_t i = 0; i < m.count; i++) {
        assert_string_equal(d.names[i], m.names[i]);
        assert_string_equal(d.values[i], m.values[i]);
    }
    assert_string_equal(attr_msg_get(&d, "id"), "42");
    assert_string_equal(attr_msg_get(&d, "empty"), "");
    assert_null(attr_msg_get(&d, "missing"));
    assert_int_equal(attr_msg_get_num(&d, "size"), 1234);
    assert_int_equal(attr_msg_get_num(&d, "empty"), -1);
    assert_int_equal(attr_msg_get_num(&d, "request"), -1);
    assert_int_equal(attr_msg_get_num(&d, "missing"), -1);
    attr_msg_clear(&m);
    attr_msg_clear(&d);
    buf_free(&b);
}

static void test_empty_message_round_trips(void **state)
{
    struct attr_msg m, d;
    struct buf b;
    const char *err;
    attr_msg_init(&m);
    attr_msg_init(&d);
    buf_init(&b, 0);
    attr_msg_encode(&m, &b);
    assert_int_equal(b.len, 5);
    assert_int_equal(attr_msg_decode(&b, &d, &err), ATTR_OK);
    assert_int_equal(d.count, 0);
    buf_free(&b);
}

static void test_num_rejects_overflow_and_signs(void **state)
{
    struct attr_msg m;
    attr_msg_init(&m);
    attr_msg_add(&m, "a", "9223372036854775807");
    attr_msg_add(&m, "b", "9223372036854775808");
    attr_msg_add(&m, "c", "-1");
    attr_msg_add(&m, "d", "+1");
    attr_msg_add(&m, "e", "1 ");
    attr_msg_add(&m, "f", "0");
    assert_true(attr_msg_get_num(&m, "a") == 9223372036854775807LL);
    assert_int_equal(attr_msg_get_num(&m, "b"), -1);
    assert_int_equal(attr_msg_get_num(&m, "c"), -1);
    assert_int_equal(attr_msg_get_num(&m, "d"), -1);
    assert_int_equal(attr_msg_get_num(&m, "e"), -1);
    assert_int_equal(attr_msg_get_num(&m, "f"), 0);
    attr_msg_clear(&m);
}

static void test_decode_byte_at_a_time_with_pipelined_frames(void **state)
{
    struct attr_msg m, d;
    struct buf all, in;
    const char *err;
    attr_msg_init(&m);
    attr_msg_init(&d);
    buf_init(&all, 0);
    buf_init(&in, 0);
    attr_msg_add(&m, "id", "1");
    attr_msg_add(&m, "queue_id", "0123456789ABCDEF0");
    attr_msg_encode(&m, &all);
    attr_msg_clear(&m);
    attr_msg_add(&m, "id", "2");
    attr_msg_encode(&m, &all);
    int got = 0;
    for (size_t i = 0; i < all.len; i++) {
        buf_append(&in, all.data + i, 1);
        enum attr_status st;
        while ((st = attr_msg_decode(&in, &d, &err)) == ATTR_OK) {
            got++;
            assert_string_equal(attr_msg_get(&d, "id"), got == 1 ? "1" : "2");
        }
        assert_int_equal(st, ATTR_NEED_MORE);
    }
    assert_int_equal(got, 2);
    assert_int_equal(in.len, 0);
    attr_msg_clear(&m);
    attr_msg_clear(&d);
    buf_free(&all);
    buf_free(&in);
}

struct bad_case {
    const char *what;
    const char *body;
    size_t len;
};

static void test_every_malformed_frame_kind_is_rejected(void **state)
{
    static const struct bad_case cases[] = {
        {"pair without =", "abc\0\0", 5},
        {"empty name", "=v\0\0", 4},
        {"upper-case name", "Id=1\0\0", 6},
        {"name with dash", "a-b=1\0\0", 7},
        {"name with space", "a b=1\0\0", 7},
        {"missing final NUL", "a=1\0", 4},
        {"no NUL at all", "a=1", 3},
        {"bytes after final NUL", "a=1\0\0x", 6},
        {"NUL after final NUL", "a=1\0\0\0", 6},
        {"empty-message trailing byte", "\0x", 2},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf b;
        struct attr_msg d;
        const char *err = NULL;
        buf_init(&b, 0);
        attr_msg_init(&d);
        frame(&b, cases[i].body, cases[i].len);
        enum attr_status st = attr_msg_decode(&b, &d, &err);
        if (st != ATTR_BAD)
            fail_msg("accepted: %s", cases[i].what);
        assert_non_null(err);
        assert_int_equal(d.count, 0);
        buf_free(&b);
    }
    /* Valid neighbours of the cases above. */
    struct buf b;
    struct attr_msg d;
    const char *err;
    buf_init(&b, 0);
    attr_msg_init(&d);
    frame(&b, "a_9=\0\0", 6);
    assert_int_equal(attr_msg_decode(&b, &d, &err), ATTR_OK);
    assert_string_equal(attr_msg_get(&d, "a_9"), "");
    frame(&b, "a==\0\0", 5);
    assert_int_equal(attr_msg_decode(&b, &d, &err), ATTR_OK);
    assert_string_equal(attr_msg_get(&d, "a"), "=");
    attr_msg_clear(&d);
    buf_free(&b);
}

static void test_length_limits_are_checked_before_the_body(void **state)
{
    struct buf b;
    struct attr_msg d;
    const char *err;
    buf_init(&b, 0);
    attr_msg_init(&d);
    /* Zero length. */
    buf_append(&b, "\0\0\0\0", 4);
    assert_int_equal(attr_msg_decode(&b, &d, &err), ATTR_BAD);
    buf_reset(&b);
    /* One byte over the limit: rejected from the 4-byte header alone. */
    uint32_t big = ATTR_MAX_MSG + 1;
    unsigned char h[4] = {(unsigned char)(big >> 24), (unsigned char)(big >> 16),
                          (unsigned char)(big >> 8), (unsigned char)big};
    buf_append(&b, h, 4);
    assert_int_equal(attr_msg_decode(&b, &d, &err), ATTR_BAD);
    buf_reset(&b);
    buf_append(&b, "\xff\xff\xff\xff", 4);
    assert_int_equal(attr_msg_decode(&b, &d, &err), ATTR_BAD);
    buf_reset(&b);
    /* Exactly the limit is fine. */
    char *body = malloc(ATTR_MAX_MSG);
    memset(body, 'x', ATTR_MAX_MSG);
    memcpy(body, "v=", 2);
    body[ATTR_MAX_MSG - 2] = '\0';
    body[ATTR_MAX_MSG - 1] = '\0';
    frame(&b, body, ATTR_MAX_MSG);
    free(body);
    assert_int_equal(attr_msg_decode(&b, &d, &err), ATTR_OK);
    assert_int_equal(strlen(attr_msg_get(&d, "v")), ATTR_MAX_MSG - 4);
    attr_msg_clear(&d);
    buf_free(&b);
}

static void test_pair_count_limit(void **state)
{
    struct buf body, b;
    struct attr_msg d;
    const char *err;
    buf_init(&body, 0);
    buf_init(&b, 0);
    attr_msg_init(&d);
    for (int i = 0; i < ATTR_MAX_PAIRS; i++)
        buf_append(&body, "a=\0", 3);
    buf_append(&body, "\0", 1);
    frame(&b, body.data, body.len);
    assert_int_equal(attr_msg_decode(&b, &d, &err), ATTR_OK);
    assert_int_equal(d.count, ATTR_MAX_PAIRS);
    buf_truncate(&body, body.len - 1);
    buf_append(&body, "a=\0\0", 4);
    frame(&b, body.data, body.len);
    assert_int_equal(attr_msg_decode(&b, &d, &err), ATTR_BAD);
    attr_msg_clear(&d);
    buf_free(&body);
    buf_free(&b);
}

static void test_read_fd_over_socketpair(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct attr_msg m, d;
    struct buf in;
    attr_msg_init(&m);
    attr_msg_init(&d);
    buf_init(&in, 0);
    attr_msg_add(&m, "id", "7");
    attr_msg_add(&m, "status", "ok");
    /* Two frames in one write: the second stays in `in`. */
    assert_int_equal(attr_msg_write_fd(sv[0], &m), 0);
    assert_int_equal(attr_msg_write_fd(sv[0], &m), 0);
    assert_int_equal(attr_msg_read_fd(sv[1], &in, &d, 1000), 0);
    assert_string_equal(attr_msg_get(&d, "status"), "ok");
    assert_int_equal(attr_msg_read_fd(sv[1], &in, &d, 1000), 0);
    assert_string_equal(attr_msg_get(&d, "id"), "7");
    assert_int_equal(in.len, 0);

    /* Nothing arrives: timeout. */
    errno = 0;
    assert_int_equal(attr_msg_read_fd(sv[1], &in, &d, 50), -1);
    assert_int_equal(errno, ETIMEDOUT);

    /* Half a frame then silence: timeout, bytes kept. */
    assert_int_equal(write(sv[0], "\0\0\0\x05", 4), 4);
    assert_int_equal(attr_msg_read_fd(sv[1], &in, &d, 50), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_int_equal(in.len, 4);
    buf_reset(&in);

    /* Malformed frame: EPROTO. */
    assert_int_equal(write(sv[0], "a=1", 3), 3);
    assert_int_equal(write(sv[0], "\0x", 2), 2);
    assert_int_equal(attr_msg_read_fd(sv[1], &in, &d, 1000), -1);
    assert_int_equal(errno, EPROTO);
    buf_reset(&in);

    /* Peer closes: ECONNRESET with nothing buffered. */
    close(sv[0]);
    assert_int_equal(attr_msg_read_fd(sv[1], &in, &d, 1000), -1);
    assert_int_equal(errno, ECONNRESET);
    assert_int_equal(in.len, 0);

    /* Writing to a closed peer fails without SIGPIPE. */
    assert_int_equal(attr_msg_write_fd(sv[1], &m), -1);
    assert_int_equal(errno, EPIPE);
    close(sv[1]);
    attr_msg_clear(&m);
    attr_msg_clear(&d);
    buf_free(&in);
}

static void test_name_validation(void **state)
{
    assert_true(attr_name_valid("queue_id", 8));
    assert_true(attr_name_valid("a1", 2));
    assert_false(attr_name_valid("", 0));
    assert_false(attr_name_valid("A", 1));
    assert_false(attr_name_valid("a=b", 3));
    assert_false(attr_name_valid("a.b", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_keeps_pairs_in_order),
        cmocka_unit_test(test_empty_message_round_trips),
        cmocka_unit_test(test_num_rejects_overflow_and_signs),
        cmocka_unit_test(test_decode_byte_at_a_time_with_pipelined_frames),
        cmocka_unit_test(test_every_malformed_frame_kind_is_rejected),
        cmocka_unit_test(test_length_limits_are_checked_before_the_body),
        cmocka_unit_test(test_pair_count_limit),
        cmocka_unit_test(test_read_fd_over_socketpair),
        cmocka_unit_test(test_name_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
