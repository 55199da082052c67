/*
 * NAME
 *	test-anvil - unit tests for lib/anvil.c (per-client limits)
 * DESCRIPTION
 *	All times are a fake monotonic clock in milliseconds; the time
 *	unit is 60 s unless a test says otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "anvil.h"
#include "buf.h"
#include "config.h"
#include "log.h"
#include "xalloc.h"

#define UNIT 60000LL
#define T0 (1000 * UNIT)   /* a window boundary */

static struct anvil_limits limits(void)
{
    struct anvil_limits l;
    anvil_limits_default(&l);
    l.connection_count = 0;
    return l;
}

static void test_connection_count_goes_up_and_down(void **state)
{
    (void)state;
    struct anvil_limits l = limits();
    l.connection_count = 2;
    struct anvil *a = anvil_create(&l, "");
    long long v = -1;
    assert_int_equal(anvil_connect(a, "192.0.2.1", T0, &v), ANVIL_OK);
    assert_int_equal(v, 0);
    assert_int_equal(anvil_connect(a, "192.0.2.1", T0, NULL), ANVIL_OK);
    assert_int_equal(anvil_count_peek(a, "192.0.2.1"), 2);
    assert_int_equal(anvil_connect(a, "192.0.2.1", T0, &v), ANVIL_CONN_COUNT_EXCEEDED);
    assert_int_equal(v, 3);
    /* Another client is counted on its own. */
    assert_int_equal(anvil_connect(a, "192.0.2.2", T0, NULL), ANVIL_OK);
    /* The refused one disconnects too (contract: one disconnect per connect). */
    anvil_disconnect(a, "192.0.2.1", T0 + 1);
    assert_int_equal(anvil_count_peek(a, "192.0.2.1"), 2);
    anvil_disconnect(a, "192.0.2.1", T0 + 1);
    assert_int_equal(anvil_connect(a, "192.0.2.1", T0 + 2, NULL), ANVIL_OK);
    anvil_disconnect(a, "192.0.2.1", T0 + 3);
    anvil_disconnect(a, "192.0.2.1", T0 + 3);
    assert_int_equal(anvil_count_peek(a, "192.0.2.1"), 0);
    /* Never below zero. */
    anvil_disconnect(a, "192.0.2.1", T0 + 4);
    anvil_disconnect(a, "198.51.100.9", T0 + 4);
    assert_int_equal(anvil_count_peek(a, "192.0.2.1"), 0);
    assert_int_equal(anvil_connect(a, "192.0.2.1", T0 + 5, NULL), ANVIL_OK);
    assert_int_equal(anvil_count_peek(a, "192.0.2.1"), 1);
    anvil_destroy(&a);
    assert_null(a);
}

static void test_connection_rate_limit_counts_refused_attempts(void **state)
{
    (void)state;
    struct anvil_limits l = limits();
    l.rate[ANVIL_RATE_CONN] = 3;
    struct anvil *a = anvil_create(&l, NULL);
    long long v;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(anvil_connect(a, "2001:db8::1", T0 + i * 1000, &v), ANVIL_OK);
        anvil_disconnect(a, "2001:db8::1", T0 + i * 1000 + 10);
    }
    assert_int_equal(anvil_connect(a, "2001:db8::1", T0 + 5000, &v), ANVIL_CONN_RATE_EXCEEDED);
    assert_int_equal(v, 4);
    anvil_disconnect(a, "2001:db8::1", T0 + 5001);
    assert_int_equal(anvil_connect(a, "2001:db8::1", T0 + 6000, &v), ANVIL_CONN_RATE_EXCEEDED);
    assert_int_equal(v, 5);
    anvil_disconnect(a, "2001:db8::1", T0 + 6001);
    anvil_destroy(&a);
}

