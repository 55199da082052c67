/* Unit tests for lib/addr.c: RFC 5321 paths, splitting, normalizing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "addr.h"

struct path_case {
    const char *input;
    int allow_null;
    int smtputf8;
    const char *address;   /* NULL: must fail */
    size_t consumed;       /* 0: strlen(input) */
};

static const struct path_case path_cases[] = {
    {"<user@example.com>", 0, 0, "user@example.com", 0},
    {"<User.Name+tag@Example.COM>", 0, 0, "User.Name+tag@Example.COM", 0},
    {"<>", 1, 0, "", 0},
    {"<> SIZE=100", 1, 0, "", 2},
    {"<a@b.c> SIZE=100", 0, 0, "a@b.c", 7},
    {"<postmaster>", 0, 0, "postmaster", 0},
    {"<\"john doe\"@example.com>", 0, 0, "\"john doe\"@example.com", 0},
    {"<\"a>b\"@example.com>", 0, 0, "\"a>b\"@example.com", 0},
    {"<\"q\\\"x\"@example.com>", 0, 0, "\"q\\\"x\"@example.com", 0},
    {"<@relay1.example,@relay2.example:user@example.com>", 0, 0, "user@example.com", 0},
    {"<user@[192.0.2.1]>", 0, 0, "user@[192.0.2.1]", 0},
    {"<user@[IPv6:2001:db8::1]>", 0, 0, "user@[IPv6:2001:db8::1]", 0},
    {"<user@[x-tag:stuff]>", 0, 0, "user@[x-tag:stuff]", 0},
    {"<!#$%&'*+-/=?^_`{|}~@example.com>", 0, 0, "!#$%&'*+-/=?^_`{|}~@example.com", 0},
    {"<j\xc3\xb6rg@b\xc3\xbc" "cher.example>", 0, 1, "j\xc3\xb6rg@b\xc3\xbc" "cher.example", 0},
    {"<a@x-y.example>", 0, 0, "a@x-y.example", 0},
    {"<a@123.example>", 0, 0, "a@123.example", 0},
    /* invalid */
    {"<>", 0, 0, NULL, 0},
    {"", 1, 0, NULL, 0},
    {"user@example.com", 0, 0, NULL, 0},
    {"<user@example.com", 0, 0, NULL, 0},
    {"<user@@example.com>", 0, 0, NULL, 0},
    {"<user@>", 0, 0, NULL, 0},
    {"<@example.com>", 0, 0, NULL, 0},
    {"<.user@example.com>", 0, 0, NULL, 0},
    {"<user.@example.com>", 0, 0, NULL, 0},
    {"<us..er@example.com>", 0, 0, NULL, 0},
    {"<user@example..com>", 0, 0, NULL, 0},
    {"<user@example.com.>", 0, 0, NULL, 0},
    {"<user@-example.com>", 0, 0, NULL, 0},
    {"<user@example-.com>", 0, 0, NULL, 0},
    {"<user@exa_mple.com>", 0, 0, NULL, 0},
    {"<us er@example.com>", 0, 0, NULL, 0},
    {"<user@[300.1.1.1]>", 0, 0, NULL, 0},
    {"<user@[1.2.3]>", 0, 0, NULL, 0},
    {"<user@[IPv6:zz::1]>", 0, 0, NULL, 0},
    {"<user@[]>", 0, 0, NULL, 0},
    {"<\"unterminated@example.com>", 0, 0, NULL, 0},
    {"<\"ctl\x01\"@example.com>", 0, 0, NULL, 0},
    {"<j\xc3\xb6rg@example.com>", 0, 0, NULL, 0},
    {"<j\xc3rg@example.com>", 0, 1, NULL, 0},
    {"<\xc0\xafx@example.com>", 0, 1, NULL, 0},
    {"<\xed\xa0\x80x@example.com>", 0, 1, NULL, 0},
    {"<\xf4\x90\x80\x80x@example.com>", 0, 1, NULL, 0},
    {"<@relay1.example user@example.com>", 0, 0, NULL, 0},
    {"<@relay1.example,user@example.com>", 0, 0, NULL, 0},
    {"<a@b.c\x00>", 0, 0, NULL, 0},
};

