/*
 * NAME
 *	fuzz-attr - libFuzzer target for the inter-daemon message decoder
 * DESCRIPTION
 *	Decodes every frame in the input (as a stream, so pipelined frames
 *	are covered) and checks that each decoded message re-encodes to
 *	exactly the bytes it came from: the decoder accepts only what the
 *	encoder produces.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attr.h"
#include "buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf in, out;
    struct attr_msg msg;
    buf_init(&in, 0);
    buf_init(&out, 0);
    attr_msg_init(&msg);
    buf_append(&in, data, size);
    for (;;) {
        const char *error = NULL;
        size_t before = in.len;
        const char *frame_start = (const char *)data + (size - before);
        enum attr_status st = attr_msg_decode(&in, &msg, &error);
        if (st == ATTR_OK) {
            size_t used = before - in.len;
            buf_reset(&out);
            attr_msg_encode(&msg, &out);
            if (out.len != used || memcmp(out.data, frame_start, used) != 0)
                abort();
            continue;
        }
        if (st == ATTR_BAD && error == NULL)
            abort();
        break;
    }
    attr_msg_clear(&msg);
    buf_free(&in);
    buf_free(&out);
    return 0;
}