/* The sliding estimate: cur + prev * (unit - into) / unit. */
static void test_rate_window_slides_with_the_clock(void **state)
{
    (void)state;
    struct anvil_limits l = limits();
    l.rate[ANVIL_RATE_MAIL] = 10;
    struct anvil *a = anvil_create(&l, "");
    const char *c = "203.0.113.7";
    long long v;
    /* 10 messages in the first half of window 0: all allowed. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(anvil_event(a, c, ANVIL_RATE_MAIL, T0 + i * 1000, &v), ANVIL_OK);
    assert_int_equal(anvil_rate_peek(a, c, ANVIL_RATE_MAIL, T0 + 30000), 10);
    assert_int_equal(anvil_event(a, c, ANVIL_RATE_MAIL, T0 + 30000, &v),
                     ANVIL_MAIL_RATE_EXCEEDED);
    assert_int_equal(v, 11);
    /* Start of the next window: the previous one still counts fully. */
    assert_int_equal(anvil_rate_peek(a, c, ANVIL_RATE_MAIL, T0 + UNIT), 11);
    /* A quarter in: 11 * 3/4 = 8 (rounded down). */
    assert_int_equal(anvil_rate_peek(a, c, ANVIL_RATE_MAIL, T0 + UNIT + UNIT / 4), 8);
    assert_int_equal(anvil_event(a, c, ANVIL_RATE_MAIL, T0 + UNIT + UNIT / 4, &v), ANVIL_OK);
    assert_int_equal(anvil_event(a, c, ANVIL_RATE_MAIL, T0 + UNIT + UNIT / 4, &v), ANVIL_OK);
    assert_int_equal(anvil_event(a, c, ANVIL_RATE_MAIL, T0 + UNIT + UNIT / 4, &v),
                     ANVIL_MAIL_RATE_EXCEEDED);
    assert_int_equal(v, 11);   /* 3 now + 8 of the previous window */
    /* Half way: 3 + 11/2 = 8. */
    assert_int_equal(anvil_rate_peek(a, c, ANVIL_RATE_MAIL, T0 + UNIT + UNIT / 2), 8);
    /* Next window: only window 1's 3 events weigh in, fully at its start. */
    assert_int_equal(anvil_rate_peek(a, c, ANVIL_RATE_MAIL, T0 + 2 * UNIT), 3);
    /* Two windows later nothing is left. */
    assert_int_equal(anvil_rate_peek(a, c, ANVIL_RATE_MAIL, T0 + 3 * UNIT), 0);
    assert_int_equal(anvil_event(a, c, ANVIL_RATE_MAIL, T0 + 3 * UNIT, &v), ANVIL_OK);
    /* A burst at a window edge cannot pass twice the limit. */
    for (int i = 0; i < 9; i++)
        anvil_event(a, c, ANVIL_RATE_MAIL, T0 + 4 * UNIT - 1, NULL);
    /* 1 + 10 * (UNIT - 1) / UNIT = 10, then 11. */
    assert_int_equal(anvil_event(a, c, ANVIL_RATE_MAIL, T0 + 4 * UNIT + 1, &v), ANVIL_OK);
    assert_int_equal(anvil_event(a, c, ANVIL_RATE_MAIL, T0 + 4 * UNIT + 1, &v),
                     ANVIL_MAIL_RATE_EXCEEDED);
    assert_int_equal(v, 11);
    anvil_destroy(&a);
}

static void test_each_rate_limit_and_its_reply(void **state)
{
    (void)state;
    struct anvil_limits l = limits();
    l.rate[ANVIL_RATE_MAIL] = 1;
    l.rate[ANVIL_RATE_RCPT] = 2;
    l.rate[ANVIL_RATE_AUTH] = 1;
    struct anvil *a = anvil_create(&l, "");
    const char *c = "192.0.2.50";
    long long v;
    assert_int_equal(anvil_connect(a, c, T0, NULL), ANVIL_OK);
    assert_int_equal(anvil_event(a, c, ANVIL_RATE_MAIL, T0, &v), ANVIL_OK);
    assert_int_equal(anvil_event(a, c, ANVIL_RATE_MAIL, T0, &v), ANVIL_MAIL_RATE_EXCEEDED);
    assert_int_equal(anvil_event(a, c, ANVIL_RATE_RCPT, T0, &v), ANVIL_OK);
    assert_int_equal(anvil_event(a, c, ANVIL_RATE_RCPT, T0, &v), ANVIL_OK);
    assert_int_equal(anvil_event(a, c, ANVIL_RATE_RCPT, T0, &v), ANVIL_RCPT_RATE_EXCEEDED);
    assert_int_equal(v, 3);
    assert_int_equal(anvil_event(a, c, ANVIL_RATE_AUTH, T0, &v), ANVIL_OK);
    assert_int_equal(anvil_event(a, c, ANVIL_RATE_AUTH, T0, &v), ANVIL_AUTH_RATE_EXCEEDED);
    /* Counters are independent: connections were never limited. */
    assert_int_equal(anvil_rate_peek(a, c, ANVIL_RATE_CONN, T0), 1);
    anvil_disconnect(a, c, T0);

    static const struct {
        enum anvil_status st;
        const char *reply;
        const char *warning;
    } cases[] = {
        {ANVIL_CONN_COUNT_EXCEEDED, "421 4.7.0 mx.example.test Error: too many connections from 192.0.2.50",
         "Connection concurrency limit exceeded: 51 from unknown[192.0.2.50] for service smtp"},
        {ANVIL_CONN_RATE_EXCEEDED, "421 4.7.0 mx.example.test Error: too many connections from 192.0.2.50",
         "Connection rate limit exceeded: 51 from unknown[192.0.2.50] for service smtp"},
        {ANVIL_MAIL_RATE_EXCEEDED, "450 4.7.1 Error: too much mail from 192.0.2.50",
         "Message delivery request rate limit exceeded: 51 from unknown[192.0.2.50] for service smtp"},
        {ANVIL_RCPT_RATE_EXCEEDED, "450 4.7.1 Error: too many recipients from 192.0.2.50",
         "Recipient address rate limit exceeded: 51 from unknown[192.0.2.50] for service smtp"},
        {ANVIL_AUTH_RATE_EXCEEDED, "450 4.7.1 Error: too many AUTH commands from 192.0.2.50",
         "AUTH command rate limit exceeded: 51 from unknown[192.0.2.50] for service smtp"},
    };
    struct buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        buf_reset(&b);
        anvil_reply(&b, cases[i].st, "mx.example.test", "192.0.2.50");
        assert_string_equal(b.data, cases[i].reply);
        buf_reset(&b);
        anvil_warning(&b, cases[i].st, 51, "unknown[192.0.2.50]", "smtp");
        assert_string_equal(b.data, cases[i].warning);
    }
    buf_free(&b);
    anvil_destroy(&a);
}