static void test_parse_path_valid_and_invalid_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
        const struct path_case *c = &path_cases[i];
        char *address = NULL;
        size_t consumed = 0;
        const char *error = NULL;
        size_t len = strlen(c->input);
        if (i == sizeof(path_cases) / sizeof(path_cases[0]) - 1)
            len = 8;   /* the embedded NUL case */
        int r = addr_parse_path(c->input, len, c->allow_null, c->smtputf8, &address, &consumed,
                                &error);
        if (c->address == NULL) {
            if (r != -1)
                fail_msg("case %zu '%s' should fail, got '%s'", i, c->input, address);
            assert_non_null(error);
        } else {
            if (r != 0)
                fail_msg("case %zu '%s' should pass: %s", i, c->input, error);
            assert_string_equal(address, c->address);
            assert_int_equal(consumed, c->consumed ? c->consumed : len);
            free(address);
        }
    }
}

static void test_parse_path_needs_no_nul_terminator(void **state)
{
    (void)state;
    const char text[] = "<a@b.example>XXXX";
    char *address;
    size_t consumed;
    const char *error;
    assert_int_equal(addr_parse_path(text, 13, 0, 0, &address, &consumed, &error), 0);
    assert_string_equal(address, "a@b.example");
    free(address);
    /* truncated input must not be read past len */
    assert_int_equal(addr_parse_path(text, 12, 0, 0, &address, &consumed, &error), -1);
}

static void test_parse_path_enforces_length_limits(void **state)
{
    (void)state;
    char text[600];
    char *address;
    size_t consumed;
    const char *error;
    /* local part: 64 ok, 65 rejected */
    for (size_t n = 64; n <= 65; n++) {
        size_t p = 0;
        text[p++] = '<';
        memset(text + p, 'a', n);
        p += n;
        memcpy(text + p, "@example.com>", 13);
        p += 13;
        int r = addr_parse_path(text, p, 0, 0, &address, &consumed, &error);
        assert_int_equal(r, n == 64 ? 0 : -1);
        if (r == 0)
            free(address);
    }
    /* label of 64 octets rejected */
    size_t p = 0;
    memcpy(text, "<a@", 3);
    p = 3;
    memset(text + p, 'b', 64);
    p += 64;
    text[p++] = '>';
    assert_int_equal(addr_parse_path(text, p, 0, 0, &address, &consumed, &error), -1);
    /* path longer than 256 rejected even with valid labels */
    p = 0;
    memcpy(text, "<a@", 3);
    p = 3;
    for (int i = 0; i < 5; i++) {
        memset(text + p, 'c', 60);
        p += 60;
        text[p++] = '.';
    }
    memcpy(text + p, "com>", 4);
    p += 4;
    assert_int_equal(addr_parse_path(text, p, 0, 0, &address, &consumed, &error), -1);
}

static void test_split_at_last_at_and_lowercase_domain(void **state)
{
    (void)state;
    char *local, *domain;
    assert_int_equal(addr_split("User@Example.COM", &local, &domain), 0);
    assert_string_equal(local, "User");
    assert_string_equal(domain, "example.com");
    free(local);
    free(domain);
    assert_int_equal(addr_split("\"a@b\"@Ex.org", &local, &domain), 0);
    assert_string_equal(local, "\"a@b\"");
    assert_string_equal(domain, "ex.org");
    free(local);
    free(domain);
    assert_int_equal(addr_split("postmaster", &local, &domain), 0);
    assert_string_equal(local, "postmaster");
    assert_null(domain);
    free(local);
    assert_int_equal(addr_split("@example.com", &local, &domain), -1);
    assert_int_equal(addr_split("", &local, &domain), -1);
}

static void test_normalize_lowercases_only_domain(void **state)
{
    (void)state;
    char *n = addr_normalize("John.Doe@EXAMPLE.Org");
    assert_string_equal(n, "John.Doe@example.org");
    free(n);
    n = addr_normalize("NoDomain");
    assert_string_equal(n, "NoDomain");
    free(n);
    n = addr_normalize("");
    assert_string_equal(n, "");
    free(n);
}

static void test_has_8bit(void **state)
{
    (void)state;
    assert_int_equal(addr_has_8bit("plain@example.com"), 0);
    assert_int_equal(addr_has_8bit("j\xc3\xb6rg@example.com"), 1);
    assert_int_equal(addr_has_8bit(""), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_path_valid_and_invalid_table),
        cmocka_unit_test(test_parse_path_needs_no_nul_terminator),
        cmocka_unit_test(test_parse_path_enforces_length_limits),
        cmocka_unit_test(test_split_at_last_at_and_lowercase_domain),
        cmocka_unit_test(test_normalize_lowercases_only_domain),
        cmocka_unit_test(test_has_8bit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
