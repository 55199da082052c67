/*
 * NAME
 *	test-table-jail - unit tests for the chroot registry of lib/table.c
 * DESCRIPTION
 *	table_jail_preload() is one-way for a process, so these tests live
 *	in their own binary and run as one sequence: tables named by
 *	parameters are opened before the "chroot" (simulated by moving the
 *	files away from their paths), keep answering afterwards, and a
 *	rebuilt lmdb file is noticed (table_jail_changed) but not read.
 */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "table.h"
#include "xalloc.h"

static char dir[64];

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static void expect(struct table *t, const char *key, const char *want)
{
    char *value = NULL;
    const char *err = NULL;
    enum table_result res = table_lookup(t, key, &value, &err);
    if (want == NULL) {
        assert_int_equal(res, TABLE_NOTFOUND);
        return;
    }
    if (res != TABLE_FOUND)
        fail_msg("%s: %s: %s", table_spec(t), key, err ? err : "not found");
    assert_string_equal(value, want);
    free(value);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void test_tables_survive_the_jail(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test-table-jail.XXXXXX");
    assert_non_null(mkdtemp(dir));
    char *logpath = xasprintf("%s/log", dir);
    log_set_file(logpath);
    char *access = xasprintf("%s/access", dir);
    char *extra = xasprintf("%s/extra", dir);
    char *pcre = xasprintf("%s/checks.pcre", dir);
    const char *error = NULL;
    write_file(access, "bad@example.test REJECT old text\n");
    write_file(extra, "key value\n");
    write_file(pcre, "/^Subject: spam/ REJECT no spam\n");
    assert_int_equal(table_lmdb_build(access, 0, &error), 1);
    assert_int_equal(table_lmdb_build(extra, 0, &error), 1);

    /* A declared parameter with a restriction list, a declared table
       parameter, and a name main.cf sets that no daemon declares. */
    char *text = xasprintf("smtpd_sender_restrictions = check_sender_access lmdb:%s, "
                           "check_sender_access inline:{ {a@b.test = OK} }\n"
                           "header_checks = pcre:%s\n"
                           "my_class = lmdb:%s\n",
                           access, pcre, extra);
    assert_int_equal(config_parse_text(text, strlen(text), "test"), 0);
    free(text);

    table_jail_preload();
    char *access_spec = xasprintf("lmdb:%s", access);
    char *pcre_spec = xasprintf("pcre:%s", pcre);
    char *extra_spec = xasprintf("lmdb:%s", extra);
    /* Opened before the seal, as a daemon's on_init does. */
    struct table *early = table_open(access_spec, &error);
    assert_non_null(early);
    assert_string_equal(table_spec(early), access_spec);
    table_jail_seal();
    assert_int_equal(table_jail_changed(), 0);

    /* "Chroot": the files are no longer reachable by their paths. */
    char *hidden = xasprintf("%s/hidden", dir);
    assert_int_equal(mkdir(hidden, 0700), 0);
    char *moved[3];
    const char *names[3] = {"access.lmdb", "extra.lmdb", "checks.pcre"};
    for (int i = 0; i < 3; i++) {
        char *from = xasprintf("%s/%s", dir, names[i]);
        moved[i] = xasprintf("%s/%s", hidden, names[i]);
        assert_int_equal(rename(from, moved[i]), 0);
        free(from);
    }

    expect(early, "bad@example.test", "REJECT old text");
    /* Lazy opens after the chroot (resolve.c, transport.c) share them. */
    struct table *late = table_open(access_spec, &error);
    assert_non_null(late);
    expect(late, "BAD@example.test", "REJECT old text");
    table_close(&late);
    assert_null(late);
    expect(early, "other@example.test", NULL);   /* closing a handle kept the table */
    struct table_list *list = table_list_open(extra_spec, &error);
    assert_non_null(list);
    char *value = NULL;
    assert_int_equal(table_list_lookup(list, "key", &value, &error), TABLE_FOUND);
    assert_string_equal(value, "value");
    free(value);
    table_list_close(&list);
    struct table *checks = table_open(pcre_spec, &error);
    assert_non_null(checks);
    expect(checks, "Subject: spam offer", "REJECT no spam");
    table_close(&checks);
    /* inline: needs no file and is opened as usual. */
    struct table *in = table_open("inline:{ {x = y} }", &error);
    assert_non_null(in);
    expect(in, "x", "y");
    table_close(&in);
    /* A file-backed table no parameter named fails like a missing file. */
    char *stranger = xasprintf("lmdb:%s/never", dir);
    struct table *t = table_open(stranger, &error);
    assert_non_null(t);
    value = NULL;
    assert_int_equal(table_lookup(t, "k", &value, &error), TABLE_ERROR);
    table_close(&t);
    free(stranger);

    /* postmap replaces the file: noticed (at most once a second), but
       the process keeps the contents it can still read. */
    write_file(access, "bad@example.test REJECT new text\n");
    assert_int_equal(table_lmdb_build(access, 0, &error), 1);
    char *rebuilt = xasprintf("%s/access.lmdb", dir);
    assert_int_equal(rename(rebuilt, moved[0]), 0);   /* over the open file */
    free(rebuilt);
    usleep(1100 * 1000);
    expect(early, "bad@example.test", "REJECT old text");
    assert_int_equal(table_jail_changed(), 1);
    FILE *fp = fopen(logpath, "r");
    assert_non_null(fp);
    char line[4096];
    int warned = 0;
    while (fgets(line, sizeof(line), fp) != NULL)
        if (strstr(line, "was rebuilt; this chrooted process can only read the old file"))
            warned++;
    fclose(fp);
    assert_int_equal(warned, 1);

    table_close(&early);
    for (int i = 0; i < 3; i++)
        free(moved[i]);
    free(hidden);
    free(access_spec);
    free(pcre_spec);
    free(extra_spec);
    free(access);
    free(extra);
    free(pcre);
    log_set_file("");
    free(logpath);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    config_free_all();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_survive_the_jail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
