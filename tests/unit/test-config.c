/* Unit tests for lib/config and lib/params: main.cf syntax, $name expansion,
   typed values, overrides, durable edits and list helpers. Files live in a
   mkdtemp directory; warnings go to a log file the tests read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "xalloc.h"

static char tmpdir[] = "/tmp/test-config.XXXXXX";
static char *log_path;

static void write_file(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    free(path);
}

static char *read_file(const char *name)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    FILE *fp = fopen(path, "r");
    free(path);
    if (fp == NULL)
        return xstrdup("");
    char *text = xcalloc(1, 65536);
    size_t n = fread(text, 1, 65535, fp);
    text[n] = '\0';
    fclose(fp);
    return text;
}

/* Loads text as tmpdir/main.cf. */
static void load(const char *text)
{
    const char *error = NULL;
    write_file("main.cf", text);
    assert_int_equal(config_load(tmpdir, &error), 0);
}

static void clear_log(void)
{
    log_set_file(log_path);
    if (truncate(log_path, 0) != 0)
        fail_msg("truncate %s", log_path);
}

static int log_contains(const char *needle)
{
    char *text = read_file("log");
    int found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

static int setup(void **state)
{
    assert_non_null(mkdtemp(tmpdir));
    log_path = xasprintf("%s/log", tmpdir);
    log_init("test-config");
    log_set_file(log_path);
    return 0;
}

static int teardown(void **state)
{
    config_free_all();
    log_set_file("/dev/stderr");
    char *cmd = xasprintf("rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(log_path);
    return 0;
}

static int test_teardown(void **state)
{
    config_free_all();
    clear_log();
    return 0;
}

static void parses_names_values_comments_and_blank_lines(void **state)
{
    load("# a comment\n"
         "\n"
         "myhostname = mail.example.test\n"
         "   # indented comment\n"
         "relayhost=[smtp.example.test]:587\n"
         "mail_name   =    Spaced Out   \n"
         "smtpd_banner =\n");
    assert_string_equal(config_str("myhostname"), "mail.example.test");
    assert_string_equal(config_str("relayhost"), "[smtp.example.test]:587");
    assert_string_equal(config_str("mail_name"), "Spaced Out");
    assert_string_equal(config_str("smtpd_banner"), "");
    assert_true(config_is_set("smtpd_banner"));
    assert_false(config_is_set("mynetworks"));
    assert_string_equal(config_str("mynetworks"), "127.0.0.0/8 [::1]/128");
}

static void crlf_line_endings_are_accepted(void **state)
{
    load("myhostname = crlf.example.test\r\nmail_name = X\r\n");
    assert_string_equal(config_str("myhostname"), "crlf.example.test");
    assert_string_equal(config_str("mail_name"), "X");
}

static void continuation_lines_join_the_previous_line(void **state)
{
    load("mydestination = a.test,\n"
         "    b.test,\n"
         "# a comment inside does not end the logical line\n"
         "\tc.test\n"
         "mail_name = after\n");
    assert_string_equal(config_str("mydestination"), "a.test, b.test, c.test");
    assert_string_equal(config_str("mail_name"), "after");
}

static void leading_whitespace_before_any_parameter_is_ignored(void **state)
{
    clear_log();
    load("   orphan = 1\nmail_name = ok\n");
    assert_string_equal(config_str("mail_name"), "ok");
    assert_false(config_is_set("orphan"));
    assert_true(log_contains("line 1: logical line must not start with whitespace"));
}

static void malformed_lines_warn_and_are_skipped(void **state)
{
    clear_log();
    load("no equals sign here\nbad-name! = 1\n= nothing\nmail_name = fine\n");
    assert_string_equal(config_str("mail_name"), "fine");
    assert_true(log_contains("line 1: missing '='"));
    assert_true(log_contains("line 2: bad parameter name"));
    assert_true(log_contains("line 3: bad parameter name"));
}

static void later_definition_wins_with_warning(void **state)
{
    clear_log();
    load("mail_name = first\nmail_name = second\n");
    assert_string_equal(config_str("mail_name"), "second");
    assert_true(log_contains("line 2: overriding earlier entry: mail_name=first"));
}

static void expansion_forms_and_nesting(void **state)
{
    load("myhostname = mx.example.test\n"
         "mail_name = M\n"
         "a = $myhostname\n"
         "b = ${myhostname}!\n"
         "c = $(mail_name)x\n"
         "d = $a/$b\n"
         "e = cost $$5 and $ alone and $\n"
         "f = $undefined_thing|\n"
         "g = ${unterminated\n"
         "h = ${bad name}\n");
    assert_string_equal(config_str("a"), "mx.example.test");
    assert_string_equal(config_str("b"), "mx.example.test!");
    assert_string_equal(config_str("c"), "Mx");
    assert_string_equal(config_str("d"), "mx.example.test/mx.example.test!");
    assert_string_equal(config_str("e"), "cost $5 and $ alone and $");
    assert_string_equal(config_str("f"), "|");
    assert_string_equal(config_str("g"), "${unterminated");
    assert_string_equal(config_str("h"), "${bad name}");
    assert_string_equal(config_raw("d"), "$a/$b");
    /* Defaults refer to other parameters too. */
    assert_string_equal(config_str("smtpd_banner"), "mx.example.test ESMTP M");
}

static void conditional_expansion(void **state)
{
    load("set = value\n"
         "empty =\n"
         "a = [${set?yes}]\n"
         "b = [${empty?yes}]\n"
         "c = [${set:no}]\n"
         "d = [${empty:no}]\n"
         "e = [${nothing:$set}]\n"
         "f = [$(set?{x})]\n");
    assert_string_equal(config_str("a"), "[yes]");
    assert_string_equal(config_str("b"), "[]");
    assert_string_equal(config_str("c"), "[]");
    assert_string_equal(config_str("d"), "[no]");
    assert_string_equal(config_str("e"), "[value]");
    assert_string_equal(config_str("f"), "[{x}]");
}

static void expansion_loop_warns_and_stops(void **state)
{
    clear_log();
    load("a = x$b\nb = y$a\nself = $self\n");
    const char *a = config_str("a");
    assert_true(strncmp(a, "xyxy", 4) == 0);
    assert_true(strlen(a) <= 2 * 100);
    assert_true(log_contains("recursion limit"));
    assert_string_equal(config_str("self"), "");
}

static void exponential_expansion_is_bounded(void **state)
{
    struct buf_text {
        char s[4096];
    } t;
    size_t off = 0;
    /* p0 = $p1 $p1, p1 = $p2 $p2, ...: 2^40 words without a budget. */
    for (int i = 0; i < 40; i++)
        off += (size_t)snprintf(t.s + off, sizeof(t.s) - off, "p%d = $p%d $p%d\n", i, i + 1,
                                i + 1);
    snprintf(t.s + off, sizeof(t.s) - off, "p40 = word\n");
    clear_log();
    load(t.s);
    const char *v = config_str("p0");
    assert_true(strlen(v) <= 1024 * 1024);
    assert_true(log_contains("expansion stopped"));
}

static void time_units(void **state)
{
    static const struct {
        const char *text;
        long long secs;
    } good[] = {
        {"0", 0}, {"17", 17}, {"30s", 30}, {"5m", 300}, {"2h", 7200}, {"5d", 432000},
        {"1w", 604800}, {"1h30m", 5400}, {"10S", 10}, {" 4000s ", 4000},
    };
    static const char *const bad[] = {"", "s", "-1s", "5x", "1.5h", "5 m", "h1",
                                      "99999999999999999999s", "9223372036854775807w"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        long long v = -1;
        assert_int_equal(config_parse_time(good[i].text, &v), 0);
        assert_int_equal(v, good[i].secs);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long long v;
        assert_int_equal(config_parse_time(bad[i], &v), -1);
    }
    load("maximal_queue_lifetime = 2d\n");
    assert_int_equal(config_time("maximal_queue_lifetime"), 172800);
    assert_int_equal(config_time("smtpd_timeout"), 300);
    assert_int_equal(config_time("delay_warning_time"), 0);
}

static void booleans_and_integers(void **state)
{
    static const struct {
        const char *text;
        int value;
    } good[] = {{"yes", 1}, {"YES", 1}, {"true", 1}, {"True", 1},
                {"no", 0},  {"No", 0},  {"false", 0}, {"FALSE", 0}};
    static const char *const bad[] = {"", "y", "1", "on", "yes please"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int v = -1;
        assert_int_equal(config_parse_bool(good[i].text, &v), 0);
        assert_int_equal(v, good[i].value);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int v;
        assert_int_equal(config_parse_bool(bad[i], &v), -1);
    }
    long long n;
    assert_int_equal(config_parse_int("42", &n), 0);
    assert_int_equal(n, 42);
    assert_int_equal(config_parse_int("-3", &n), 0);
    assert_int_equal(n, -3);
    assert_int_equal(config_parse_int("", &n), -1);
    assert_int_equal(config_parse_int("12k", &n), -1);
    assert_int_equal(config_parse_int("99999999999999999999", &n), -1);

    load("disable_vrfy_command = Yes\nmessage_size_limit = 2048\nbase = 20\n"
         "smtpd_hard_error_limit = $base\n");
    assert_true(config_bool("disable_vrfy_command"));
    assert_true(config_bool("smtpd_forbid_bare_newline"));
    assert_false(config_bool("smtpd_sasl_auth_enable"));
    assert_int_equal(config_int("message_size_limit"), 2048);
    assert_int_equal(config_int("smtpd_hard_error_limit"), 20);
}

static void bad_typed_value_is_fatal_naming_the_line(void **state)
{
    load("mail_name = x\nmessage_size_limit = lots\n");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        config_int("message_size_limit");
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_true(log_contains("main.cf, line 2: bad numerical configuration: "
                             "message_size_limit = lots"));
}

static void undeclared_unset_name_is_a_bug(void **state)
{
    load("");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        config_str("no_such_parameter_anywhere");
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_null(config_raw("no_such_parameter_anywhere"));
    assert_null(config_param_def("no_such_parameter_anywhere"));
}

static void unknown_names_warn_but_are_kept(void **state)
{
    clear_log();
    load("mail_name = x\nfrobnicate = 7\nmy_macro = example.test\n"
         "mydestination = $my_macro\n");
    assert_string_equal(config_str("frobnicate"), "7");
    assert_true(log_contains("main.cf, line 2: unused parameter: frobnicate=7"));
    /* A user-defined macro that another value refers to is not unused. */
    assert_false(log_contains("my_macro=example.test"));
    assert_string_equal(config_str("mydestination"), "example.test");
    assert_null(config_param_def("frobnicate"));
}

static void overrides_win_and_old_pointers_stay_valid(void **state)
{
    load("mail_name = file\nmyhostname = h.example.test\n");
    const char *before = config_str("smtpd_banner");
    assert_string_equal(before, "h.example.test ESMTP file");
    config_override("mail_name", "override");
    assert_string_equal(config_str("mail_name"), "override");
    assert_string_equal(config_str("smtpd_banner"), "h.example.test ESMTP override");
    assert_string_equal(before, "h.example.test ESMTP file");
    assert_true(config_is_set("mail_name"));
    config_override("syslog_name", "postern/submission");
    assert_true(config_is_set("syslog_name"));
    config_override("custom_thing", "1");
    assert_string_equal(config_str("custom_thing"), "1");
    /* A reload drops overrides. */
    const char *error;
    assert_int_equal(config_load(tmpdir, &error), 0);
    assert_string_equal(config_str("mail_name"), "file");
    assert_false(config_is_set("syslog_name"));
}

static void computed_defaults(void **state)
{
    load("");
    assert_string_equal(config_str("config_directory"), tmpdir);
    assert_non_null(strchr(config_str("myhostname"), '.'));
    char *alias = xasprintf("lmdb:%s/aliases", tmpdir);
    assert_string_equal(config_str("alias_maps"), alias);
    assert_string_equal(config_str("local_recipient_maps"), alias);
    free(alias);
    assert_string_equal(config_raw("alias_maps"), "lmdb:$config_directory/aliases");

    load("myhostname = mail.sub.example.test\n");
    assert_string_equal(config_str("mydomain"), "sub.example.test");
    assert_string_equal(config_default("mydomain"), "sub.example.test");
    assert_string_equal(config_str("mydestination"),
                        "mail.sub.example.test, localhost.sub.example.test, localhost");
    load("myhostname = single\n");
    assert_string_equal(config_str("mydomain"), "localdomain");
    /* Each refers to the other: no endless recursion. */
    load("myhostname = mail.$mydomain\n");
    (void)config_str("myhostname");
    (void)config_str("mydomain");
    load("mydomain = example.test\nmyhostname = mail.$mydomain\n");
    assert_string_equal(config_str("myhostname"), "mail.example.test");
}

static void missing_main_cf_is_an_error_but_defaults_work(void **state)
{
    char *dir = xasprintf("%s/nonexistent", tmpdir);
    const char *error = NULL;
    assert_int_equal(config_load(dir, &error), -1);
    assert_non_null(strstr(error, "nonexistent/main.cf"));
    assert_string_equal(config_str("config_directory"), dir);
    assert_string_equal(config_str("mail_owner"), "postern");
    free(dir);
}

struct seen {
    char text[512];
};

static void record_set(const char *name, const char *raw, void *ctx)
{
    struct seen *s = ctx;
    size_t len = strlen(s->text);
    snprintf(s->text + len, sizeof(s->text) - len, "%s=%s;", name, raw);
}

static void foreach_set_reports_file_order(void **state)
{
    load("relayhost = r\nmail_name = m\nzeta = $mail_name\nalpha = 1\nrelayhost = r2\n");
    struct seen s = {""};
    config_foreach_set(record_set, &s);
    assert_string_equal(s.text, "relayhost=r2;mail_name=m;zeta=$mail_name;alpha=1;");
}

static void edit_replaces_and_keeps_other_lines(void **state)
{
    const char *original = "# Header comment\n"
                           "mail_name = old\n"
                           "    continued old\n"
                           "# between\n"
                           "mynetworks = 10.0.0.0/8,\n"
                           "    192.168.0.0/16\n"
                           "mail_name = duplicate\n"
                           "mail_name_extra = kept\n"
                           "last = no newline";
    write_file("main.cf", original);
    const char *error = NULL;
    assert_int_equal(config_edit(tmpdir, "mail_name", "New Name", &error), 0);
    char *text = read_file("main.cf");
    assert_string_equal(text, "# Header comment\n"
                              "mail_name = New Name\n"
                              "# between\n"
                              "mynetworks = 10.0.0.0/8,\n"
                              "    192.168.0.0/16\n"
                              "mail_name_extra = kept\n"
                              "last = no newline");
    free(text);

    assert_int_equal(config_edit(tmpdir, "relayhost", "[mx.test]", &error), 0);
    text = read_file("main.cf");
    assert_non_null(strstr(text, "last = no newline\nrelayhost = [mx.test]\n"));
    free(text);

    assert_int_equal(config_load(tmpdir, &error), 0);
    assert_string_equal(config_str("mail_name"), "New Name");
    assert_string_equal(config_str("relayhost"), "[mx.test]");
    assert_string_equal(config_str("mynetworks"), "10.0.0.0/8, 192.168.0.0/16");

    struct stat st;
    char *path = xasprintf("%s/main.cf", tmpdir);
    chmod(path, 0640);
    assert_int_equal(config_edit(tmpdir, "relayhost", "", &error), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    free(path);

    assert_int_equal(config_edit(tmpdir, "mail_name", "two\nlines", &error), -1);
    assert_non_null(strstr(error, "line break"));
    assert_int_equal(config_edit(tmpdir, "bad name", "x", &error), -1);
    char *missing = xasprintf("%s/missing-dir", tmpdir);
    assert_int_equal(config_edit(missing, "mail_name", "x", &error), -1);
    free(missing);
}

static void edit_creates_missing_main_cf(void **state)
{
    char *dir = xasprintf("%s/fresh", tmpdir);
    assert_int_equal(mkdir(dir, 0755), 0);
    const char *error = NULL;
    assert_int_equal(config_edit(dir, "myhostname", "fresh.example.test", &error), 0);
    assert_int_equal(config_load(dir, &error), 0);
    assert_string_equal(config_str("myhostname"), "fresh.example.test");
    free(dir);
}

static void split_list_on_commas_and_whitespace(void **state)
{
    size_t n;
    char **v = config_split_list("  a, b ,c\td\n e,,  ", &n);
    assert_int_equal(n, 5);
    assert_string_equal(v[0], "a");
    assert_string_equal(v[4], "e");
    assert_null(v[5]);
    strv_free(&v);
    assert_null(v);

    v = config_split_list("", &n);
    assert_int_equal(n, 0);
    assert_null(v[0]);
    strv_free(&v);

    v = config_split_list("lmdb:/x, inline:{ a=b, {c = d e} } static:ok", &n);
    assert_int_equal(n, 3);
    assert_string_equal(v[1], "inline:{ a=b, {c = d e} }");
    assert_string_equal(v[2], "static:ok");
    strv_free(&v);

    v = config_split_list("unbalanced:{ a, b", NULL);
    assert_string_equal(v[0], "unbalanced:{ a, b");
    strv_free(&v);
    char **none = NULL;
    strv_free(&none);
}

static void domain_list_membership(void **state)
{
    load("myhostname = mail.example.test\n"
         "mydomain = example.test\n"
         "extra = Other.TEST other2.test\n"
         "relay_domains = !bad.parent.test, .parent.test, lmdb:/etc/x, /file/list\n"
         "virtual_mailbox_domains = $extra, hash:/nothing, exact.test.\n");
    assert_true(config_list_has_domain("mydestination", "mail.example.test"));
    assert_true(config_list_has_domain("mydestination", "MAIL.Example.Test"));
    assert_true(config_list_has_domain("mydestination", "localhost.example.test"));
    assert_true(config_list_has_domain("mydestination", "localhost"));
    assert_true(config_list_has_domain("mydestination", "mail.example.test."));
    assert_false(config_list_has_domain("mydestination", "example.test"));
    assert_false(config_list_has_domain("mydestination", "sub.mail.example.test"));
    assert_false(config_list_has_domain("mydestination", ""));
    assert_true(config_list_has_domain("virtual_mailbox_domains", "other.test"));
    assert_true(config_list_has_domain("virtual_mailbox_domains", "OTHER2.test"));
    assert_true(config_list_has_domain("virtual_mailbox_domains", "exact.test"));
    assert_false(config_list_has_domain("virtual_mailbox_domains", "hash"));
    assert_true(config_list_has_domain("relay_domains", "a.parent.test"));
    assert_false(config_list_has_domain("relay_domains", "parent.test"));
    assert_false(config_list_has_domain("relay_domains", "bad.parent.test"));
    assert_false(config_list_has_domain("relay_domains", "etc"));
    assert_false(config_list_has_domain("transport_maps", "anything.test"));
}

static void every_default_parses_as_its_type(void **state)
{
    load("");
    assert_true(param_table_count > 80);
    for (size_t i = 0; i < param_table_count; i++) {
        const struct param_def *d = &param_table[i];
        assert_non_null(d->doc);
        assert_true(strlen(d->doc) > 10);
        assert_ptr_equal(config_param_def(d->name), d);
        const char *value = config_str(d->name);
        long long n;
        int b;
        switch (d->type) {
        case PARAM_INT:
        case PARAM_SIZE:
            assert_int_equal(config_parse_int(value, &n), 0);
            break;
        case PARAM_BOOL:
            assert_int_equal(config_parse_bool(value, &b), 0);
            break;
        case PARAM_TIME:
            assert_int_equal(config_parse_time(value, &n), 0);
            break;
        case PARAM_STR:
            break;
        }
    }
    assert_int_equal(config_int("smtpd_process_session_limit"), 1000);
    assert_int_equal(config_int("qmgr_local_connections"), 4);
    assert_int_equal(config_time("master_restart_max_backoff"), 60);
    assert_int_equal(config_time("maximal_queue_lifetime"), 5 * 86400);
    assert_string_equal(config_str("smtpd_relay_restrictions"),
                        "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination");
    assert_string_equal(config_str("queue_directory"), "/var/spool/postern");
}

static void every_prefix_of_a_file_parses_without_crashing(void **state)
{
    /* The file fed one byte at a time as growing prefixes; the final
       prefix is the whole file and must give the full result. */
    static const char text[] = "# c\nmail_name = a\n  b\nx = ${mail_name?$(y)}$$\n"
                               "   \n\tcont\nbad line\nmyhostname=h.test\n";
    for (size_t k = 0; k <= sizeof(text) - 1; k++) {
        assert_int_equal(config_parse_text(text, k, "prefix"), 0);
        (void)config_str("mail_name");
        (void)config_str("mydestination");
        if (config_is_set("x"))
            (void)config_str("x");
    }
    assert_string_equal(config_str("mail_name"), "a b");
    assert_string_equal(config_str("x"), "$ cont");
    assert_string_equal(config_str("myhostname"), "h.test");
}

static void nul_bytes_in_text_are_rejected_per_line(void **state)
{
    static const char text[] = "mail_name = a\0b\nmyhostname = ok.test\n";
    clear_log();
    assert_int_equal(config_parse_text(text, sizeof(text) - 1, "nul"), 0);
    assert_false(config_is_set("mail_name"));
    assert_string_equal(config_str("myhostname"), "ok.test");
    assert_true(log_contains("nul, line 1: NUL byte"));
}

static void expand_arbitrary_text(void **state)
{
    load("myhostname = e.test\n");
    char *s = config_expand("host=$myhostname ${nope:none}");
    assert_string_equal(s, "host=e.test none");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(parses_names_values_comments_and_blank_lines, test_teardown),
        cmocka_unit_test_teardown(crlf_line_endings_are_accepted, test_teardown),
        cmocka_unit_test_teardown(continuation_lines_join_the_previous_line, test_teardown),
        cmocka_unit_test_teardown(leading_whitespace_before_any_parameter_is_ignored,
                                  test_teardown),
        cmocka_unit_test_teardown(malformed_lines_warn_and_are_skipped, test_teardown),
        cmocka_unit_test_teardown(later_definition_wins_with_warning, test_teardown),
        cmocka_unit_test_teardown(expansion_forms_and_nesting, test_teardown),
        cmocka_unit_test_teardown(conditional_expansion, test_teardown),
        cmocka_unit_test_teardown(expansion_loop_warns_and_stops, test_teardown),
        cmocka_unit_test_teardown(exponential_expansion_is_bounded, test_teardown),
        cmocka_unit_test_teardown(time_units, test_teardown),
        cmocka_unit_test_teardown(booleans_and_integers, test_teardown),
        cmocka_unit_test_teardown(bad_typed_value_is_fatal_naming_the_line, test_teardown),
        cmocka_unit_test_teardown(undeclared_unset_name_is_a_bug, test_teardown),
        cmocka_unit_test_teardown(unknown_names_warn_but_are_kept, test_teardown),
        cmocka_unit_test_teardown(overrides_win_and_old_pointers_stay_valid, test_teardown),
        cmocka_unit_test_teardown(computed_defaults, test_teardown),
        cmocka_unit_test_teardown(missing_main_cf_is_an_error_but_defaults_work, test_teardown),
        cmocka_unit_test_teardown(foreach_set_reports_file_order, test_teardown),
        cmocka_unit_test_teardown(edit_replaces_and_keeps_other_lines, test_teardown),
        cmocka_unit_test_teardown(edit_creates_missing_main_cf, test_teardown),
        cmocka_unit_test_teardown(split_list_on_commas_and_whitespace, test_teardown),
        cmocka_unit_test_teardown(domain_list_membership, test_teardown),
        cmocka_unit_test_teardown(every_default_parses_as_its_type, test_teardown),
        cmocka_unit_test_teardown(every_prefix_of_a_file_parses_without_crashing,
                                  test_teardown),
        cmocka_unit_test_teardown(nul_bytes_in_text_are_rejected_per_line, test_teardown),
        cmocka_unit_test_teardown(expand_arbitrary_text, test_teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
