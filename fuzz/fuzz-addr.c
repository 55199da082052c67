/* libFuzzer target for lib/addr.c: addr_parse_path with every flag
   combination, then split/normalize on what it accepted. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int flags = 0; flags < 4; flags++) {
        char *address = NULL;
        size_t consumed = 0;
        const char *error = NULL;
        if (addr_parse_path((const char *)data, size, flags & 1, flags & 2, &address, &consumed,
                            &error) == 0) {
            if (consumed > size || consumed < 2 || data[consumed - 1] != '>')
                abort();
            if (strlen(address) + 2 > consumed)
                abort();
            if (!(flags & 2) && addr_has_8bit(address))
                abort();
            char *local, *domain;
            if (addr_split(address, &local, &domain) == 0) {
                free(local);
                free(domain);
            }
            char *norm = addr_normalize(address);
            if (strlen(norm) != strlen(address))
                abort();
            free(norm);
            free(address);
        } else if (error == NULL) {
            abort();
        }
    }
    return 0;
}
