/* Unit tests for lib/maildir_keywords.c: parsing dovecot-keywords (good
   lines, bad lines, duplicates, names that are no atoms), lookups both
   ways (case-insensitive, the first spelling kept), adding keywords
   (lowest free number, the file's exact text, 26 and no more, two
   handles on one folder), refresh after another writer. */
#include <errno.h>
#include <fcntl.h>
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
#include "maildir_keywords.h"
#include "safe_file.h"
#include "xalloc.h"
#include "maildir_test.h"

static int setup(void **state)
{
    return fixture_setup(state, "test-maildir-keywords", 0);
}

static int teardown(void **state)
{
    return fixture_teardown(state);
}

static char *file_text(const char *dir)
{
    char *path = xasprintf("%s/%s", dir, MAILDIR_KEYWORDS_FILE);
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(safe_read_file(path, &b, 1 << 20), 0);
    buf_append_char(&b, '\0');
    free(path);
    return buf_steal(&b);
}

static void write_text(const char *dir, const char *text)
{
    char *path = xasprintf("%s/%s", dir, MAILDIR_KEYWORDS_FILE);
    const char *step;
    assert_int_equal(safe_file_replace(path, text, strlen(text), 0600, (uid_t)-1, (gid_t)-1,
                                       &step),
                     0);
    free(path);
}

static void test_parse(void **state)
{
    (void)state;
    struct maildir_keywords *kw = maildir_keywords_new("/nonexistent");
    assert_int_equal(maildir_keywords_usable(kw), 0);
    assert_null(maildir_keywords_name(kw, 'a'));
    unsigned g0 = maildir_keywords_generation(kw);
    static const char text[] =
        "0 $Junk\n"
        "2 NonJunk\r\n"      /* CR tolerated */
        "2 Other\n"          /* a second line for 2: the first counts */
        "26 TooHigh\n"       /* out of range */
        "07 Zero\n"          /* leading zero */
        "x Bad\n"
        "3\n"                /* no name */
        "4 \n"               /* empty name */
        "5 two words\n"      /* no atom: keeps 5, not usable */
        "6 $JUNK\n"          /* the same name in another case: not usable */
        "25 $Forwarded";     /* no final newline */
    maildir_keywords_parse(kw, text, sizeof(text) - 1);
    assert_int_not_equal(maildir_keywords_generation(kw), g0);
    assert_string_equal(maildir_keywords_name(kw, 'a'), "$Junk");
    assert_null(maildir_keywords_name(kw, 'b'));
    assert_string_equal(maildir_keywords_name(kw, 'c'), "NonJunk");
    assert_null(maildir_keywords_name(kw, 'd'));
    assert_null(maildir_keywords_name(kw, 'f'));
    assert_null(maildir_keywords_name(kw, 'g'));
    assert_null(maildir_keywords_name(kw, 'h'));
    assert_string_equal(maildir_keywords_name(kw, 'z'), "$Forwarded");
    assert_null(maildir_keywords_name(kw, 'A'));
    assert_null(maildir_keywords_name(kw, 0));
    assert_int_equal(maildir_keywords_usable(kw), (1u << 0) | (1u << 2) | (1u << 25));
    /* 0, 2, 5, 6, 25 are taken. */
    assert_int_equal(maildir_keywords_free_count(kw), 21);
    assert_int_equal(maildir_keywords_letter(kw, "$junk"), 'a');
    assert_int_equal(maildir_keywords_letter(kw, "NONJUNK"), 'c');
    assert_int_equal(maildir_keywords_letter(kw, "two words"), 0);
    assert_int_equal(maildir_keywords_letter(kw, "Other"), 0);
    /* The same content again is no change. */
    unsigned g1 = maildir_keywords_generation(kw);
    maildir_keywords_parse(kw, text, sizeof(text) - 1);
    assert_int_equal(maildir_keywords_generation(kw), g1);
    maildir_keywords_parse(kw, "", 0);
    assert_int_not_equal(maildir_keywords_generation(kw), g1);
    assert_int_equal(maildir_keywords_usable(kw), 0);
    /* NULL maps answer "none". */
    assert_null(maildir_keywords_name(NULL, 'a'));
    assert_int_equal(maildir_keywords_letter(NULL, "x"), 0);
    assert_int_equal(maildir_keywords_usable(NULL), 0);
    maildir_keywords_free(&kw);
    assert_null(kw);
    maildir_keywords_free(&kw);
}

