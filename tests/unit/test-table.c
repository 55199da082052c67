/*
 * NAME
 *	test-table - unit tests for lib/table*.c (lmdb, pcre, inline, static, lists)
 * DESCRIPTION
 *	Each test works in its own mkdtemp() directory. Warnings are
 *	logged to a file in that directory so tests can assert on them.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "buf.h"
#include "log.h"
#include "table.h"
#include "xalloc.h"

struct fixture {
    char dir[64];
    char *log;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test-table.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->log = xasprintf("%s/log", f->dir);
    log_set_file(f->log);
    *state = f;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    log_set_file("");
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f->log);
    free(f);
    return 0;
}

static char *path_in(struct fixture *f, const char *name)
{
    return xasprintf("%s/%s", f->dir, name);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static char *read_all(const char *path)
{
    struct buf b;
    buf_init(&b, 0);
    FILE *fp = fopen(path, "r");
    if (fp != NULL) {
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
            buf_append(&b, chunk, n);
        fclose(fp);
    }
    char *s = buf_steal(&b);
    buf_free(&b);
    return s ? s : xstrdup("");
}

static int log_has(struct fixture *f, const char *needle)
{
    char *text = read_all(f->log);
    int found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

/* Looks key up and compares: expect NULL means TABLE_NOTFOUND. */
static void expect(struct table *t, const char *key, const char *want)
{
    char *value = (char *)0x1;
    const char *err = NULL;
    enum table_result res = table_lookup(t, key, &value, &err);
    if (want == NULL) {
        if (res != TABLE_NOTFOUND)
            fail_msg("%s: key \"%s\": expected not found, got %d (%s)", table_spec(t), key,
                     res, res == TABLE_FOUND ? value : err);
        assert_null(value);
    } else {
        if (res != TABLE_FOUND)
            fail_msg("%s: key \"%s\": expected \"%s\", got %d (%s)", table_spec(t), key, want,
                     res, err ? err : "");
        assert_string_equal(value, want);
        free(value);
    }
}

static struct table *open_ok(const char *spec)
{
    const char *err = NULL;
    struct table *t = table_open(spec, &err);
    if (t == NULL)
        fail_msg("table_open(%s): %s", spec, err);
    return t;
}

/*
 * lmdb
 */

static void test_lmdb_postmap_format_builds_with_comments_continuations_and_case_folding(void **state)
{
    struct fixture *f = *state;
    char *src = path_in(f, "vmailbox");
    write_file(src, "# comment\n"
                    "\n"
                    "Bob@Example.COM   example.com/bob/  \n"
                    "   # indented comment\n"
                    "alice@example.com first\n"
                    "  second\n"
                    "\tthird\n"
                    "novalue\n"
                    "carol@example.com\tc/\r\n");
    const char *err = NULL;
    assert_int_equal(table_lmdb_build(src, 0, &err), 3);

    char *spec = xasprintf("lmdb:%s", src);
    struct table *t = open_ok(spec);
    assert_string_equal(table_spec(t), spec);
    expect(t, "bob@example.com", "example.com/bob/");
    expect(t, "BOB@EXAMPLE.COM", "example.com/bob/");
    expect(t, "alice@example.com", "first second third");
    expect(t, "carol@example.com", "c/");
    expect(t, "novalue", NULL);
    expect(t, "nobody@example.com", NULL);
    expect(t, "", NULL);
    assert_true(log_has(f, "vmailbox:8: expected format: key whitespace value"));
    table_close(&t);
    assert_null(t);
    free(spec);
    free(src);
}

