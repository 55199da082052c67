/* Unit tests for lib/master_cf: the service columns, '-' defaults,
   continuation lines with -o overrides, errors that name the line, and
   inet service addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "master_cf.h"
#include "xalloc.h"

static char tmpdir[] = "/tmp/test-master-cf.XXXXXX";

static int setup(void **state)
{
    assert_non_null(mkdtemp(tmpdir));
    log_init("test-master-cf");
    log_set_file("/dev/null");
    return 0;
}

static int teardown(void **state)
{
    config_free_all();
    char *cmd = xasprintf("rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    return 0;
}

static int parse(const char *text, struct master_service **s, size_t *n, char **error)
{
    *error = NULL;
    return master_cf_parse(text, strlen(text), "master.cf", s, n, error);
}

static const char sample[] =
    "# comment\n"
    "\n"
    "127.0.0.1:2525   inet  n       -       n       -       1       smtpd\n"
    "2587             inet  n       -       n       -       -       smtpd\n"
    "  -o syslog_name=postern/submission\n"
    "# comment between continuation lines\n"
    "\t-o smtpd_tls_security_level=encrypt -v\n"
    "qmgr             unix  n       -       n       300?    1       qmgr\n"
    "local            unix  -       -       -       -       8       local\n"
    "odd              unix  y       n       y       0       0       local extra\n";

static void valid_services_and_defaults(void **state)
{
    struct master_service *s;
    size_t n;
    char *error;
    assert_int_equal(parse(sample, &s, &n, &error), 0);
    assert_null(error);
    assert_int_equal(n, 5);

    assert_string_equal(s[0].name, "127.0.0.1:2525");
    assert_string_equal(s[0].type, "inet");
    assert_int_equal(s[0].private_, 0);
    assert_int_equal(s[0].unpriv, 1);
    assert_int_equal(s[0].chroot, 0);
    assert_int_equal(s[0].wakeup, 0);
    assert_int_equal(s[0].maxproc, 1);
    assert_string_equal(s[0].command, "smtpd");
    assert_int_equal(s[0].arg_count, 0);
    assert_null(s[0].args[0]);
    assert_int_equal(s[0].line, 3);
    assert_string_equal(s[0].file, "master.cf");

    /* maxproc "-" is $default_process_limit. */
    assert_int_equal(s[1].maxproc, 100);
    assert_int_equal(s[1].arg_count, 5);
    assert_string_equal(s[1].args[0], "-o");
    assert_string_equal(s[1].args[1], "syslog_name=postern/submission");
    assert_string_equal(s[1].args[2], "-o");
    assert_string_equal(s[1].args[3], "smtpd_tls_security_level=encrypt");
    assert_string_equal(s[1].args[4], "-v");
    assert_null(s[1].args[5]);
    assert_int_equal(s[1].line, 4);

    assert_int_equal(s[2].wakeup, 300);
    assert_int_equal(s[2].wakeup_if_used, 1);
    assert_int_equal(s[2].private_, 0);
    assert_int_equal(s[2].line, 8);

    /* unix defaults: private y, unpriv y, chroot n. */
    assert_int_equal(s[3].private_, 1);
    assert_int_equal(s[3].unpriv, 1);
    assert_int_equal(s[3].chroot, 0);
    assert_int_equal(s[3].maxproc, 8);

    assert_int_equal(s[4].private_, 1);
    assert_int_equal(s[4].unpriv, 0);
    assert_int_equal(s[4].chroot, 1);
    assert_int_equal(s[4].maxproc, 0);
    assert_string_equal(s[4].args[0], "extra");

    char *line = master_cf_format(&s[2]);
    assert_string_equal(line, "qmgr       unix  n       y       n       300?    1       qmgr");
    free(line);
    line = master_cf_format(&s[1]);
    assert_non_null(strstr(line, "smtpd -o syslog_name=postern/submission -o "));
    free(line);

    master_cf_free(&s, n);
    assert_null(s);
}

static void default_process_limit_comes_from_main_cf(void **state)
{
    static const char main_cf[] = "default_process_limit = 7\n";
    assert_int_equal(config_parse_text(main_cf, strlen(main_cf), "main.cf"), 0);
    struct master_service *s;
    size_t n;
    char *error;
    assert_int_equal(parse("x unix - - - - - local\n", &s, &n, &error), 0);
    assert_int_equal(s[0].maxproc, 7);
    master_cf_free(&s, n);
    config_free_all();
}

static void inet_service_private_flag_is_cleared(void **state)
{
    struct master_service *s;
    size_t n;
    char *error;
    assert_int_equal(parse("2525 inet y - - - - smtpd\n", &s, &n, &error), 0);
    assert_int_equal(s[0].private_, 0);
    master_cf_free(&s, n);
}

