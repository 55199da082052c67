/* Unit tests for lib/auth.c: password checks over a passwd file,
   throttling per client address (and its bounded table), SASL PLAIN
   decoding, base64, the plaintext policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"
#include "config.h"
#include "event.h"
#include "resolve.h"
#include "users.h"

static char dir[64];
static char passwd[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test-auth-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(passwd, sizeof(passwd), "%s/passwd", dir);
    const char *error;
    if (users_add(passwd, "alice@example.test", "right-pw", &error) < 0)
        return -1;
    config_override("passwd_file", passwd);
    config_override("auth_failure_limit", "3");
    config_override("auth_failure_window", "60s");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(passwd);
    char lock[160];
    snprintf(lock, sizeof(lock), "%s.lock", passwd);
    unlink(lock);
    rmdir(dir);
    config_free_all();
    resolve_reset();
    return 0;
}

static void test_right_password_gives_canonical_address(void **state)
{
    (void)state;
    char *canon = NULL;
    assert_int_equal(auth_check("Alice@EXAMPLE.test", "right-pw", "192.0.2.1", &canon), AUTH_OK);
    assert_string_equal(canon, "alice@example.test");
    free(canon);
}

static void test_wrong_password_and_unknown_user_fail(void **state)
{
    (void)state;
    char *canon = (char *)"x";
    assert_int_equal(auth_check("alice@example.test", "wrong", "192.0.2.2", &canon), AUTH_FAILED);
    assert_null(canon);
    assert_int_equal(auth_check("nobody@example.test", "right-pw", "192.0.2.2", &canon),
                     AUTH_FAILED);
    assert_int_equal(auth_check("alice", "right-pw", "192.0.2.2", &canon), AUTH_FAILED);
    assert_int_equal(auth_check("", "", "192.0.2.3", &canon), AUTH_FAILED);
}

static void test_address_is_throttled_after_limit_even_with_right_password(void **state)
{
    (void)state;
    char *canon = NULL;
    for (int i = 0; i < 3; i++)
        assert_int_equal(auth_check("alice@example.test", "bad", "198.51.100.7", &canon),
                         AUTH_FAILED);
    assert_int_equal(auth_check("alice@example.test", "right-pw", "198.51.100.7", &canon),
                     AUTH_THROTTLED);
    assert_null(canon);
    /* Other addresses are not affected. */
    assert_int_equal(auth_check("alice@example.test", "right-pw", "198.51.100.8", &canon),
                     AUTH_OK);
    free(canon);
}

static void test_success_clears_the_failure_count(void **state)
{
    (void)state;
    char *canon = NULL;
    for (int i = 0; i < 2; i++)
        assert_int_equal(auth_check("", "", "203.0.113.9", &canon), AUTH_FAILED);
    assert_int_equal(auth_check("alice@example.test", "right-pw", "203.0.113.9", &canon),
                     AUTH_OK);
    free(canon);
    for (int i = 0; i < 2; i++)
        assert_int_equal(auth_check("", "", "203.0.113.9", &canon), AUTH_FAILED);
    assert_int_equal(auth_check("alice@example.test", "right-pw", "203.0.113.9", &canon),
                     AUTH_OK);
    free(canon);
}

static void test_limit_zero_disables_throttling(void **state)
{
    (void)state;
    config_override("auth_failure_limit", "0");
    char *canon = NULL;
    for (int i = 0; i < 6; i++)
        assert_int_equal(auth_check("", "", "203.0.113.50", &canon), AUTH_FAILED);
    assert_int_equal(auth_check("alice@example.test", "right-pw", "203.0.113.50", &canon),
                     AUTH_OK);
    free(canon);
    config_override("auth_failure_limit", "3");
}

static void test_failure_table_is_bounded_and_forgets_oldest(void **state)
{
    (void)state;
    char *canon = NULL;
    for (int i = 0; i < 3; i++)
        assert_int_equal(auth_check("", "", "10.99.0.1", &canon), AUTH_FAILED);
    assert_int_equal(auth_check("", "", "10.99.0.1", &canon), AUTH_THROTTLED);
    /* A flood of other addresses pushes the oldest entry out. */
    char addr[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.%d", 100 + i / 65536, (i / 256) % 256, i % 256);
        assert_int_equal(auth_check("", "", addr, &canon), AUTH_FAILED);
    }
    assert_int_equal(auth_check("", "", "10.99.0.1", &canon), AUTH_FAILED);
}

