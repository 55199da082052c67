/* Unit tests for lib/resolve.c: destination classes, recipient existence,
   virtual aliases and mynetworks CIDR matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "resolve.h"

static int setup(void **state)
{
    (void)state;
    config_override("myhostname", "mail.example.test");
    config_override("mydomain", "example.test");
    config_override("mydestination", "$myhostname, localhost, Example.TEST, inline:{ tabled.test=1 }");
    config_override("virtual_mailbox_domains", "virt.test, other-virt.test");
    config_override("virtual_mailbox_maps",
                    "inline:{ bob@virt.test=virt.test/bob/, @other-virt.test=catchall/ }");
    config_override("virtual_alias_maps",
                    "inline:{ { sales@virt.test = bob@virt.test, carol@example.net } }");
    config_override("local_recipient_maps", "inline:{ root=x, alice=x }");
    config_override("recipient_delimiter", "+");
    config_override("mynetworks", "127.0.0.0/8 [::1]/128, 192.168.10.7 10.1.0.0/16 [2001:db8::]/32");
    resolve_reset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    resolve_reset();
    config_free_all();
    return 0;
}

struct class_case {
    const char *address;
    enum resolve_class cls;
};

static void test_class_of_domains_in_lists(void **state)
{
    (void)state;
    static const struct class_case cases[] = {
        {"a@mail.example.test", RESOLVE_LOCAL},
        {"a@MAIL.Example.Test", RESOLVE_LOCAL},
        {"a@localhost", RESOLVE_LOCAL},
        {"a@example.test", RESOLVE_LOCAL},
        {"a@tabled.test", RESOLVE_LOCAL},
        {"a@TABLED.test", RESOLVE_LOCAL},
        {"postmaster", RESOLVE_LOCAL},
        {"bob@virt.test", RESOLVE_VIRTUAL},
        {"x@Other-Virt.TEST", RESOLVE_VIRTUAL},
        {"a@example.net", RESOLVE_RELAY},
        {"a@sub.example.test", RESOLVE_RELAY},
        {"a@virt.test.evil", RESOLVE_RELAY},
        {"a\"@\"x@virt.test", RESOLVE_VIRTUAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(resolve_class(cases[i].address), cases[i].cls);
}

struct known_case {
    const char *address;
    enum resolve_known known;
};

static void test_recipient_known_local_virtual_relay(void **state)
{
    (void)state;
    static const struct known_case cases[] = {
        {"root@mail.example.test", RESOLVE_KNOWN},
        {"ALICE@example.test", RESOLVE_KNOWN},
        {"alice+news@localhost", RESOLVE_KNOWN},
        {"postmaster@localhost", RESOLVE_KNOWN},
        {"Mailer-Daemon@localhost", RESOLVE_KNOWN},
        {"nobody@localhost", RESOLVE_UNKNOWN},
        {"alice-news@localhost", RESOLVE_UNKNOWN},
        {"bob@virt.test", RESOLVE_KNOWN},
        {"bob+ext@virt.test", RESOLVE_KNOWN},
        {"sales@virt.test", RESOLVE_KNOWN},
        {"carol@virt.test", RESOLVE_UNKNOWN},
        {"anyone@other-virt.test", RESOLVE_KNOWN},
        {"someone@example.net", RESOLVE_KNOWN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(resolve_recipient_known(cases[i].address), cases[i].known);
}

static void test_empty_local_recipient_maps_accepts_all(void **state)
{
    (void)state;
    config_override("local_recipient_maps", "");
    assert_int_equal(resolve_recipient_known("whoever@localhost"), RESOLVE_KNOWN);
    config_override("local_recipient_maps", "inline:{ root=x, alice=x }");
    assert_int_equal(resolve_recipient_known("whoever@localhost"), RESOLVE_UNKNOWN);
}

static void test_broken_table_is_tempfail(void **state)
{
    (void)state;
    config_override("local_recipient_maps", "nosuchtype:/x");
    assert_int_equal(resolve_recipient_known("whoever@localhost"), RESOLVE_TEMPFAIL);
    config_override("local_recipient_maps", "inline:{ root=x, alice=x }");
    assert_int_equal(resolve_recipient_known("alice@localhost"), RESOLVE_KNOWN);
    /* A domain table that cannot be read: the class is unknown, not
       "relay" (local mail must not be sent out for it). */
    config_override("virtual_mailbox_domains", "lmdb:/nonexistent/virtual-domains");
    assert_int_equal(resolve_class("a@elsewhere.test"), RESOLVE_ERROR);
    assert_int_equal(resolve_recipient_known("a@elsewhere.test"), RESOLVE_TEMPFAIL);
    /* Domains the readable table (mydestination) has are still local. */
    assert_int_equal(resolve_class("alice@localhost"), RESOLVE_LOCAL);
}

static void test_virtual_alias_value(void **state)
{
    (void)state;
    char *value = NULL;
    assert_int_equal(resolve_virtual_alias("sales@virt.test", &value), 1);
    assert_non_null(value);
    assert_non_null(strstr(value, "bob@virt.test"));
    assert_non_null(strstr(value, "carol@example.net"));
    free(value);
    value = NULL;
    assert_int_equal(resolve_virtual_alias("sales+x@virt.test", &value), 1);
    free(value);
    value = NULL;
    assert_int_equal(resolve_virtual_alias("bob@virt.test", &value), 0);
    assert_null(value);
    assert_int_equal(resolve_virtual_alias("nodomain", &value), 0);
    assert_null(value);
}

