/*
 * NAME
 *	fuzz-pcre-table - libFuzzer target for the pcre: table parser
 * DESCRIPTION
 *	Parses the input as a pcre table (table_pcre_open_string) and looks
 *	up a few fixed keys plus one taken from the input, so the if/endif
 *	evaluation and $n substitution run on whatever the parser accepted.
 *	Warnings go to /dev/null.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "table.h"
#include "xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int initialized;
    if (!initialized) {
        log_init("fuzz-pcre-table");
        log_set_file("/dev/null");
        initialized = 1;
    }
    static const char *const keys[] = {
        "", "a", "user@example.com", "Bob@Example.ORG", "user-abc-42", "aaaaaaaaaaaaaaaab",
        "line1\nline2",
    };
    struct table *t = table_pcre_open_string("fuzz", (const char *)data, size);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char *value = NULL;
        const char *error = NULL;
        enum table_result res = table_lookup(t, keys[i], &value, &error);
        if ((res == TABLE_FOUND) != (value != NULL) || (res == TABLE_ERROR && error == NULL))
            abort();
        free(value);
    }
    /* A key from the input: its first 64 bytes up to a newline. */
    size_t n = 0;
    while (n < size && n < 64 && data[n] != '\n' && data[n] != '\0')
        n++;
    char *key = xstrndup((const char *)data, n);
    char *value = NULL;
    const char *error = NULL;
    table_lookup(t, key, &value, &error);
    free(value);
    free(key);
    table_close(&t);
    return 0;
}
