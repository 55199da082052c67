/* libFuzzer target for lib/mime*.c: the input is a whole message (seeds
   are plain messages). Its length picks the limits, so small depth,
   part, parameter and field limits get exercised too. Checks: every
   part's ranges lie inside the buffer and inside its parent, the CRLF
   sizes and line counts match a recount, ENVELOPE / BODY /
   BODYSTRUCTURE are well-formed IMAP (lists, NIL, numbers, quoted
   strings without CR/LF/8-bit, exact literals), every part is found
   again by its own section number, and section strings made from the
   input's first bytes resolve to ranges inside the buffer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mime.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

/* Skips one IMAP value; returns NULL if it is malformed. */
static const char *imap_value(const char *p, const char *end, unsigned depth)
{
    if (p >= end || depth > 1000)
        return NULL;
    if (*p == '(') {
        p++;
        int first = 1;
        while (p < end && *p != ')') {
            if (!first && *p == ' ')
                p++;
            p = imap_value(p, end, depth + 1);
            if (p == NULL)
                return NULL;
            first = 0;
        }
        return p < end && !first ? p + 1 : NULL;  /* no empty lists */
    }
    if (*p == '"') {
        for (p++; p < end && *p != '"'; p++) {
            unsigned char c = (unsigned char)*p;
            if (c == '\r' || c == '\n' || c == 0 || c >= 0x80)
                return NULL;
            if (c == '\\') {
                if (++p >= end || (*p != '"' && *p != '\\'))
                    return NULL;
            }
        }
        return p < end ? p + 1 : NULL;
    }
    if (*p == '{') {
        size_t n = 0;
        const char *d = ++p;
        while (p < end && *p >= '0' && *p <= '9')
            n = n * 10 + (size_t)(*p++ - '0');
        if (p == d || end - p < 3 || memcmp(p, "}\r\n", 3) != 0)
            return NULL;
        p += 3;
        if ((size_t)(end - p) < n || memchr(p, '\0', n) != NULL)
            return NULL;
        return p + n;
    }
    if (end - p >= 3 && memcmp(p, "NIL", 3) == 0)
        return p + 3;
    if (*p >= '0' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        return p;
    }
    return NULL;
}

static void check_imap(const struct buf *b)
{
    const char *end = imap_value(b->data, b->data + b->len, 0);
    CHECK(end == b->data + b->len);
}

static void check_range(const struct mime_message *msg, const struct mime_range *r)
{
    CHECK(r->offset <= msg->size && r->size <= msg->size - r->offset);
    CHECK(r->crlf_size == mime_crlf_size(msg->data + r->offset, r->size));
}

static unsigned checked;

static void check_part(const struct mime_message *msg, const struct mime_part *part)
{
    CHECK(part->header_offset + part->header_size == part->body_offset);
    CHECK(part->body_offset <= msg->size && part->body_size <= msg->size - part->body_offset);
    CHECK(part->type != NULL && part->subtype != NULL);
    if (checked++ < 300) {  /* recounting is linear per part: keep it bounded */
        CHECK(part->body_crlf_size ==
              mime_crlf_size(msg->data + part->body_offset, part->body_size));
        CHECK(part->header_crlf_size ==
              mime_crlf_size(msg->data + part->header_offset, part->header_size));
        size_t lines = 0;
        for (size_t i = 0; i < part->body_size; i++)
            lines += msg->data[part->body_offset + i] == '\n';
        CHECK(lines == part->body_lines);
    }
    if (part->parent != NULL) {
        const struct mime_part *pp = part->parent;
        CHECK(part->header_offset >= pp->body_offset);
        CHECK(part->body_offset + part->body_size <= pp->body_offset + pp->body_size);
    }
    unsigned n = 0;
    const struct mime_part *prev = NULL;
    for (const struct mime_part *c = part->children; c != NULL; c = c->next, n++) {
        CHECK(c->parent == part);
        if (prev != NULL)
            CHECK(c->header_offset >= prev->body_offset + prev->body_size);
        prev = c;
        check_part(msg, c);
    }
    CHECK(n == part->nchildren);
    CHECK(!(part->flags & MIME_PART_MESSAGE) || n == 1);
}

static unsigned named;

static void check_numbers(const struct mime_message *msg, const struct mime_part *part,
                          struct buf *name);

/* part is a message (root or encapsulated): its body parts are name.N */
static void check_message(const struct mime_message *msg, const struct mime_part *m,
                          struct buf *name)
{
    size_t len = name->len;
    if (m->flags & MIME_PART_MULTIPART) {
        unsigned i = 1;
        for (const struct mime_part *c = m->children; c != NULL && named < 200; c = c->next) {
            buf_truncate(name, len);
            buf_printf(name, "%s%u", len ? "." : "", i++);
            CHECK(mime_part_find(msg->root, name->data) == c);
            named++;
            check_numbers(msg, c, name);
        }
    } else {
        buf_printf(name, "%s1", len ? "." : "");
        CHECK(mime_part_find(msg->root, name->data) == m);
        named++;
        check_numbers(msg, m, name);
    }
    buf_truncate(name, len);
}

