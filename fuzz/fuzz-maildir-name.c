/* libFuzzer target for lib/mailbox_index.c's pure parts: the Maildir
   file-name parser and flag normalizer, and the CRLF/dot-line counter
   (fed through a memfd and checked against a byte-by-byte count). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mailbox_index.h"

static int is_letter(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static void check_name(const char *name, size_t size)
{
    struct maildir_name r;
    if (mailbox_index_parse_name(name, size, &r) < 0)
        return;
    if (size == 0 || size > 255 || name[0] == '.' || r.base_len == 0 || r.base_len > size)
        abort();
    if (memchr(name, '/', size) || memchr(name, '\0', size))
        abort();
    for (size_t i = 0; i + 3 <= r.base_len; i++)
        if (memcmp(name + i, ":2,", 3) == 0)
            abort(); /* the base ends at the first ":2," */
    if (r.has_info != (r.base_len < size))
        abort();
    size_t n = strlen(r.flags);
    if (n >= MAILBOX_FLAGS_SIZE)
        abort();
    for (size_t i = 0; i < n; i++)
        if (!is_letter(r.flags[i]) || (i > 0 && r.flags[i - 1] >= r.flags[i]))
            abort();
    if (r.time != 0 && (name[0] < '0' || name[0] > '9'))
        abort();
    char norm[MAILBOX_FLAGS_SIZE];
    if (mailbox_index_normalize_flags(r.flags, norm) < 0 || strcmp(norm, r.flags) != 0)
        abort();
}

static void check_counts(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz", 0);
    if (fd < 0)
        return;
    if (size > 0 && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return;
    }
    lseek(fd, 0, SEEK_SET);
    struct mailbox_msg_counts c;
    if (mailbox_index_count_fd(fd, &c) < 0)
        abort();
    close(fd);
    uint64_t bare = 0, dots = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
            bare++;
        if (data[i] == '.' && (i == 0 || data[i - 1] == '\n'))
            dots++;
    }
    if (c.size != size || c.crlf_size != size + bare || c.dot_lines != dots ||
        c.final_newline != (size == 0 || data[size - 1] == '\n'))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_name((const char *)data, size);
    char *copy = malloc(size + 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    char norm[MAILBOX_FLAGS_SIZE];
    if (mailbox_index_normalize_flags(copy, norm) == 0) {
        for (size_t i = 0; norm[i]; i++)
            if (!is_letter(norm[i]) || (i > 0 && norm[i - 1] >= norm[i]))
                abort();
    }
    free(copy);
    check_counts(data, size);
    return 0;
}
