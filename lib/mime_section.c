/*
 * NAME
 *	mime_section - IMAP section numbers, byte ranges and header fields
 * DESCRIPTION
 *	See mime.h: mime_part_find() maps RFC 3501 section numbers to
 *	parts, mime_section_range() gives the bytes of BODY[section],
 *	mime_header_filter() builds BODY[HEADER.FIELDS (...)] and .NOT, and
 *	mime_append_crlf() turns file bytes into what the client receives.
 *	Only the parse tree and the caller's buffer are read; nothing here
 *	allocates except the output buffer.
 * LIMITS
 *	Section numbers above 1000000 are rejected (no message has that
 *	many parts: max_parts bounds them far lower).
 */
#include <string.h>
#include <strings.h>

#include "mime.h"

static const struct mime_part *nth_child(const struct mime_part *part, unsigned long n)
{
    const struct mime_part *c = part->children;
    while (c != NULL && --n > 0)
        c = c->next;
    return c;
}

const struct mime_part *mime_part_find(const struct mime_part *root, const char *numbers)
{
    if (root == NULL || numbers == NULL)
        return NULL;
    if (*numbers == '\0')
        return root;
    const struct mime_part *part = root;
    int at_message = 1;  /* part is a message; numbers index its body */
    const char *s = numbers;
    for (;;) {
        if (*s < '1' || *s > '9')
            return NULL;
        unsigned long n = 0;
        while (*s >= '0' && *s <= '9') {
            n = n * 10 + (unsigned long)(*s++ - '0');
            if (n > 1000000)
                return NULL;
        }
        if (!at_message) {
            if (part->flags & MIME_PART_MESSAGE)
                part = part->children;  /* into the encapsulated message */
            else if (!(part->flags & MIME_PART_MULTIPART))
                return NULL;            /* a leaf has no subparts */
        }
        if (part->flags & MIME_PART_MULTIPART)
            part = nth_child(part, n);
        else if (n != 1)
            return NULL;                /* a single-part message has only part 1 */
        if (part == NULL)
            return NULL;
        at_message = 0;
        if (*s == '\0')
            return part;
        if (*s != '.')
            return NULL;
        s++;
    }
}

static void header_range(const struct mime_part *part, struct mime_range *r)
{
    r->offset = part->header_offset;
    r->size = part->header_size;
    r->crlf_size = part->header_crlf_size;
}

static void body_range(const struct mime_part *part, struct mime_range *r)
{
    r->offset = part->body_offset;
    r->size = part->body_size;
    r->crlf_size = part->body_crlf_size;
}

int mime_section_range(const struct mime_message *msg, const char *numbers,
                       enum mime_section_kind kind, struct mime_range *range_r,
                       const char **error_r)
{
    const struct mime_part *part = msg->root;
    if (numbers != NULL && *numbers != '\0') {
        part = mime_part_find(msg->root, numbers);
        if (part == NULL) {
            *error_r = "no such section";
            return -1;
        }
        switch (kind) {
        case MIME_SECTION_BODY:
            body_range(part, range_r);
            return 0;
        case MIME_SECTION_MIME:
            header_range(part, range_r);
            return 0;
        case MIME_SECTION_HEADER:
        case MIME_SECTION_HEADER_FIELDS:
        case MIME_SECTION_HEADER_FIELDS_NOT:
        case MIME_SECTION_TEXT:
            break;
        }
        if (!(part->flags & MIME_PART_MESSAGE)) {
            *error_r = "HEADER and TEXT need a message/rfc822 part";
            return -1;
        }
        part = part->children;
    }
    switch (kind) {
    case MIME_SECTION_BODY:
        range_r->offset = 0;  /* BODY[]: the whole message */
        range_r->size = msg->size;
        range_r->crlf_size = msg->crlf_size;
        return 0;
    case MIME_SECTION_HEADER:
    case MIME_SECTION_HEADER_FIELDS:
    case MIME_SECTION_HEADER_FIELDS_NOT:
        header_range(part, range_r);
        return 0;
    case MIME_SECTION_TEXT:
        body_range(part, range_r);
        return 0;
    case MIME_SECTION_MIME:
        break;
    }
    *error_r = "MIME needs a part number";
    return -1;
}

size_t mime_crlf_size(const char *data, size_t size)
{
    size_t n = size;
    const char *p = data, *end = data + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break;
        if (nl == data || nl[-1] != '\r')
            n++;
        p = nl + 1;
    }
    return n;
}

