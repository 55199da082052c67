/*
 * NAME
 *	test-users - unit tests for lib/users.c (the passwd_file database)
 * DESCRIPTION
 *	Each test works on a fresh file in its own temporary directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "users.h"
#include "xalloc.h"

struct fixture {
    char dir[64];
    char *path;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test-users.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->path = xasprintf("%s/passwd", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char *cmd = xasprintf("rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", f->dir);
    xfree(&cmd);
    xfree(&f->path);
    free(f);
    return 0;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    struct buf b;
    buf_init(&b, 0);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        buf_append(&b, chunk, n);
    fclose(fp);
    buf_reserve(&b, 0);
    return buf_steal(&b);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_add_then_verify_accepts_right_password_only(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    assert_int_equal(users_add(f->path, "alice@example.test", "s3cret-Pass", &error), 0);
    assert_int_equal(users_verify(f->path, "alice@example.test", "s3cret-Pass"), 1);
    assert_int_equal(users_verify(f->path, "alice@example.test", "s3cret-pass"), 0);
    assert_int_equal(users_verify(f->path, "alice@example.test", ""), 0);
    assert_int_equal(users_verify(f->path, "bob@example.test", "s3cret-Pass"), 0);
}

static void test_file_has_crypt_scheme_and_never_plaintext(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    assert_int_equal(users_add(f->path, "alice@example.test", "PlainTextMarker99", &error), 0);
    char *text = slurp(f->path);
    assert_non_null(strstr(text, "alice@example.test:{CRYPT}$"));
    assert_null(strstr(text, "PlainTextMarker99"));
    assert_int_equal(text[strlen(text) - 1], '\n');
    /* Exactly one line. */
    assert_ptr_equal(strchr(text, '\n'), text + strlen(text) - 1);
    xfree(&text);

    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
}

static void test_hash_uses_fresh_salt_each_time(void **state)
{
    (void)state;
    const char *error = NULL;
    char *a = users_hash_password("same", &error);
    char *b = users_hash_password("same", &error);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_not_equal(a, b);
    xfree(&a);
    xfree(&b);
}

static void test_add_twice_is_refused(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    assert_int_equal(users_add(f->path, "alice@example.test", "one", &error), 0);
    assert_int_equal(users_add(f->path, "ALICE@Example.Test", "two", &error), -1);
    assert_non_null(strstr(error, "already exists"));
    assert_int_equal(users_verify(f->path, "alice@example.test", "one"), 1);
}

static void test_addresses_match_case_insensitively(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    assert_int_equal(users_add(f->path, "Carol@Example.TEST", "pw", &error), 0);
    assert_int_equal(users_exists(f->path, "carol@example.test", &error), 1);
    assert_int_equal(users_verify(f->path, "CAROL@example.test", "pw"), 1);
    char *text = slurp(f->path);
    assert_non_null(strstr(text, "carol@example.test:"));
    xfree(&text);
}

static void test_set_password_replaces_old_one(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    assert_int_equal(users_add(f->path, "alice@example.test", "old-pw", &error), 0);
    assert_int_equal(users_add(f->path, "bob@example.test", "bob-pw", &error), 0);
    assert_int_equal(users_set_password(f->path, "alice@example.test", "new-pw", &error), 0);
    assert_int_equal(users_verify(f->path, "alice@example.test", "old-pw"), 0);
    assert_int_equal(users_verify(f->path, "alice@example.test", "new-pw"), 1);
    assert_int_equal(users_verify(f->path, "bob@example.test", "bob-pw"), 1);
    assert_int_equal(users_set_password(f->path, "nobody@example.test", "x", &error), -1);
    assert_non_null(strstr(error, "no such user"));
}