static void test_zero_means_no_limit(void **state)
{
    (void)state;
    struct anvil_limits l = limits();
    struct anvil *a = anvil_create(&l, "");
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(anvil_connect(a, "192.0.2.9", T0, NULL), ANVIL_OK);
        assert_int_equal(anvil_event(a, "192.0.2.9", ANVIL_RATE_RCPT, T0, NULL), ANVIL_OK);
    }
    assert_int_equal(anvil_count_peek(a, "192.0.2.9"), 1000);
    anvil_destroy(&a);
}

static void test_exceptions_ipv4_ipv6_cidr_are_not_counted(void **state)
{
    (void)state;
    struct anvil_limits l = limits();
    l.connection_count = 1;
    l.rate[ANVIL_RATE_MAIL] = 1;
    struct anvil *a = anvil_create(&l, "127.0.0.0/8, [::1]/128 10.20.0.0/16 2001:db8:aa::/48");
    static const char *const exempt[] = {"127.0.0.1", "127.9.9.9", "::1", "10.20.255.1",
                                         "2001:db8:aa:1::7", "::ffff:10.20.0.5"};
    for (size_t i = 0; i < sizeof(exempt) / sizeof(exempt[0]); i++) {
        assert_true(anvil_exempt(a, exempt[i]));
        for (int k = 0; k < 5; k++) {
            assert_int_equal(anvil_connect(a, exempt[i], T0, NULL), ANVIL_OK);
            assert_int_equal(anvil_event(a, exempt[i], ANVIL_RATE_MAIL, T0, NULL), ANVIL_OK);
        }
        assert_int_equal(anvil_count_peek(a, exempt[i]), 0);
        anvil_disconnect(a, exempt[i], T0);
    }
    assert_int_equal(anvil_clients(a), 0);
    static const char *const counted[] = {"10.21.0.1", "2001:db8:ab::1", "::2"};
    for (size_t i = 0; i < sizeof(counted) / sizeof(counted[0]); i++) {
        assert_false(anvil_exempt(a, counted[i]));
        assert_int_equal(anvil_connect(a, counted[i], T0, NULL), ANVIL_OK);
        assert_int_equal(anvil_connect(a, counted[i], T0, NULL), ANVIL_CONN_COUNT_EXCEEDED);
    }
    assert_int_equal(anvil_clients(a), 3);
    anvil_destroy(&a);
}