static void malformed_lines_fail_naming_the_line(void **state)
{
    static const struct {
        const char *text;
        const char *error;
    } cases[] = {
        {"a unix - - - - 1\n", "master.cf, line 1: expected: service type"},
        {"# c\n\nsmtp tcp n - n - 1 smtpd\n", "master.cf, line 3: bad transport type: tcp"},
        {"ok unix - - - - 1 local\nx unix maybe - - - 1 local\n",
         "master.cf, line 2: bad private field: maybe"},
        {"x unix - yes - - 1 local\n", "line 1: bad unpriv field: yes"},
        {"x unix - - Y - 1 local\n", "line 1: bad chroot field: Y"},
        {"x unix - - - 5m 1 local\n", "line 1: bad wakeup time: 5m"},
        {"x unix - - - ? 1 local\n", "line 1: bad wakeup time: ?"},
        {"x unix - - - - -1 local\n", "line 1: bad process limit: -1"},
        {"x unix - - - - 99999999 local\n", "line 1: bad process limit: 99999999"},
        {"[::1 inet n - n - 1 smtpd\n", "line 1: bad inet service address: [::1"},
        {"::1:25 inet n - n - 1 smtpd\n", "line 1: bad inet service address: ::1:25"},
        {"a/b unix - - - - 1 local\n", "line 1: bad service name: a/b"},
        {"  -o x=y\n", "line 1: continuation line without a service"},
        {"x unix - - - - 1 local\n  -o\n", "line 1: \"-o\" needs a following name=value"},
        {"x unix - - - - 1 local -o novalue\n", "line 1: \"-o\" needs"},
        {"x unix - - - - 1 local\ny unix - - - - 1 local\nx unix - - - - 2 local\n",
         "line 3: duplicate service: x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct master_service *s = (void *)1;
        size_t n = 99;
        char *error;
        assert_int_equal(parse(cases[i].text, &s, &n, &error), -1);
        assert_null(s);
        assert_int_equal(n, 0);
        assert_non_null(error);
        if (strstr(error, cases[i].error) == NULL)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, error, cases[i].error);
        free(error);
    }
    /* Same name with another type is a different service. */
    struct master_service *s;
    size_t n;
    char *error;
    assert_int_equal(parse("x unix - - - - 1 local\nx fifo - - - - 1 local\n", &s, &n, &error),
                     0);
    master_cf_free(&s, n);
}

static void every_prefix_parses_or_fails_cleanly(void **state)
{
    size_t len = strlen(sample);
    for (size_t k = 0; k <= len; k++) {
        struct master_service *s;
        size_t n;
        char *error = NULL;
        if (master_cf_parse(sample, k, "master.cf", &s, &n, &error) == 0)
            master_cf_free(&s, n);
        else
            free(error);
    }
    char nul[] = "x unix - - - - 1 local\0\n";
    struct master_service *s;
    size_t n;
    char *error;
    assert_int_equal(master_cf_parse(nul, sizeof(nul) - 1, "m", &s, &n, &error), -1);
    assert_non_null(strstr(error, "m, line 1: NUL byte"));
    free(error);
}

static void load_reads_a_file_and_reports_missing_ones(void **state)
{
    char *path = xasprintf("%s/master.cf", tmpdir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(sample, fp);
    fputs("bad line here\n", fp);
    fclose(fp);
    struct master_service *s;
    size_t n;
    char *error = NULL;
    assert_int_equal(master_cf_load(path, &s, &n, &error), -1);
    char *want = xasprintf("%s, line 11: expected", path);
    assert_non_null(strstr(error, want));
    free(want);
    free(error);

    fp = fopen(path, "w");
    fputs(sample, fp);
    fclose(fp);
    assert_int_equal(master_cf_load(path, &s, &n, &error), 0);
    assert_int_equal(n, 5);
    assert_string_equal(s[0].file, path);
    master_cf_free(&s, n);
    free(path);

    path = xasprintf("%s/none.cf", tmpdir);
    assert_int_equal(master_cf_load(path, &s, &n, &error), -1);
    assert_non_null(strstr(error, "No such file"));
    free(error);
    free(path);
}

static void inet_address_forms(void **state)
{
    static const struct {
        const char *name;
        const char *host; /* NULL: none given */
        const char *port;
    } good[] = {
        {"127.0.0.1:2525", "127.0.0.1", "2525"},
        {"[::1]:2525", "::1", "2525"},
        {"[fe80::1%lo]:25", "fe80::1%lo", "25"},
        {"2525", NULL, "2525"},
        {"smtp", NULL, "smtp"},
        {"localhost:submission", "localhost", "submission"},
        {"*:25", NULL, "25"},
    };
    static const char *const bad[] = {"",         ":25",          "host:",  "[::1]",
                                      "[::1]25",  "::1:25",       "[]:25",  "a b:25",
                                      "host:2 5", "host/x:25",    "[::1:25"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char *host = (void *)1;
        char *port = NULL;
        assert_int_equal(master_cf_inet_address(good[i].name, &host, &port), 0);
        if (good[i].host == NULL)
            assert_null(host);
        else
            assert_string_equal(host, good[i].host);
        assert_string_equal(port, good[i].port);
        free(host);
        free(port);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *host = NULL;
        char *port = NULL;
        if (master_cf_inet_address(bad[i], &host, &port) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_services_and_defaults),
        cmocka_unit_test(default_process_limit_comes_from_main_cf),
        cmocka_unit_test(inet_service_private_flag_is_cleared),
        cmocka_unit_test(malformed_lines_fail_naming_the_line),
        cmocka_unit_test(every_prefix_parses_or_fails_cleanly),
        cmocka_unit_test(load_reads_a_file_and_reports_missing_ones),
        cmocka_unit_test(inet_address_forms),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