static void test_delay_comes_from_auth_failure_delay(void **state)
{
    (void)state;
    assert_int_equal(auth_failure_delay_ms(), 2000);
    config_override("auth_failure_delay", "0s");
    assert_int_equal(auth_failure_delay_ms(), 0);
    config_override("auth_failure_delay", "2s");
}

static void test_sasl_plain_decodes_valid_and_rejects_invalid(void **state)
{
    (void)state;
    char *user, *pw;
    /* "\0alice@example.test\0right-pw" */
    char *b64 = auth_base64_encode("\0alice@example.test\0right-pw", 28);
    assert_int_equal(auth_sasl_plain_decode(b64, strlen(b64), &user, &pw), 0);
    assert_string_equal(user, "alice@example.test");
    assert_string_equal(pw, "right-pw");
    free(user);
    free(pw);
    free(b64);

    b64 = auth_base64_encode("alice@example.test\0alice@example.test\0pw", 40);
    assert_int_equal(auth_sasl_plain_decode(b64, strlen(b64), &user, &pw), 0);
    assert_string_equal(pw, "pw");
    free(user);
    free(pw);
    free(b64);

    static const struct {
        const char *raw;
        size_t len;
    } bad[] = {
        {"bob@x\0alice@x\0pw", 16},    /* authzid differs */
        {"\0alice@x", 8},              /* one NUL */
        {"\0\0pw", 4},                 /* empty authcid */
        {"\0a@x\0p\0w", 8},            /* NUL in password */
        {"", 0},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        b64 = auth_base64_encode(bad[i].raw, bad[i].len);
        user = pw = (char *)"x";
        assert_int_equal(auth_sasl_plain_decode(b64, strlen(b64), &user, &pw), -1);
        assert_null(user);
        assert_null(pw);
        free(b64);
    }
    assert_int_equal(auth_sasl_plain_decode("!!!!", 4, &user, &pw), -1);
}

static void test_base64_round_trip_and_invalid_text(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                        "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *e = auth_base64_encode(plain[i], strlen(plain[i]));
        assert_string_equal(e, coded[i]);
        size_t n;
        char *d = auth_base64_decode(e, strlen(e), &n);
        assert_non_null(d);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(d, plain[i], n);
        free(d);
        free(e);
    }
    size_t n;
    char *d = auth_base64_decode("Zm9vYg", 6, &n);   /* unpadded is accepted */
    assert_non_null(d);
    assert_string_equal(d, "foob");
    free(d);
    static const char *const invalid[] = {"Z", "Zm9v!", "Zm=v", "Zg=", "Z===", "Zm9 v", "Zg==="};
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        assert_null(auth_base64_decode(invalid[i], strlen(invalid[i]), &n));
}

static void test_plaintext_allowed_by_tls_or_mynetworks(void **state)
{
    (void)state;
    assert_int_equal(auth_plaintext_allowed("192.0.2.1", 1), 1);
    assert_int_equal(auth_plaintext_allowed("127.0.0.1", 0), 1);
    assert_int_equal(auth_plaintext_allowed("192.0.2.1", 0), 0);
    config_override("mynetworks", "192.0.2.0/24");
    resolve_reset();
    assert_int_equal(auth_plaintext_allowed("192.0.2.1", 0), 1);
    assert_int_equal(auth_plaintext_allowed("127.0.0.1", 0), 0);
    config_override("disable_plaintext_auth", "no");
    assert_int_equal(auth_plaintext_allowed("127.0.0.1", 0), 1);
    config_override("disable_plaintext_auth", "yes");
    config_override("mynetworks", "127.0.0.0/8 [::1]/128");
    resolve_reset();
}

/* ---- auth_check_start: the hash on a worker thread ---- */

struct async_result {
    int calls;
    enum auth_result result;
    char *canonical;
    pthread_t thread;
    struct event_loop *loop;
    int *pending;
};