static void test_lmdb_alias_format_builds_quoted_keys_and_continuations(void **state)
{
    struct fixture *f = *state;
    char *src = path_in(f, "aliases");
    write_file(src, "# aliases\n"
                    "postmaster: root\n"
                    "Root : bob,\n"
                    "    carol\n"
                    "\"with space\": \"|/bin/cat\"\n"
                    "\"q\\\"uote\": x\n"
                    "nocolon value\n"
                    "empty:\n"
                    "\"unterminated: y\n"
                    "url: http://x:80/\n");
    const char *err = NULL;
    assert_int_equal(table_lmdb_build(src, 1, &err), 5);
    char *spec = xasprintf("lmdb:%s", src);
    struct table *t = open_ok(spec);
    expect(t, "postmaster", "root");
    expect(t, "root", "bob, carol");
    expect(t, "With Space", "\"|/bin/cat\"");
    expect(t, "q\"uote", "x");
    expect(t, "url", "http://x:80/");
    expect(t, "nocolon", NULL);
    expect(t, "empty", NULL);
    assert_true(log_has(f, "aliases:7: expected format: key: value"));
    assert_true(log_has(f, "aliases:8: expected format: key: value (the value is empty)"));
    assert_true(log_has(f, "aliases:9: missing closing"));
    table_close(&t);
    free(spec);
    free(src);
}

static void test_lmdb_duplicate_key_keeps_first_and_warns(void **state)
{
    struct fixture *f = *state;
    char *src = path_in(f, "dups");
    write_file(src, "a 1\nb 2\nA 3\na 4\n");
    const char *err = NULL;
    assert_int_equal(table_lmdb_build(src, 0, &err), 2);
    char *spec = xasprintf("lmdb:%s", src);
    struct table *t = open_ok(spec);
    expect(t, "a", "1");
    expect(t, "b", "2");
    assert_true(log_has(f, "dups:3: duplicate entry \"a\"; keeping the one at line 1"));
    assert_true(log_has(f, "dups:4: duplicate entry \"a\""));
    table_close(&t);
    free(spec);
    free(src);
}

static void test_lmdb_empty_source_builds_empty_table(void **state)
{
    struct fixture *f = *state;
    char *src = path_in(f, "empty");
    write_file(src, "# nothing\n");
    const char *err = NULL;
    assert_int_equal(table_lmdb_build(src, 0, &err), 0);
    char *spec = xasprintf("lmdb:%s", src);
    struct table *t = open_ok(spec);
    expect(t, "x", NULL);
    table_close(&t);
    free(spec);
    free(src);
}

static void test_lmdb_missing_files_are_errors(void **state)
{
    struct fixture *f = *state;
    char *src = path_in(f, "missing");
    const char *err = NULL;
    assert_int_equal(table_lmdb_build(src, 0, &err), -1);
    assert_non_null(strstr(err, "missing"));

    char *spec = xasprintf("lmdb:%s", src);
    struct table *t = open_ok(spec);   /* opened lazily: no error yet */
    char *value = NULL;
    err = NULL;
    assert_int_equal(table_lookup(t, "x", &value, &err), TABLE_ERROR);
    assert_null(value);
    assert_non_null(strstr(err, "missing.lmdb"));
    table_close(&t);
    free(spec);
    free(src);

    err = NULL;
    assert_null(table_open("lmdb:", &err));
    assert_non_null(err);
}

static void test_lmdb_key_longer_than_lmdb_limit_is_skipped(void **state)
{
    struct fixture *f = *state;
    char *src = path_in(f, "long");
    char key[600];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    char *text = xasprintf("%s v\nshort v\n", key);
    write_file(src, text);
    const char *err = NULL;
    assert_int_equal(table_lmdb_build(src, 0, &err), 1);
    assert_true(log_has(f, "long:1: key longer than 511 bytes"));
    char *spec = xasprintf("lmdb:%s", src);
    struct table *t = open_ok(spec);
    expect(t, key, NULL);
    expect(t, "short", "v");
    char *huge = xmalloc(TABLE_KEY_MAX + 2);
    memset(huge, 'h', TABLE_KEY_MAX + 1);
    huge[TABLE_KEY_MAX + 1] = '\0';
    expect(t, huge, NULL);
    free(huge);
    table_close(&t);
    free(spec);
    free(text);
    free(src);
}

