/* Unit tests for lib/transport.c: the routing decision per recipient
   (classes, transport_maps lookup order, relay_domains, relayhost, the
   error:/discard:/retry:/local:/smtp: forms, configuration errors) and
   the smtp next-hop parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "resolve.h"
#include "transport.h"

static const char main_cf[] =
    "myhostname = mail.example.test\n"
    "mydomain = example.test\n"
    "mydestination = $myhostname, localhost, example.test\n"
    "virtual_mailbox_domains = virt.test\n"
    "recipient_delimiter = +\n"
    "relay_domains = relayed.test, .sub.relayed.test\n"
    "relay_transport = smtp:[relay-in.test]:2526\n"
    "transport_maps = inline:{ { user@mapped.test = smtp:[user-hop.test] },\n"
    "    { mapped.test = smtp:[domain-hop.test]:2525 },\n"
    "    { .parent.test = smtp:parent-hop.test },\n"
    "    { bounce.test = error:5.1.1 no such domain here },\n"
    "    { plainerr.test = error: },\n"
    "    { softerr.test = error:4.7.1 policy says no },\n"
    "    { later.test = retry:4.3.5 maintenance window },\n"
    "    { later5.test = retry:5.2.2 mailbox full },\n"
    "    { quiet.test = discard: },\n"
    "    { quiet2.test = discard:dropped by policy },\n"
    "    { nohop.test = smtp: },\n"
    "    { hoponly.test = :[only-hop.test] },\n"
    "    { tolocal.test = local: },\n"
    "    { weird.test = uucp:gateway },\n"
    "    { badhop.test = smtp:[unclosed },\n"
    "    { badport.test = smtp:[h.test]:99999 },\n"
    "    { local.example.test = smtp:[never-used.test] } }\n";

static int setup(void **state)
{
    (void)state;
    config_parse_text(main_cf, sizeof(main_cf) - 1, "test main.cf");
    resolve_reset();
    transport_reset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    transport_reset();
    resolve_reset();
    config_free_all();
    return 0;
}

struct route_case {
    const char *address;
    enum transport_kind kind;
    const char *transport;
    const char *nexthop;   /* NULL: not checked */
    const char *dsn;       /* NULL: not checked */
    const char *reason;    /* NULL: must be NULL */
};

static void check_cases(const struct route_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct transport_route r;
        transport_route(cases[i].address, &r);
        if (r.kind != cases[i].kind)
            fail_msg("%s: kind %d, expected %d (reason %s)", cases[i].address, r.kind,
                     cases[i].kind, r.reason ? r.reason : "-");
        assert_string_equal(r.transport, cases[i].transport);
        if (cases[i].nexthop != NULL)
            assert_string_equal(r.nexthop, cases[i].nexthop);
        if (cases[i].dsn != NULL)
            assert_string_equal(r.dsn, cases[i].dsn);
        if (cases[i].reason != NULL)
            assert_string_equal(r.reason, cases[i].reason);
        else
            assert_null(r.reason);
        transport_route_free(&r);
        assert_null(r.transport);
    }
}