static void async_done(enum auth_result result, char *canonical, void *ctx)
{
    struct async_result *r = ctx;
    r->calls++;
    r->result = result;
    r->canonical = canonical;
    r->thread = pthread_self();
    if (--*r->pending == 0)
        event_loop_stop(r->loop);
}

static void guard_expired(struct event_loop *loop, void *ctx)
{
    (void)ctx;
    event_loop_stop(loop);
}

static void test_async_checks_answer_from_the_loop_thread(void **state)
{
    (void)state;
    struct event_loop *loop = event_loop_create();
    int pending = 4;
    struct async_result r[5];
    memset(r, 0, sizeof(r));
    const char *users[5] = { "Alice@example.test", "alice@example.test", "nobody@example.test",
                             "alice@example.test", "alice@example.test" };
    const char *passwords[5] = { "right-pw", "wrong", "right-pw", "right-pw", "right-pw" };
    struct auth_request *req[5];
    for (int i = 0; i < 5; i++) {
        r[i].loop = loop;
        r[i].pending = &pending;
        req[i] = auth_check_start(loop, users[i], passwords[i], "192.0.2.77", async_done, &r[i]);
        assert_non_null(req[i]);
        /* Never answered from inside the call. */
        assert_int_equal(r[i].calls, 0);
    }
    /* The session of the last one went away: its callback never runs. */
    auth_check_cancel(&req[4]);
    assert_null(req[4]);
    struct event_timer *guard = event_timer_add(loop, 10000, guard_expired, NULL);
    event_loop_run(loop);
    event_timer_cancel(loop, &guard);
    assert_int_equal(pending, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_true(pthread_equal(r[i].thread, pthread_self()));
    }
    assert_int_equal(r[0].result, AUTH_OK);
    assert_string_equal(r[0].canonical, "alice@example.test");
    assert_int_equal(r[1].result, AUTH_FAILED);
    assert_null(r[1].canonical);
    assert_int_equal(r[2].result, AUTH_FAILED);
    assert_int_equal(r[3].result, AUTH_OK);
    free(r[0].canonical);
    free(r[3].canonical);
    /* Let the cancelled one finish before the loop goes away. */
    guard = event_timer_add(loop, 300, guard_expired, NULL);
    event_loop_run(loop);
    assert_int_equal(r[4].calls, 0);
    event_loop_destroy(&loop);
}

static void test_async_check_of_a_throttled_address_answers_without_hashing(void **state)
{
    (void)state;
    char *canon = NULL;
    for (int i = 0; i < 3; i++)
        assert_int_equal(auth_check("alice@example.test", "bad", "198.51.100.99", &canon),
                         AUTH_FAILED);
    struct event_loop *loop = event_loop_create();
    int pending = 1;
    struct async_result r;
    memset(&r, 0, sizeof(r));
    r.loop = loop;
    r.pending = &pending;
    struct auth_request *req =
        auth_check_start(loop, "alice@example.test", "right-pw", "198.51.100.99", async_done, &r);
    assert_non_null(req);
    assert_int_equal(r.calls, 0);
    struct event_timer *guard = event_timer_add(loop, 10000, guard_expired, NULL);
    event_loop_run(loop);
    event_timer_cancel(loop, &guard);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.result, AUTH_THROTTLED);
    assert_null(r.canonical);
    event_loop_destroy(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_right_password_gives_canonical_address),
        cmocka_unit_test(test_wrong_password_and_unknown_user_fail),
        cmocka_unit_test(test_address_is_throttled_after_limit_even_with_right_password),
        cmocka_unit_test(test_success_clears_the_failure_count),
        cmocka_unit_test(test_limit_zero_disables_throttling),
        cmocka_unit_test(test_failure_table_is_bounded_and_forgets_oldest),
        cmocka_unit_test(test_delay_comes_from_auth_failure_delay),
        cmocka_unit_test(test_sasl_plain_decodes_valid_and_rejects_invalid),
        cmocka_unit_test(test_base64_round_trip_and_invalid_text),
        cmocka_unit_test(test_plaintext_allowed_by_tls_or_mynetworks),
        cmocka_unit_test(test_async_checks_answer_from_the_loop_thread),
        cmocka_unit_test(test_async_check_of_a_throttled_address_answers_without_hashing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
