/*
 * NAME
 *	fuzz-queue-file - libFuzzer target for the strict queue file parser
 * DESCRIPTION
 *	Queue files are disk input that qmgr, postqueue and postcat parse;
 *	a corrupt file must give an error, never a crash. On success the
 *	result must be self-consistent (offsets inside the image).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct queue_file *qf = NULL;
    char *error = NULL;
    if (queue_file_parse(data, size, "fuzz/0123456789ABCDEF0", &qf, &error) == 0) {
        if (qf->message_offset < 0 || (size_t)(qf->message_offset + qf->message_len) + 2 != size)
            abort();
        for (size_t i = 0; i < qf->rcpt_count; i++) {
            char s = (char)data[qf->rcpts[i].status_offset];
            if ((s == 'D') != (qf->rcpts[i].done != 0) || (s != 'D' && s != '-'))
                abort();
        }
        (void)queue_file_attr(qf, "client");
        (void)queue_file_pending(qf);
        queue_file_free(&qf);
    } else {
        if (error == NULL || qf != NULL)
            abort();
        free(error);
    }
    return 0;
}