static void test_lmdb_rebuild_is_seen_by_an_open_table(void **state)
{
    struct fixture *f = *state;
    char *src = path_in(f, "map");
    const char *err = NULL;
    write_file(src, "k old\n");
    assert_int_equal(table_lmdb_build(src, 0, &err), 1);
    char *spec = xasprintf("lmdb:%s", src);
    struct table *t = open_ok(spec);
    expect(t, "k", "old");

    write_file(src, "k new\nk2 added\n");
    assert_int_equal(table_lmdb_build(src, 0, &err), 2);
    usleep(1100 * 1000);   /* the identity check runs at most once a second */
    expect(t, "k", "new");
    expect(t, "k2", "added");
    table_close(&t);
    free(spec);
    free(src);
}

static void test_lmdb_table_opened_before_fork_works_in_child(void **state)
{
    struct fixture *f = *state;
    char *src = path_in(f, "fork");
    const char *err = NULL;
    write_file(src, "k v\n");
    assert_int_equal(table_lmdb_build(src, 0, &err), 1);
    char *spec = xasprintf("lmdb:%s", src);
    struct table *t = open_ok(spec);
    expect(t, "k", "v");   /* the parent opened the environment */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *value = NULL;
        enum table_result res = table_lookup(t, "k", &value, &err);
        _exit(res == TABLE_FOUND && strcmp(value, "v") == 0 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    table_close(&t);
    free(spec);
    free(src);
}

static void test_lmdb_map_grows_past_the_initial_size(void **state)
{
    struct fixture *f = *state;
    char *src = path_in(f, "big");
    FILE *fp = fopen(src, "w");
    assert_non_null(fp);
    char value[1001];
    memset(value, 'v', 1000);
    value[1000] = '\0';
    for (int i = 0; i < 14000; i++)
        fprintf(fp, "key%05d %s\n", i, value);
    assert_int_equal(fclose(fp), 0);
    const char *err = NULL;
    assert_int_equal(table_lmdb_build(src, 0, &err), 14000);
    char *spec = xasprintf("lmdb:%s", src);
    struct table *t = open_ok(spec);
    expect(t, "key13999", value);
    table_close(&t);
    free(spec);
    free(src);
}

static void collect(const char *key, const char *value, void *ctx)
{
    buf_printf(ctx, "%s=%s;", key, value);
}

static void test_lmdb_foreach_lists_entries_in_key_order(void **state)
{
    struct fixture *f = *state;
    char *src = path_in(f, "list");
    const char *err = NULL;
    write_file(src, "b 2\nA 1\nc 3\n");
    assert_int_equal(table_lmdb_build(src, 0, &err), 3);
    char *spec = xasprintf("lmdb:%s", src);
    struct table *t = open_ok(spec);
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(table_foreach(t, collect, &out, &err), 3);
    assert_string_equal(out.data, "a=1;b=2;c=3;");
    buf_free(&out);
    table_close(&t);

    t = open_ok("static:x");
    assert_int_equal(table_foreach(t, collect, &out, &err), -1);
    assert_non_null(strstr(err, "cannot list"));
    table_close(&t);
    free(spec);
    free(src);
}

static void test_lmdb_update_adds_replaces_and_deletes_keeping_other_lines(void **state)
{
    struct fixture *f = *state;
    char *src = path_in(f, "vmailbox");
    char *spec = xasprintf("lmdb:%s", src);
    const char *err = NULL;

    /* Creates the source when missing. */
    assert_int_equal(table_lmdb_update(src, "a@x.test", "x.test/a/", &err), 0);
    char *text = read_all(src);
    assert_string_equal(text, "a@x.test x.test/a/\n");
    free(text);

    write_file(src, "# users\na@x.test x.test/a/\nB@x.test old\n  continued\nc@x.test x.test/c/\n"
                    "b@x.test dup");
    assert_int_equal(table_lmdb_update(src, "b@X.test", "x.test/b/", &err), 1);
    text = read_all(src);
    assert_string_equal(text, "# users\na@x.test x.test/a/\nb@X.test x.test/b/\n"
                              "c@x.test x.test/c/\n");
    free(text);
    struct table *t = open_ok(spec);
    expect(t, "b@x.test", "x.test/b/");

    assert_int_equal(table_lmdb_update(src, "d@x.test", "x.test/d/", &err), 0);
    assert_int_equal(table_lmdb_update(src, "a@x.test", NULL, &err), 1);
    assert_int_equal(table_lmdb_update(src, "zz@x.test", NULL, &err), 0);
    text = read_all(src);
    assert_string_equal(text, "# users\nb@X.test x.test/b/\nc@x.test x.test/c/\n"
                              "d@x.test x.test/d/\n");
    free(text);
    table_close(&t);
    t = open_ok(spec);
    expect(t, "a@x.test", NULL);
    expect(t, "d@x.test", "x.test/d/");
    table_close(&t);
    free(spec);
    free(src);
}

static void test_lmdb_update_alias_format_quotes_keys_and_guesses_format(void **state)
{
    struct fixture *f = *state;
    char *src = path_in(f, "aliases");
    char *spec = xasprintf("lmdb:%s", src);
    const char *err = NULL;

    /* An empty file named aliases* is alias format. */
    assert_int_equal(table_lmdb_update(src, "postmaster", "root", &err), 0);
    assert_int_equal(table_lmdb_update(src, "with space", "bob", &err), 0);
    char *text = read_all(src);
    assert_string_equal(text, "postmaster: root\n\"with space\": bob\n");
    free(text);
    assert_int_equal(table_lmdb_update(src, "postmaster", "alice, bob", &err), 1);
    struct table *t = open_ok(spec);
    expect(t, "postmaster", "alice, bob");
    expect(t, "with space", "bob");
    table_close(&t);

    /* The format follows the content even under another name. */
    char *other = path_in(f, "other");
    write_file(other, "root: bob\n");
    assert_int_equal(table_lmdb_update(other, "x", "y", &err), 0);
    text = read_all(other);
    assert_string_equal(text, "root: bob\nx: y\n");
    free(text);
    assert_int_equal(table_lmdb_update_format(other, 1, "root", NULL, &err), 1);
    free(other);
    free(spec);
    free(src);
}

static void test_lmdb_update_rejects_bad_keys_and_values(void **state)
{
    struct fixture *f = *state;
    char *src = path_in(f, "map");
    const char *err = NULL;
    write_file(src, "k v\n");
    assert_int_equal(table_lmdb_update_format(src, 0, "two words", "v", &err), -1);
    assert_int_equal(table_lmdb_update_format(src, 0, "", "v", &err), -1);
    assert_int_equal(table_lmdb_update_format(src, 0, "k", "line\nbreak", &err), -1);
    assert_int_equal(table_lmdb_update_format(src, 0, "k", "   ", &err), -1);
    assert_int_equal(table_lmdb_update_format(src, 0, "#k", "v", &err), -1);
    assert_non_null(err);
    char *text = read_all(src);
    assert_string_equal(text, "k v\n");
    free(text);
    free(src);
}

/*
 * pcre
 */

static const char pcre_sample[] =
    "# sample\n"
    "/^(.*)@example\\.com$/   ${1}+ex@local.test\n"
    "/^user-([a-z]+)-([0-9]+)$/ $2/$1 costs $$5\n"
    "/^Case$/i                sensitive\n"
    "!/@/                     no-at-sign\n"
    "if /\\.org$/\n"
    "/^admin@/                org-admin\n"
    "if !/^x/\n"
    "/^b/                     org-b-not-x\n"
    "endif\n"
    "/./                      org-any\n"
    "endif\n"
    "|^hash|                  other-delimiter\n"
    "/^multi/                 part1\n"
    "   part2\n"
    "/^zz$/                   zz\n";

static void test_pcre_captures_flags_negation_and_if_blocks(void **state)
{
    (void)state;
    struct table *t = table_pcre_open_string("sample", pcre_sample, strlen(pcre_sample));
    assert_string_equal(table_spec(t), "pcre:sample");
    expect(t, "Bob@Example.COM", "Bob+ex@local.test");    /* case-insensitive */
    expect(t, "user-abc-42", "42/abc costs $5");
    expect(t, "Case", "sensitive");
    expect(t, "case", "no-at-sign");                       /* i toggled off */
    expect(t, "nothing-here", "no-at-sign");
    expect(t, "admin@x.org", "org-admin");
    expect(t, "bob@x.org", "org-b-not-x");
    expect(t, "xb@x.org", "org-any");
    expect(t, "b@x.net", NULL);
    expect(t, "hash@x", "other-delimiter");
    expect(t, "multi@x", "part1 part2");
    table_close(&t);
}

static void test_pcre_bad_lines_are_warned_and_skipped(void **state)
{
    struct fixture *f = *state;
    static const char text[] =
        "    /g/        orphan continuation\n"
        "/unclosed      r1\n"
        "/a/q           r2\n"
        "/(b/           r3\n"
        "/c/\n"
        "/(d)/          $2\n"
        "!/e/           $1\n"
        "/f/            $x\n"
        "endif\n"
        "if /(/\n"
        "/^h$/          inside-bad-if\n"
        "endif\n"
        "if /^k/\n"
        "/^k$/          k\n"
        "/^ok$/         ok\n";
    struct table *t = table_pcre_open_string("bad", text, strlen(text));
    expect(t, "ok", NULL);   /* inside the unclosed "if /^k/" */
    expect(t, "k", "k");
    expect(t, "a", NULL);
    expect(t, "c", NULL);
    expect(t, "d", NULL);
    expect(t, "x", NULL);    /* !/e/ would match everything if kept */
    expect(t, "h", NULL);    /* the block of an if that did not compile */
    assert_true(log_has(f, "bad:1: logical line must not start with whitespace"));
    assert_true(log_has(f, "bad:2: missing closing regex delimiter"));
    assert_true(log_has(f, "bad:3: unknown regex flag"));
    assert_true(log_has(f, "bad:4: regex error"));
    assert_true(log_has(f, "bad:5: missing result"));
    assert_true(log_has(f, "bad:6: $n in the result refers to a group"));
    assert_true(log_has(f, "bad:7: $n in the result of a negated"));
    assert_true(log_has(f, "bad:8: '$' not followed"));
    assert_true(log_has(f, "bad:9: endif without if"));
    assert_true(log_has(f, "bad:10: regex error"));
    assert_true(log_has(f, "bad:13: if without endif"));
    table_close(&t);
}

static void test_pcre_flags_x_s_m(void **state)
{
    (void)state;
    static const char text[] =
        "/^ a b c $/x   extended\n"
        "/^s.t$/s       dotall\n"
        "/^line2$/m     multiline\n"
        "/^(a+?)/U      greedy-$1\n";
    struct table *t = table_pcre_open_string("flags", text, strlen(text));
    expect(t, "abc", "extended");
    expect(t, "s\nt", "dotall");
    expect(t, "line1\nline2", "multiline");
    expect(t, "aaa", "greedy-aaa");     /* U inverts the lazy +? */
    table_close(&t);
}

static void test_pcre_runaway_match_is_an_error_not_a_hang(void **state)
{
    (void)state;
    static const char text[] = "/^(a|a)+$/ slow\n";
    struct table *t = table_pcre_open_string("slow", text, strlen(text));
    char key[64];
    memset(key, 'a', 40);
    key[40] = 'b';
    key[41] = '\0';
    char *value = NULL;
    const char *err = NULL;
    assert_int_equal(table_lookup(t, key, &value, &err), TABLE_ERROR);
    assert_non_null(strstr(err, "limit"));
    table_close(&t);
}

/* Defined in lib/table_pcre.c for the tests only. */
size_t table_pcre_jit_count(struct table *table);

static void test_pcre_regexes_are_jit_compiled_and_match_as_before(void **state)
{
    (void)state;
    static const char text[] = "/^subject:.*viagra/s spam\n"
                               "/^x-(\\w+):/ x-$1\n"
                               "if /^a/\n"
                               "/b$/ ab\n"
                               "endif\n";
    struct table *t = table_pcre_open_string("jit", text, strlen(text));
    uint32_t jit = 0;
    if (pcre2_config(PCRE2_CONFIG_JIT, &jit) >= 0 && jit)
        assert_int_equal(table_pcre_jit_count(t), 4);
    else
        assert_int_equal(table_pcre_jit_count(t), 0);
    expect(t, "Subject: cheap\n\tViagra now", "spam");
    expect(t, "X-Mailer: foo", "x-Mailer");
    expect(t, "ab", "ab");
    expect(t, "b", NULL);
    /* A long folded key: still a plain miss, well inside the JIT stack. */
    char key[TABLE_KEY_MAX + 1];
    memcpy(key, "Subject: ", 9);
    for (size_t i = 9; i < TABLE_KEY_MAX; i++)
        key[i] = (i % 80 == 0) ? '\n' : (i % 80 == 1) ? '\t' : 'x';
    key[TABLE_KEY_MAX] = '\0';
    expect(t, key, NULL);
    table_close(&t);
}

static void test_pcre_file_is_read_at_open(void **state)
{
    struct fixture *f = *state;
    char *path = path_in(f, "checks.pcre");
    write_file(path, "/^a(.)$/ got-$1\n");
    char *spec = xasprintf("pcre:%s", path);
    struct table *t = open_ok(spec);
    write_file(path, "/^a(.)$/ changed\n");
    expect(t, "ab", "got-b");
    table_close(&t);
    free(spec);

    const char *err = NULL;
    spec = xasprintf("pcre:%s/none", f->dir);
    assert_null(table_open(spec, &err));
    assert_non_null(strstr(err, "cannot read"));
    free(spec);
    free(path);
}

static void test_pcre_every_prefix_of_a_table_parses(void **state)
{
    (void)state;
    size_t len = strlen(pcre_sample);
    log_set_file("/dev/null");
    for (size_t n = 0; n <= len; n++) {
        struct table *t = table_pcre_open_string("prefix", pcre_sample, n);
        char *value = NULL;
        const char *err = NULL;
        enum table_result res = table_lookup(t, "bob@x.org", &value, &err);
        assert_true(res == TABLE_FOUND || res == TABLE_NOTFOUND);
        free(value);
        table_close(&t);
    }
}

/*
 * inline, static, specs, lists
 */

static void test_inline_bare_and_braced_elements(void **state)
{
    (void)state;
    struct table *t = open_ok("inline:{ a=1, B=2 c=3,{ d = four five, six }}");
    expect(t, "a", "1");
    expect(t, "b", "2");
    expect(t, "C", "3");
    expect(t, "d", "four five, six");
    expect(t, "z", NULL);
    table_close(&t);
    t = open_ok("inline:{}");
    expect(t, "a", NULL);
    table_close(&t);
    t = open_ok("inline:{ a=1, a=2 }");
    expect(t, "a", "1");
    table_close(&t);
}

static void test_inline_malformed_specs_fail(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "inline:a=1", "inline:{a=1", "inline:{a}", "inline:{=1}", "inline:{a=}",
        "inline:{a=1} x", "inline:{a{=1}", "inline:{ { a = 1 }",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *err = NULL;
        struct table *t = table_open(bad[i], &err);
        if (t != NULL)
            fail_msg("%s: accepted", bad[i]);
        assert_non_null(err);
    }
}