static void test_delete_removes_only_that_user(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    assert_int_equal(users_add(f->path, "alice@example.test", "a", &error), 0);
    assert_int_equal(users_add(f->path, "bob@example.test", "b", &error), 0);
    assert_int_equal(users_delete(f->path, "alice@example.test", &error), 0);
    assert_int_equal(users_exists(f->path, "alice@example.test", &error), 0);
    assert_int_equal(users_verify(f->path, "alice@example.test", "a"), 0);
    assert_int_equal(users_verify(f->path, "bob@example.test", "b"), 1);
    assert_int_equal(users_delete(f->path, "alice@example.test", &error), -1);
}

struct collected {
    char names[8][64];
    int count;
};

static void collect(const char *address, void *ctx)
{
    struct collected *c = ctx;
    if (c->count < 8)
        snprintf(c->names[c->count++], 64, "%s", address);
}

static void test_list_keeps_file_order_and_skips_comments(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    write_file(f->path, "# users\n\nzed@example.test:{CRYPT}$y$x\n");
    assert_int_equal(users_add(f->path, "amy@example.test", "pw", &error), 0);
    struct collected c = {0};
    assert_int_equal(users_list(f->path, collect, &c, &error), 2);
    assert_int_equal(c.count, 2);
    assert_string_equal(c.names[0], "zed@example.test");
    assert_string_equal(c.names[1], "amy@example.test");
    assert_int_equal(users_delete(f->path, "zed@example.test", &error), 0);
    char *text = slurp(f->path);
    assert_true(strncmp(text, "# users\n\namy@example.test:{CRYPT}", 33) == 0);
    xfree(&text);
}

static void test_missing_file_holds_nobody(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    struct collected c = {0};
    assert_int_equal(users_list(f->path, collect, &c, &error), 0);
    assert_int_equal(users_exists(f->path, "a@b", &error), 0);
    assert_int_equal(users_verify(f->path, "a@b", "pw"), 0);
}

static void test_entry_without_crypt_scheme_is_an_error(void **state)
{
    struct fixture *f = *state;
    write_file(f->path, "plain@example.test:secret\n");
    assert_int_equal(users_verify(f->path, "plain@example.test", "secret"), -1);
}

static void test_invalid_addresses_and_passwords_are_refused(void **state)
{
    struct fixture *f = *state;
    static const char *const bad_addresses[] = {
        "", "noat", "@example.test", "user@", "a b@example.test", "a:b@example.test",
        "tab\t@example.test", "#x@example.test",
    };
    static const char *const good_addresses[] = {
        "a@b", "first.last+tag@example.test", "x@[127.0.0.1]",
    };
    const char *error = NULL;
    for (size_t i = 0; i < sizeof(bad_addresses) / sizeof(bad_addresses[0]); i++) {
        assert_int_equal(users_valid_address(bad_addresses[i], &error), 0);
        assert_int_equal(users_add(f->path, bad_addresses[i], "pw", &error), -1);
    }
    for (size_t i = 0; i < sizeof(good_addresses) / sizeof(good_addresses[0]); i++)
        assert_int_equal(users_valid_address(good_addresses[i], &error), 1);

    char longaddr[USERS_MAX_ADDRESS + 8];
    memset(longaddr, 'a', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = '\0';
    longaddr[10] = '@';
    assert_int_equal(users_valid_address(longaddr, &error), 0);

    assert_int_equal(users_add(f->path, "a@b", "", &error), -1);
    assert_int_equal(users_add(f->path, "a@b", "two\nlines", &error), -1);
    assert_int_equal(users_exists(f->path, "a@b", &error), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_then_verify_accepts_right_password_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_has_crypt_scheme_and_never_plaintext, setup,
                                        teardown),
        cmocka_unit_test(test_hash_uses_fresh_salt_each_time),
        cmocka_unit_test_setup_teardown(test_add_twice_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_addresses_match_case_insensitively, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_password_replaces_old_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_removes_only_that_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_keeps_file_order_and_skips_comments, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_file_holds_nobody, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_without_crypt_scheme_is_an_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_invalid_addresses_and_passwords_are_refused, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
