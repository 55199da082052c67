/* Unit tests for lib/safe_file: durable replace, bounded whole-file reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>
#include <cmocka.h>

#include "safe_file.h"
#include "xalloc.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/test-safe-file.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char *cmd = xasprintf("rm -rf %s", dir);
    int r = system(cmd);
    free(cmd);
    return r;
}

static size_t entries(const char *path)
{
    DIR *d = opendir(path);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void replace_writes_content_mode_and_leaves_no_temp_file(void **state)
{
    char *path = xasprintf("%s/file", dir);
    const char *step = NULL;
    assert_int_equal(safe_file_replace(path, "first\n", 6, 0600, (uid_t)-1, (gid_t)-1, &step), 0);
    assert_int_equal(safe_file_replace(path, "second\n", 7, 0640, (uid_t)-1, (gid_t)-1, &step), 0);
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(safe_read_file(path, &b, 100), 0);
    assert_string_equal(b.data, "second\n");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(entries(dir), 1);
    buf_free(&b);
    free(path);
}

static void replace_in_missing_directory_names_the_step(void **state)
{
    char *path = xasprintf("%s/no/such/file", dir);
    const char *step = NULL;
    assert_int_equal(safe_file_replace(path, "x", 1, 0600, (uid_t)-1, (gid_t)-1, &step), -1);
    assert_int_equal(errno, ENOENT);
    assert_string_equal(step, "create");
    free(path);
}

static void read_refuses_files_over_the_limit(void **state)
{
    char *path = xasprintf("%s/big", dir);
    const char *step;
    char data[1000];
    memset(data, 'a', sizeof(data));
    assert_int_equal(safe_file_replace(path, data, sizeof(data), 0600, (uid_t)-1, (gid_t)-1,
                                       &step), 0);
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(safe_read_file(path, &b, 999), -1);
    assert_int_equal(errno, EFBIG);
    buf_reset(&b);
    assert_int_equal(safe_read_file(path, &b, 1000), 0);
    assert_int_equal(b.len, 1000);
    buf_free(&b);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replace_writes_content_mode_and_leaves_no_temp_file),
        cmocka_unit_test(replace_in_missing_directory_names_the_step),
        cmocka_unit_test(read_refuses_files_over_the_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