static void test_valid(void **state)
{
    (void)state;
    assert_true(maildir_keywords_valid("$Forwarded"));
    assert_true(maildir_keywords_valid("NIL"));
    assert_true(maildir_keywords_valid("a.b-c_d+e[1"));
    assert_false(maildir_keywords_valid(""));
    assert_false(maildir_keywords_valid("\\Seen"));
    assert_false(maildir_keywords_valid("a b"));
    assert_false(maildir_keywords_valid("a]"));
    assert_false(maildir_keywords_valid("a(b"));
    assert_false(maildir_keywords_valid("a*"));
    assert_false(maildir_keywords_valid("a%"));
    assert_false(maildir_keywords_valid("a\""));
    assert_false(maildir_keywords_valid("a{"));
    assert_false(maildir_keywords_valid("\xc3\xa9t\xc3\xa9"));
    assert_false(maildir_keywords_valid("a\tb"));
    char longname[MAILDIR_KEYWORD_NAME_MAX + 2];
    memset(longname, 'k', sizeof(longname));
    longname[MAILDIR_KEYWORD_NAME_MAX] = '\0';
    assert_true(maildir_keywords_valid(longname));
    longname[MAILDIR_KEYWORD_NAME_MAX] = 'k';
    longname[MAILDIR_KEYWORD_NAME_MAX + 1] = '\0';
    assert_false(maildir_keywords_valid(longname));
}

static void test_add_writes_dovecot_format(void **state)
{
    struct fixture *f = *state;
    struct maildir_keywords *kw = maildir_keywords_new(f->dir);
    assert_int_equal(maildir_keywords_refresh(kw), 0);   /* no file: empty */
    assert_int_equal(maildir_keywords_free_count(kw), 26);
    char l = 0;
    assert_int_equal(maildir_keywords_add(kw, "$Forwarded", &l), 0);
    assert_int_equal(l, 'a');
    assert_int_equal(maildir_keywords_add(kw, "$Junk", &l), 0);
    assert_int_equal(l, 'b');
    /* Known in any case: the first spelling stays. */
    assert_int_equal(maildir_keywords_add(kw, "$FORWARDED", &l), 0);
    assert_int_equal(l, 'a');
    char *text = file_text(f->dir);
    assert_string_equal(text, "0 $Forwarded\n1 $Junk\n");
    free(text);
    assert_int_equal(maildir_keywords_add(kw, "bad name", &l), -1);
    assert_int_equal(errno, EINVAL);
    struct stat st;
    char *path = xasprintf("%s/%s", f->dir, MAILDIR_KEYWORDS_FILE);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(path);
    maildir_keywords_free(&kw);
}

static void test_add_takes_lowest_free_and_keeps_others(void **state)
{
    struct fixture *f = *state;
    /* Another tool's file: gaps, a name we cannot use, a bad line. */
    write_text(f->dir, "1 NonJunk\n3 has space\ngarbage\n");
    struct maildir_keywords *kw = maildir_keywords_new(f->dir);
    char l = 0;
    assert_int_equal(maildir_keywords_add(kw, "$Label1", &l), 0);
    assert_int_equal(l, 'a');
    assert_int_equal(maildir_keywords_add(kw, "$Label2", &l), 0);
    assert_int_equal(l, 'c');
    assert_int_equal(maildir_keywords_add(kw, "$Label3", &l), 0);
    assert_int_equal(l, 'e');   /* 3 stays taken by the unusable name */
    char *text = file_text(f->dir);
    assert_string_equal(text,
                        "0 $Label1\n1 NonJunk\n2 $Label2\n3 has space\n4 $Label3\n");
    free(text);
    maildir_keywords_free(&kw);
}

static void test_limit_26(void **state)
{
    struct fixture *f = *state;
    struct maildir_keywords *kw = maildir_keywords_new(f->dir);
    char l = 0;
    for (int i = 0; i < MAILDIR_KEYWORDS_MAX; i++) {
        char name[16];
        snprintf(name, sizeof(name), "kw%d", i);
        assert_int_equal(maildir_keywords_add(kw, name, &l), 0);
        assert_int_equal(l, 'a' + i);
    }
    assert_int_equal(maildir_keywords_free_count(kw), 0);
    assert_int_equal(maildir_keywords_add(kw, "kw26", &l), 1);
    /* Known names still resolve when full. */
    assert_int_equal(maildir_keywords_add(kw, "KW25", &l), 0);
    assert_int_equal(l, 'z');
    char *text = file_text(f->dir);
    assert_non_null(strstr(text, "25 kw25\n"));
    assert_null(strstr(text, "kw26"));
    free(text);
    maildir_keywords_free(&kw);
}