struct net_case {
    const char *addr;
    int in;
};

static void test_mynetworks_cidr_ipv4_ipv6(void **state)
{
    (void)state;
    static const struct net_case cases[] = {
        {"127.0.0.1", 1},       {"127.255.255.254", 1}, {"128.0.0.1", 0},
        {"::1", 1},             {"[::1]", 1},           {"::2", 0},
        {"192.168.10.7", 1},    {"192.168.10.8", 0},    {"10.1.200.3", 1},
        {"10.2.0.1", 0},        {"2001:db8:ffff::1", 1}, {"2001:db9::1", 0},
        {"::ffff:127.0.0.1", 1}, {"::ffff:8.8.8.8", 0}, {"not-an-ip", 0},
        {"", 0},                {"1.2.3.4.5", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(resolve_in_mynetworks(cases[i].addr), cases[i].in);
}

static void test_mynetworks_prefix_boundaries(void **state)
{
    (void)state;
    config_override("mynetworks", "192.0.2.128/25, 0.0.0.0/0x, 198.51.100.0/33, [fe80::]/10");
    assert_int_equal(resolve_in_mynetworks("192.0.2.128"), 1);
    assert_int_equal(resolve_in_mynetworks("192.0.2.255"), 1);
    assert_int_equal(resolve_in_mynetworks("192.0.2.127"), 0);
    assert_int_equal(resolve_in_mynetworks("198.51.100.1"), 0);   /* invalid /33 ignored */
    assert_int_equal(resolve_in_mynetworks("febf::1"), 1);
    assert_int_equal(resolve_in_mynetworks("fec0::1"), 0);
    config_override("mynetworks", "0.0.0.0/0");
    assert_int_equal(resolve_in_mynetworks("203.0.113.9"), 1);
    assert_int_equal(resolve_in_mynetworks("2001:db8::1"), 0);
    config_override("mynetworks", "");
    assert_int_equal(resolve_in_mynetworks("127.0.0.1"), 0);
}

static void test_changed_parameter_reopens_tables(void **state)
{
    (void)state;
    assert_int_equal(resolve_class("a@new.test"), RESOLVE_RELAY);
    config_override("virtual_mailbox_domains", "inline:{ new.test=1 }");
    assert_int_equal(resolve_class("a@new.test"), RESOLVE_VIRTUAL);
    config_override("virtual_mailbox_domains", "virt.test, other-virt.test");
    assert_int_equal(resolve_class("a@new.test"), RESOLVE_RELAY);
}

static void test_cidr_list_compiled_once_matches_ipv4_ipv6_and_skips_bad_entries(void **state)
{
    (void)state;
    struct resolve_cidr_list *list = resolve_cidr_list_create(
        "192.0.2.0/24, [2001:db8:1::]/48 198.51.100.7, ::1, bogus, 10.0.0.0/33, "
        "10.0.0.0/, lmdb:/x", "test_list");
    assert_int_equal(resolve_cidr_list_count(list), 4);
    assert_int_equal(resolve_cidr_list_match(list, "192.0.2.200"), 1);
    assert_int_equal(resolve_cidr_list_match(list, "192.0.3.1"), 0);
    assert_int_equal(resolve_cidr_list_match(list, "::ffff:192.0.2.9"), 1);
    assert_int_equal(resolve_cidr_list_match(list, "198.51.100.7"), 1);
    assert_int_equal(resolve_cidr_list_match(list, "198.51.100.8"), 0);
    assert_int_equal(resolve_cidr_list_match(list, "2001:db8:1:ffff::1"), 1);
    assert_int_equal(resolve_cidr_list_match(list, "2001:db8:2::1"), 0);
    assert_int_equal(resolve_cidr_list_match(list, "[::1]"), 1);
    assert_int_equal(resolve_cidr_list_match(list, "::2"), 0);
    assert_int_equal(resolve_cidr_list_match(list, "not-an-address"), 0);
    assert_int_equal(resolve_cidr_list_match(list, ""), 0);
    resolve_cidr_list_free(&list);
    assert_null(list);

    list = resolve_cidr_list_create("", "empty");
    assert_int_equal(resolve_cidr_list_match(list, "127.0.0.1"), 0);
    resolve_cidr_list_free(&list);
    list = resolve_cidr_list_create("0.0.0.0/0 [::]/0", "all");
    assert_int_equal(resolve_cidr_list_match(list, "203.0.113.5"), 1);
    assert_int_equal(resolve_cidr_list_match(list, "2001:db8::5"), 1);
    resolve_cidr_list_free(&list);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_class_of_domains_in_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recipient_known_local_virtual_relay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_local_recipient_maps_accepts_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_table_is_tempfail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_virtual_alias_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mynetworks_cidr_ipv4_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mynetworks_prefix_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cidr_list_compiled_once_matches_ipv4_ipv6_and_skips_bad_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_parameter_reopens_tables, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
