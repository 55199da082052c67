/* Unit tests for lib/delivery_log: the Postfix-shaped per-recipient line. */
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
#include "delivery_log.h"
#include "log.h"
#include "safe_file.h"

static void delays_use_postfix_precision(void **state)
{
    char out[32];
    delivery_log_format_delay(out, sizeof(out), 0.123);
    assert_string_equal(out, "0.12");
    delivery_log_format_delay(out, sizeof(out), 0);
    assert_string_equal(out, "0");
    delivery_log_format_delay(out, sizeof(out), 0.5);
    assert_string_equal(out, "0.5");
    delivery_log_format_delay(out, sizeof(out), 3.25);
    assert_string_equal(out, "3.2");
    delivery_log_format_delay(out, sizeof(out), 42.7);
    assert_string_equal(out, "43");
    delivery_log_format_delay(out, sizeof(out), -1);
    assert_string_equal(out, "0");
}

static void line_has_pflogsumm_shape(void **state)
{
    char path[] = "/tmp/test-delivery-log.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    log_init("local");
    assert_int_equal(log_set_file(path), 0);
    struct delivery_log e = {
        .queue_id = "6B09160F71658676C", .to = "bob@example.test",
        .orig_to = "postmaster@localhost", .relay = "local", .delay = 0.25,
        .delays = {0.01, 0, 0, 0.24}, .dsn = "2.0.0", .status = "sent",
        .reason = "delivered to maildir",
    };
    delivery_log(&e);
    e.orig_to = "BOB@example.test";   /* same address: not repeated */
    delivery_log(&e);
    log_set_file("/dev/stderr");
    struct buf text;
    buf_init(&text, 0);
    assert_int_equal(safe_read_file(path, &text, 1 << 20), 0);
    assert_non_null(strstr(text.data, "postern/local["));
    assert_non_null(strstr(text.data,
        "]: 6B09160F71658676C: to=<bob@example.test>, orig_to=<postmaster@localhost>, "
        "relay=local, delay=0.25, delays=0.01/0/0/0.24, dsn=2.0.0, status=sent "
        "(delivered to maildir)\n"));
    assert_non_null(strstr(text.data,
        "]: 6B09160F71658676C: to=<bob@example.test>, relay=local, delay=0.25"));
    buf_free(&text);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(delays_use_postfix_precision),
        cmocka_unit_test(line_has_pflogsumm_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