static void test_static_maps_every_key(void **state)
{
    (void)state;
    struct table *t = open_ok("static:OK");
    expect(t, "anything", "OK");
    table_close(&t);
    t = open_ok("static:{ value with spaces }");
    expect(t, "x", "value with spaces");
    table_close(&t);
    t = open_ok("static:{}");
    expect(t, "x", "");
    table_close(&t);
    const char *err = NULL;
    assert_null(table_open("static:", &err));
    assert_null(table_open("static:{x", &err));
}

static void test_open_rejects_bad_specs(void **state)
{
    (void)state;
    const char *err = NULL;
    assert_null(table_open("nocolon", &err));
    assert_non_null(strstr(err, "type:name"));
    assert_null(table_open(":x", &err));
    assert_null(table_open("hash:/etc/aliases", &err));
    assert_non_null(strstr(err, "unsupported table type"));
    assert_null(table_open("pcre:", &err));
}

static void test_list_searches_in_order_first_hit_wins(void **state)
{
    struct fixture *f = *state;
    char *src = path_in(f, "map");
    const char *err = NULL;
    write_file(src, "a from-lmdb\n");
    assert_int_equal(table_lmdb_build(src, 0, &err), 1);
    char *value = xasprintf("inline:{ a=from-inline, { b = from inline } },lmdb:%s "
                            "static:{ the default }",
                            src);
    struct table_list *list = table_list_open(value, &err);
    assert_non_null(list);
    char *v = NULL;
    assert_int_equal(table_list_lookup(list, "a", &v, &err), TABLE_FOUND);
    assert_string_equal(v, "from-inline");
    free(v);
    assert_int_equal(table_list_lookup(list, "b", &v, &err), TABLE_FOUND);
    assert_string_equal(v, "from inline");
    free(v);
    assert_int_equal(table_list_lookup(list, "c", &v, &err), TABLE_FOUND);
    assert_string_equal(v, "the default");
    free(v);
    table_list_close(&list);
    assert_null(list);
    free(value);

    /* An error stops the search rather than falling through. */
    value = xasprintf("lmdb:%s/missing, static:x", f->dir);
    list = table_list_open(value, &err);
    assert_non_null(list);
    assert_int_equal(table_list_lookup(list, "a", &v, &err), TABLE_ERROR);
    assert_null(v);
    table_list_close(&list);
    free(value);
    free(src);
}