static void test_two_handles_and_refresh(void **state)
{
    struct fixture *f = *state;
    struct maildir_keywords *a = maildir_keywords_new(f->dir);
    struct maildir_keywords *b = maildir_keywords_new(f->dir);
    assert_int_equal(maildir_keywords_refresh(a), 0);
    assert_int_equal(maildir_keywords_refresh(b), 0);
    char l = 0;
    assert_int_equal(maildir_keywords_add(a, "One", &l), 0);
    assert_int_equal(l, 'a');
    /* b has not looked yet. */
    assert_int_equal(maildir_keywords_letter(b, "one"), 0);
    unsigned g = maildir_keywords_generation(b);
    assert_int_equal(maildir_keywords_refresh(b), 0);
    assert_int_not_equal(maildir_keywords_generation(b), g);
    assert_int_equal(maildir_keywords_letter(b, "one"), 'a');
    /* b's add sees a's names first (it reads the file again). */
    assert_int_equal(maildir_keywords_add(a, "Two", &l), 0);
    assert_int_equal(maildir_keywords_add(b, "Three", &l), 0);
    assert_int_equal(l, 'c');
    g = maildir_keywords_generation(b);
    assert_int_equal(maildir_keywords_refresh(b), 0);   /* unchanged file */
    assert_int_equal(maildir_keywords_generation(b), g);
    assert_int_equal(maildir_keywords_refresh(a), 0);
    assert_string_equal(maildir_keywords_name(a, 'c'), "Three");
    /* The file removed: an empty map. */
    char *path = xasprintf("%s/%s", f->dir, MAILDIR_KEYWORDS_FILE);
    assert_int_equal(unlink(path), 0);
    free(path);
    assert_int_equal(maildir_keywords_refresh(a), 0);
    assert_int_equal(maildir_keywords_usable(a), 0);
    maildir_keywords_free(&a);
    maildir_keywords_free(&b);
}

static void test_unreadable_keeps_map(void **state)
{
    struct fixture *f = *state;
    write_text(f->dir, "0 Keep\n");
    struct maildir_keywords *kw = maildir_keywords_new(f->dir);
    assert_int_equal(maildir_keywords_refresh(kw), 0);
    /* A directory in its place cannot be read as the map. */
    char *path = xasprintf("%s/%s", f->dir, MAILDIR_KEYWORDS_FILE);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(maildir_keywords_refresh(kw), -1);
    assert_string_equal(maildir_keywords_name(kw, 'a'), "Keep");
    char l;
    assert_int_equal(maildir_keywords_add(kw, "New", &l), -1);
    assert_int_equal(rmdir(path), 0);
    free(path);
    maildir_keywords_free(&kw);
}

static void test_parse_limits(void **state)
{
    (void)state;
    struct maildir_keywords *kw = maildir_keywords_new("/nonexistent");
    /* A name of the maximal length is taken, a longer one is not. */
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "0 ");
    for (int i = 0; i < MAILDIR_KEYWORD_NAME_MAX; i++)
        buf_append_char(&b, 'n');
    buf_append_str(&b, "\n1 ");
    for (int i = 0; i < MAILDIR_KEYWORD_NAME_MAX + 1; i++)
        buf_append_char(&b, 'm');
    buf_append(&b, "\n2 a\0b\n", 7);
    maildir_keywords_parse(kw, b.data, b.len);
    assert_non_null(maildir_keywords_name(kw, 'a'));
    assert_int_equal(strlen(maildir_keywords_name(kw, 'a')), MAILDIR_KEYWORD_NAME_MAX);
    assert_null(maildir_keywords_name(kw, 'b'));
    assert_null(maildir_keywords_name(kw, 'c'));   /* NUL is a control byte */
    assert_int_equal(maildir_keywords_free_count(kw), 25);
    buf_free(&b);
    maildir_keywords_free(&kw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test_setup_teardown(test_add_writes_dovecot_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_takes_lowest_free_and_keeps_others, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_limit_26, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles_and_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_keeps_map, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