static void test_local_and_virtual_domains_go_to_local_before_maps(void **state)
{
    (void)state;
    static const struct route_case cases[] = {
        {"alice@example.test", TRANSPORT_LOCAL, "local", "example.test", NULL, NULL},
        {"alice@MAIL.Example.TEST", TRANSPORT_LOCAL, "local", "mail.example.test", NULL, NULL},
        {"bob@virt.test", TRANSPORT_LOCAL, "local", "virt.test", NULL, NULL},
        {"postmaster", TRANSPORT_LOCAL, "local", "", NULL, NULL},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_default_transport_goes_to_recipient_domain(void **state)
{
    (void)state;
    static const struct route_case cases[] = {
        {"bob@far.test", TRANSPORT_SMTP, "smtp", "far.test", NULL, NULL},
        {"bob@Far.TEST", TRANSPORT_SMTP, "smtp", "far.test", NULL, NULL},
        {"bob@far.test.", TRANSPORT_SMTP, "smtp", "far.test", NULL, NULL},
        /* example.test is ours, a subdomain is not; the map entry for
           the subdomain applies. */
        {"x@local.example.test", TRANSPORT_SMTP, "smtp", "[never-used.test]", NULL, NULL},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_maps_order_full_address_stripped_domain_parent(void **state)
{
    (void)state;
    static const struct route_case cases[] = {
        {"user@mapped.test", TRANSPORT_SMTP, "smtp", "[user-hop.test]", NULL, NULL},
        {"USER@Mapped.Test", TRANSPORT_SMTP, "smtp", "[user-hop.test]", NULL, NULL},
        {"user+tag@mapped.test", TRANSPORT_SMTP, "smtp", "[user-hop.test]", NULL, NULL},
        {"other@mapped.test", TRANSPORT_SMTP, "smtp", "[domain-hop.test]:2525", NULL, NULL},
        /* "mapped.test" does not match a subdomain; only ".parent" does. */
        {"a@sub.mapped.test", TRANSPORT_SMTP, "smtp", "sub.mapped.test", NULL, NULL},
        {"a@x.parent.test", TRANSPORT_SMTP, "smtp", "parent-hop.test", NULL, NULL},
        {"a@y.x.parent.test", TRANSPORT_SMTP, "smtp", "parent-hop.test", NULL, NULL},
        {"a@parent.test", TRANSPORT_SMTP, "smtp", "parent.test", NULL, NULL},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_error_retry_discard_forms(void **state)
{
    (void)state;
    static const struct route_case cases[] = {
        {"a@bounce.test", TRANSPORT_ERROR, "error", NULL, "5.1.1", "no such domain here"},
        {"a@plainerr.test", TRANSPORT_ERROR, "error", NULL, "5.0.0",
         "mail for this destination is not deliverable"},
        {"a@softerr.test", TRANSPORT_ERROR, "error", NULL, "5.7.1", "policy says no"},
        {"a@later.test", TRANSPORT_DEFER, "retry", NULL, "4.3.5", "maintenance window"},
        {"a@later5.test", TRANSPORT_DEFER, "retry", NULL, "4.2.2", "mailbox full"},
        {"a@quiet.test", TRANSPORT_DISCARD, "discard", NULL, "2.0.0", "discarded"},
        {"a@quiet2.test", TRANSPORT_DISCARD, "discard", NULL, "2.0.0", "dropped by policy"},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_empty_halves_and_local_form(void **state)
{
    (void)state;
    static const struct route_case cases[] = {
        {"a@nohop.test", TRANSPORT_SMTP, "smtp", "nohop.test", NULL, NULL},
        {"a@hoponly.test", TRANSPORT_SMTP, "smtp", "[only-hop.test]", NULL, NULL},
        {"a@tolocal.test", TRANSPORT_LOCAL, "local", "tolocal.test", NULL, NULL},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_configuration_errors_defer(void **state)
{
    (void)state;
    static const struct route_case cases[] = {
        {"a@weird.test", TRANSPORT_DEFER, "retry", NULL, "4.3.5", "unknown mail transport: uucp"},
        {"a@badhop.test", TRANSPORT_DEFER, "retry", NULL, "4.3.5",
         "bad next hop \"[unclosed\" in the mail configuration"},
        {"a@badport.test", TRANSPORT_DEFER, "retry", NULL, "4.3.5",
         "bad next hop \"[h.test]:99999\" in the mail configuration"},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_table_error_defers(void **state)
{
    (void)state;
    config_override("transport_maps", "nosuchtype:/x");
    static const struct route_case cases[] = {
        {"a@far.test", TRANSPORT_DEFER, "retry", NULL, "4.3.0", "transport_maps lookup failure"},
        /* Local mail does not depend on transport_maps. */
        {"a@example.test", TRANSPORT_LOCAL, "local", "example.test", NULL, NULL},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
    /* A fixed value reopens the tables. */
    config_override("transport_maps", "inline:{ far.test=smtp:[fixed.test] }");
    static const struct route_case fixed[] = {
        {"a@far.test", TRANSPORT_SMTP, "smtp", "[fixed.test]", NULL, NULL},
    };
    check_cases(fixed, 1);
    /* Whether a domain is ours cannot be told: defer, never route out. */
    config_override("virtual_mailbox_domains", "lmdb:/nonexistent/virtual-domains");
    static const struct route_case unknown[] = {
        {"a@far.test", TRANSPORT_DEFER, "retry", "", "4.3.0", "local domain table lookup failure"},
    };
    check_cases(unknown, 1);
}

static void test_relay_domains_use_relay_transport(void **state)
{
    (void)state;
    static const struct route_case cases[] = {
        {"a@relayed.test", TRANSPORT_SMTP, "smtp", "[relay-in.test]:2526", NULL, NULL},
        {"a@x.sub.relayed.test", TRANSPORT_SMTP, "smtp", "[relay-in.test]:2526", NULL, NULL},
        {"a@other.relayed.test", TRANSPORT_SMTP, "smtp", "other.relayed.test", NULL, NULL},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_relayhost_when_smtp_names_no_nexthop(void **state)
{
    (void)state;
    config_override("relayhost", "[smarthost.test]:587");
    static const struct route_case cases[] = {
        {"a@far.test", TRANSPORT_SMTP, "smtp", "[smarthost.test]:587", NULL, NULL},
        {"a@nohop.test", TRANSPORT_SMTP, "smtp", "[smarthost.test]:587", NULL, NULL},
        /* An explicit next hop wins over relayhost. */
        {"a@mapped.test", TRANSPORT_SMTP, "smtp", "[domain-hop.test]:2525", NULL, NULL},
        {"a@relayed.test", TRANSPORT_SMTP, "smtp", "[relay-in.test]:2526", NULL, NULL},
        {"a@example.test", TRANSPORT_LOCAL, "local", "example.test", NULL, NULL},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_default_transport_forms(void **state)
{
    (void)state;
    config_override("transport_maps", "");
    config_override("default_transport", "error:5.7.1 relaying is disabled here");
    static const struct route_case bounce[] = {
        {"a@far.test", TRANSPORT_ERROR, "error", NULL, "5.7.1", "relaying is disabled here"},
        {"a@example.test", TRANSPORT_LOCAL, "local", "example.test", NULL, NULL},
    };
    check_cases(bounce, 2);
    config_override("default_transport", "smtp:[outbound.test]:10025");
    static const struct route_case hop[] = {
        {"a@far.test", TRANSPORT_SMTP, "smtp", "[outbound.test]:10025", NULL, NULL},
    };
    check_cases(hop, 1);
    config_override("default_transport", "  smtp  ");
    static const struct route_case spaced[] = {
        {"a@far.test", TRANSPORT_SMTP, "smtp", "far.test", NULL, NULL},
    };
    check_cases(spaced, 1);
    /* The "*" wildcard of Postfix transport tables. */
    config_override("transport_maps", "inline:{ {*=retry:all held} }");
    static const struct route_case star[] = {
        {"a@far.test", TRANSPORT_DEFER, "retry", NULL, "4.0.0", "all held"},
    };
    check_cases(star, 1);
}

struct hop_case {
    const char *nexthop;
    int ok;
    const char *host;
    int mx;
    int port;
};

static void test_nexthop_parse_valid_and_invalid(void **state)
{
    (void)state;
    static const struct hop_case cases[] = {
        {"b.test", 1, "b.test", 1, 25},
        {"b.test:2525", 1, "b.test", 1, 2525},
        {"[mx.b.test]", 1, "mx.b.test", 0, 25},
        {"[mx.b.test]:2525", 1, "mx.b.test", 0, 2525},
        {"[127.0.0.3]", 1, "127.0.0.3", 0, 25},
        {"[127.0.0.3]:1", 1, "127.0.0.3", 0, 1},
        {"[::1]:65535", 1, "::1", 0, 65535},
        {"[IPv6:2001:db8::1]", 1, "2001:db8::1", 0, 25},
        {"", 0, NULL, 0, 0},
        {"[]", 0, NULL, 0, 0},
        {"[]:25", 0, NULL, 0, 0},
        {":25", 0, NULL, 0, 0},
        {"[mx.b.test", 0, NULL, 0, 0},
        {"[mx]x", 0, NULL, 0, 0},
        {"b.test:", 0, NULL, 0, 0},
        {"b.test:0", 0, NULL, 0, 0},
        {"b.test:65536", 0, NULL, 0, 0},
        {"b.test:25x", 0, NULL, 0, 0},
        {"b.test:-1", 0, NULL, 0, 0},
        {"b.test:25:26", 0, NULL, 0, 0},
        {"b test", 0, NULL, 0, 0},
        {"user@b.test", 0, NULL, 0, 0},
        {"::1", 0, NULL, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *host = (char *)"untouched";
        int mx = -1, port = -1;
        int r = transport_nexthop_parse(cases[i].nexthop, 25, &host, &mx, &port);
        if (!cases[i].ok) {
            if (r != -1)
                fail_msg("\"%s\" should be rejected", cases[i].nexthop);
            assert_null(host);
            continue;
        }
        if (r != 0)
            fail_msg("\"%s\" should parse", cases[i].nexthop);
        assert_string_equal(host, cases[i].host);
        assert_int_equal(mx, cases[i].mx);
        assert_int_equal(port, cases[i].port);
        free(host);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_local_and_virtual_domains_go_to_local_before_maps,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_transport_goes_to_recipient_domain, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_maps_order_full_address_stripped_domain_parent,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_retry_discard_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_halves_and_local_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_configuration_errors_defer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_error_defers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_domains_use_relay_transport, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relayhost_when_smtp_names_no_nexthop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_default_transport_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nexthop_parse_valid_and_invalid, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