static void check_numbers(const struct mime_message *msg, const struct mime_part *part,
                          struct buf *name)
{
    if (part->flags & MIME_PART_MESSAGE) {
        check_message(msg, part->children, name);
    } else if (part->flags & MIME_PART_MULTIPART) {
        size_t len = name->len;
        unsigned i = 1;
        for (const struct mime_part *c = part->children; c != NULL && named < 200; c = c->next) {
            buf_truncate(name, len);
            buf_printf(name, ".%u", i++);
            CHECK(mime_part_find(msg->root, name->data) == c);
            named++;
            check_numbers(msg, c, name);
        }
        buf_truncate(name, len);
    }
}

static void check_section(const struct mime_message *msg, const char *numbers, struct buf *out)
{
    static const char *const names[] = {"subject", "from", "content-type", "X"};
    for (int k = MIME_SECTION_BODY; k <= MIME_SECTION_MIME; k++) {
        struct mime_range r;
        const char *error = NULL;
        if (mime_section_range(msg, numbers, (enum mime_section_kind)k, &r, &error) < 0) {
            CHECK(error != NULL);
            continue;
        }
        check_range(msg, &r);
        buf_reset(out);
        if (k == MIME_SECTION_HEADER_FIELDS || k == MIME_SECTION_HEADER_FIELDS_NOT) {
            CHECK(mime_header_filter(msg, &r, names, 4, k == MIME_SECTION_HEADER_FIELDS_NOT,
                                     out) == 0);
            CHECK(out->len >= 2 && memcmp(out->data + out->len - 2, "\r\n", 2) == 0);
            CHECK(out->len <= r.crlf_size + 4);
        } else if (r.size <= 4096) {
            CHECK(mime_append_crlf(out, msg->data + r.offset, r.size) == 0);
            CHECK(out->len == r.crlf_size);
        }
        for (size_t i = 0; i < out->len; i++)
            CHECK(out->data[i] != '\n' || (i > 0 && out->data[i - 1] == '\r'));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mime_limits limits;
    mime_limits_default(&limits);
    switch (size % 4) {
    case 1:
        limits.max_depth = 3;
        limits.max_parts = 8;
        break;
    case 2:
        limits.max_params = 2;
        limits.max_field = 64;
        break;
    default:
        break;
    }
    /* the message gets its own allocation, so ASan sees any overread */
    char *text = malloc(size ? size : 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    struct mime_message *msg = mime_message_parse(text, size, &limits);
    CHECK(msg->root != NULL && msg->nparts >= 1 && msg->nparts <= limits.max_parts);
    CHECK(msg->crlf_size == mime_crlf_size(text, size));
    checked = 0;
    check_part(msg, msg->root);

    struct buf out;
    buf_init(&out, 0);
    CHECK(mime_imap_bodystructure(msg, msg->root, 1, &out) == 0);
    check_imap(&out);
    buf_reset(&out);
    CHECK(mime_imap_bodystructure(msg, msg->root, 0, &out) == 0);
    check_imap(&out);
    buf_reset(&out);
    CHECK(mime_imap_envelope(msg, msg->root, &out) == 0);
    check_imap(&out);

    struct buf name;
    buf_init(&name, 0);
    named = 0;
    check_message(msg, msg->root, &name);

    /* section strings from the first bytes: digits and dots, mostly */
    static const char alphabet[] = "0123456789..1.2.3x";
    char numbers[17];
    size_t n = size < 16 ? size : 16;
    for (size_t i = 0; i < n; i++)
        numbers[i] = alphabet[data[i] % (sizeof(alphabet) - 1)];
    for (size_t cut = 0; cut <= n; cut += 4) {
        numbers[cut] = '\0';
        const struct mime_part *p = mime_part_find(msg->root, numbers);
        if (p != NULL)
            CHECK(p->body_offset + p->body_size <= size);
        check_section(msg, numbers, &out);
        if (cut < n)
            numbers[cut] = alphabet[data[cut] % (sizeof(alphabet) - 1)];
    }
    check_section(msg, "", &out);
    check_section(msg, "1", &out);
    check_section(msg, "1.1", &out);
    check_section(msg, "2.1", &out);

    buf_free(&name);
    buf_free(&out);
    mime_message_destroy(&msg);
    CHECK(msg == NULL);
    free(text);
    return 0;
}