static void test_list_empty_finds_nothing_and_bad_member_fails(void **state)
{
    (void)state;
    const char *err = NULL;
    char *v = NULL;
    struct table_list *list = table_list_open("  , ", &err);
    assert_non_null(list);
    assert_int_equal(table_list_lookup(list, "a", &v, &err), TABLE_NOTFOUND);
    table_list_close(&list);
    list = table_list_open(NULL, &err);
    assert_non_null(list);
    table_list_close(&list);

    assert_null(table_list_open("static:x, bogus", &err));
    assert_non_null(strstr(err, "bogus"));
    assert_null(table_list_open("inline:{ a=1", &err));
    assert_null(table_list_open("static:x}", &err));
}

int main(void)
{
    log_init("test-table");
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_lmdb_postmap_format_builds_with_comments_continuations_and_case_folding),
        T(test_lmdb_alias_format_builds_quoted_keys_and_continuations),
        T(test_lmdb_duplicate_key_keeps_first_and_warns),
        T(test_lmdb_empty_source_builds_empty_table),
        T(test_lmdb_missing_files_are_errors),
        T(test_lmdb_key_longer_than_lmdb_limit_is_skipped),
        T(test_lmdb_rebuild_is_seen_by_an_open_table),
        T(test_lmdb_table_opened_before_fork_works_in_child),
        T(test_lmdb_map_grows_past_the_initial_size),
        T(test_lmdb_foreach_lists_entries_in_key_order),
        T(test_lmdb_update_adds_replaces_and_deletes_keeping_other_lines),
        T(test_lmdb_update_alias_format_quotes_keys_and_guesses_format),
        T(test_lmdb_update_rejects_bad_keys_and_values),
        T(test_pcre_captures_flags_negation_and_if_blocks),
        T(test_pcre_bad_lines_are_warned_and_skipped),
        T(test_pcre_flags_x_s_m),
        T(test_pcre_runaway_match_is_an_error_not_a_hang),
        T(test_pcre_regexes_are_jit_compiled_and_match_as_before),
        T(test_pcre_file_is_read_at_open),
        T(test_pcre_every_prefix_of_a_table_parses),
        T(test_inline_bare_and_braced_elements),
        T(test_inline_malformed_specs_fail),
        T(test_static_maps_every_key),
        T(test_open_rejects_bad_specs),
        T(test_list_searches_in_order_first_hit_wins),
        T(test_list_empty_finds_nothing_and_bad_member_fails),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