int mime_append_crlf(struct buf *out, const char *data, size_t size)
{
    size_t n = mime_crlf_size(data, size);
    if (out->limit != 0 && (n > out->limit || out->len > out->limit - n))
        return -1;
    char *w = buf_reserve(out, n);
    char *start = w;
    /* Line by line with memchr/memcpy: this runs over every byte of a
       BODY[] fetch, where a byte-wise loop was the hottest code. */
    const char *p = data, *end = data + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        memcpy(w, p, len);
        w += len;
        if (nl != NULL) {
            if (nl == data || nl[-1] != '\r')
                *w++ = '\r';
            *w++ = '\n';
            len++;
        }
        p += len;
    }
    /* IMAP literals cannot carry NUL (rare in mail: one scan to check). */
    for (char *z = memchr(start, '\0', n); z != NULL;
         z = memchr(z + 1, '\0', (size_t)(start + n - (z + 1))))
        *z = (char)0x80;
    buf_commit(out, n);
    return 0;
}

int mime_header_next(const char *data, size_t end, size_t *pos_p, struct mime_field *field_r)
{
    size_t pos = *pos_p;
    while (pos < end) {
        const char *nl = memchr(data + pos, '\n', end - pos);
        size_t next = nl ? (size_t)(nl - data) + 1 : end;
        size_t ce = nl ? (size_t)(nl - data) : end;
        if (nl != NULL && ce > pos && data[ce - 1] == '\r')
            ce--;
        if (ce == pos && nl != NULL)
            break;  /* the blank line ends the header */
        const char *colon = data[pos] == ' ' || data[pos] == '\t'
                                ? NULL
                                : memchr(data + pos, ':', ce - pos);
        size_t name_len = colon ? (size_t)(colon - (data + pos)) : 0;
        while (name_len > 0 && (data[pos + name_len - 1] == ' ' || data[pos + name_len - 1] == '\t'))
            name_len--;
        int ok = name_len > 0;
        for (size_t i = 0; ok && i < name_len; i++) {
            unsigned char c = (unsigned char)data[pos + i];
            ok = c > ' ' && c != 0x7f;
        }
        if (!ok) {
            pos = next;  /* not a field; its continuation lines follow as folds and are skipped too */
            continue;
        }
        /* take the folded continuation lines */
        size_t last_ce = ce, fend = next;
        while (fend < end && (data[fend] == ' ' || data[fend] == '\t')) {
            const char *nl2 = memchr(data + fend, '\n', end - fend);
            last_ce = nl2 ? (size_t)(nl2 - data) : end;
            if (nl2 != NULL && data[last_ce - 1] == '\r')
                last_ce--;
            fend = nl2 ? (size_t)(nl2 - data) + 1 : end;
        }
        field_r->offset = pos;
        field_r->size = fend - pos;
        field_r->name_len = name_len;
        field_r->value_offset = (size_t)(colon - data) + 1;
        field_r->value_len = last_ce - field_r->value_offset;
        *pos_p = fend;
        return 1;
    }
    *pos_p = pos;
    return 0;
}

int mime_header_find(const char *data, size_t offset, size_t size, const char *name,
                     struct mime_field *field_r)
{
    size_t pos = offset, len = strlen(name);
    while (mime_header_next(data, offset + size, &pos, field_r))
        if (field_r->name_len == len && strncasecmp(data + field_r->offset, name, len) == 0)
            return 1;
    return 0;
}

int mime_header_unfold(struct buf *out, const char *value, size_t len)
{
    size_t start = out->len;
    int rc = 0;
    for (size_t i = 0; i < len; i++) {
        char c = value[i];
        if (c == '\0' || c == '\n' || (c == '\r' && i + 1 < len && value[i + 1] == '\n'))
            continue;
        if ((c == ' ' || c == '\t') && out->len == start)
            continue;  /* leading blanks */
        if (buf_append_char(out, c) < 0)
            rc = -1;
    }
    while (out->len > start && (out->data[out->len - 1] == ' ' || out->data[out->len - 1] == '\t'))
        buf_truncate(out, out->len - 1);
    return rc;
}

int mime_header_filter(const struct mime_message *msg, const struct mime_range *header,
                       const char *const *names, size_t nnames, int exclude, struct buf *out)
{
    size_t end = header->offset + header->size, pos = header->offset;
    struct mime_field f;
    int rc = 0;
    if (end > msg->size)
        end = msg->size;
    while (mime_header_next(msg->data, end, &pos, &f)) {
        int match = 0;
        for (size_t i = 0; i < nnames && !match; i++)
            match = strlen(names[i]) == f.name_len &&
                    strncasecmp(names[i], msg->data + f.offset, f.name_len) == 0;
        if (match == exclude)
            continue;
        if (mime_append_crlf(out, msg->data + f.offset, f.size) < 0)
            rc = -1;
        else if (msg->data[f.offset + f.size - 1] != '\n' && buf_append(out, "\r\n", 2) < 0)
            rc = -1;
    }
    if (buf_append(out, "\r\n", 2) < 0)
        rc = -1;
    return rc;
}