static void test_table_evicts_least_recently_used_idle_client(void **state)
{
    (void)state;
    struct anvil_limits l = limits();
    l.rate[ANVIL_RATE_CONN] = 100;
    l.connection_count = 1;
    l.max_clients = 3;
    struct anvil *a = anvil_create(&l, "");
    /* A stays connected (never evicted); B and C idle. */
    anvil_connect(a, "192.0.2.1", T0, NULL);
    anvil_connect(a, "192.0.2.2", T0 + 1, NULL);
    anvil_disconnect(a, "192.0.2.2", T0 + 2);
    anvil_connect(a, "192.0.2.3", T0 + 3, NULL);
    anvil_disconnect(a, "192.0.2.3", T0 + 4);
    /* B used again: C is now the oldest idle entry. */
    anvil_event(a, "192.0.2.2", ANVIL_RATE_MAIL, T0 + 5, NULL);
    assert_int_equal(anvil_clients(a), 3);
    anvil_connect(a, "192.0.2.4", T0 + 6, NULL);
    assert_int_equal(anvil_clients(a), 3);
    assert_int_equal(anvil_rate_peek(a, "192.0.2.3", ANVIL_RATE_CONN, T0 + 7), 0);  /* evicted */
    assert_int_equal(anvil_rate_peek(a, "192.0.2.2", ANVIL_RATE_CONN, T0 + 7), 1);
    assert_int_equal(anvil_count_peek(a, "192.0.2.1"), 1);
    /* Now A and D connected, B idle: E evicts B. */
    anvil_connect(a, "192.0.2.5", T0 + 8, NULL);
    assert_int_equal(anvil_rate_peek(a, "192.0.2.2", ANVIL_RATE_CONN, T0 + 9), 0);
    /* All three connected: a fourth client is not counted, not refused. */
    assert_int_equal(anvil_connect(a, "192.0.2.6", T0 + 10, NULL), ANVIL_OK);
    assert_int_equal(anvil_connect(a, "192.0.2.6", T0 + 10, NULL), ANVIL_OK);
    assert_int_equal(anvil_count_peek(a, "192.0.2.6"), 0);
    assert_int_equal(anvil_clients(a), 3);
    anvil_destroy(&a);
}

static void test_idle_entries_expire_after_two_units_and_table_grows(void **state)
{
    (void)state;
    struct anvil_limits l = limits();
    l.max_clients = 100000;
    struct anvil *a = anvil_create(&l, "");
    char addr[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        anvil_connect(a, addr, T0, NULL);
        anvil_disconnect(a, addr, T0);
    }
    assert_int_equal(anvil_clients(a), 5000);
    for (int i = 0; i < 5000; i += 997) {
        snprintf(addr, sizeof(addr), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        assert_int_equal(anvil_rate_peek(a, addr, ANVIL_RATE_CONN, T0), 1);
    }
    /* One connected client is kept; the idle ones go once two units passed. */
    anvil_connect(a, "192.0.2.77", T0 + 1, NULL);
    anvil_connect(a, "192.0.2.78", T0 + 2 * UNIT, NULL);
    assert_int_equal(anvil_clients(a), 2);
    assert_int_equal(anvil_count_peek(a, "192.0.2.77"), 1);
    /* Addresses too long to be a client address are not counted. */
    char longaddr[200];
    memset(longaddr, '1', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = '\0';
    assert_int_equal(anvil_connect(a, longaddr, T0, NULL), ANVIL_OK);
    assert_int_equal(anvil_clients(a), 2);
    anvil_destroy(&a);
}

static void test_limits_from_configuration(void **state)
{
    (void)state;
    config_override("smtpd_client_connection_count_limit", "7");
    config_override("smtpd_client_connection_rate_limit", "30");
    config_override("smtpd_client_message_rate_limit", "40");
    config_override("smtpd_client_recipient_rate_limit", "50");
    config_override("smtpd_client_auth_rate_limit", "5");
    config_override("anvil_rate_time_unit", "2m");
    config_override("mynetworks", "192.0.2.0/24");
    struct anvil_limits l;
    anvil_limits_config(&l);
    assert_int_equal(l.connection_count, 7);
    assert_int_equal(l.rate[ANVIL_RATE_CONN], 30);
    assert_int_equal(l.rate[ANVIL_RATE_MAIL], 40);
    assert_int_equal(l.rate[ANVIL_RATE_RCPT], 50);
    assert_int_equal(l.rate[ANVIL_RATE_AUTH], 5);
    assert_int_equal(l.time_unit_ms, 120000);
    assert_int_equal(l.max_clients, ANVIL_MAX_CLIENTS_DEFAULT);
    struct anvil *a = anvil_create_config();
    /* smtpd_client_event_limit_exceptions defaults to $mynetworks. */
    assert_true(anvil_exempt(a, "192.0.2.200"));
    assert_false(anvil_exempt(a, "198.51.100.1"));
    anvil_destroy(&a);
}

int main(void)
{
    log_init("test-anvil");
    log_set_file("/dev/null");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection_count_goes_up_and_down),
        cmocka_unit_test(test_connection_rate_limit_counts_refused_attempts),
        cmocka_unit_test(test_rate_window_slides_with_the_clock),
        cmocka_unit_test(test_each_rate_limit_and_its_reply),
        cmocka_unit_test(test_zero_means_no_limit),
        cmocka_unit_test(test_exceptions_ipv4_ipv6_cidr_are_not_counted),
        cmocka_unit_test(test_table_evicts_least_recently_used_idle_client),
        cmocka_unit_test(test_idle_entries_expire_after_two_units_and_table_grows),
        cmocka_unit_test(test_limits_from_configuration),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    config_free_all();
    return rc;
}
