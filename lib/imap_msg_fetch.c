/*
 * NAME
 *	imap_msg_fetch - one message's FETCH response (RFC 3501 6.4.5, 7.4.2)
 * DESCRIPTION
 *	Renders "* <seq> FETCH (...)\r\n" for the items of a parsed FETCH
 *	command, in the client's order; an item named twice is sent once
 *	(sections excepted: each may differ in its partial). UID comes
 *	first for UID FETCH when the client did not name it; FLAGS (when
 *	the caller set \Seen) and MODSEQ (CONDSTORE) are added at the end
 *	when not named.
 *
 *	Sections are echoed as the client wrote them, with BODY.PEEK
 *	shown as BODY and header field names as sent (quoted when they
 *	are not atoms); a partial shows its origin only: "BODY[]<0>".
 *	Every body section is a literal, {0} included, with CRLF line
 *	endings. A section that does not exist (no part 5, HEADER of a
 *	part that is not message/rfc822) is an empty string, as Dovecot
 *	sends it (RFC 3501 leaves it open; NIL upsets some clients). A
 *	partial counts in the bytes the client receives, so a bare LF on
 *	disk is two bytes and a window may start or end between the CR
 *	and the LF made of it.
 *
 *	The message is loaded only when an item needs it, its header alone
 *	when the items are ENVELOPE, RFC822.HEADER and BODY[HEADER...] of
 *	the message itself. ENVELOPE, BODY and BODYSTRUCTURE texts the
 *	caller kept (msg->cache) are written in the item's place and need
 *	no load; the ones rendered are handed to the caller's callback.
 *	A header-only load takes the header the caller keeps (header_get)
 *	when it has one, so those items need no file then either.
 * LIMITS
 *	A section's partial window is found by one scan of the section's
 *	bytes; HEADER.FIELDS is built in memory (at most the header's size
 *	plus CRLFs) before it is sliced.
 * DIAGNOSTICS
 *	-1 with errno from loading (ENOENT: the file is gone), or ENOBUFS
 *	when out has a limit that the response would exceed; out is then
 *	left as it was.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "imap_msg_private.h"
#include "log.h"

static int att_sets_seen(const struct imap_fetch_att *att)
{
    return (att->item == IMAP_FETCH_SECTION && !att->peek) || att->item == IMAP_FETCH_RFC822 ||
           att->item == IMAP_FETCH_RFC822_TEXT;
}

static enum imap_msg_need att_need(const struct imap_fetch_att *att)
{
    switch (att->item) {
    case IMAP_FETCH_FLAGS:
    case IMAP_FETCH_INTERNALDATE:
    case IMAP_FETCH_RFC822_SIZE:
    case IMAP_FETCH_UID:
    case IMAP_FETCH_MODSEQ:
    case IMAP_FETCH_ITEM_COUNT:
        return IMAP_MSG_NEED_NONE;
    case IMAP_FETCH_ENVELOPE:
    case IMAP_FETCH_RFC822_HEADER:
        return IMAP_MSG_NEED_HEADER;
    case IMAP_FETCH_SECTION:
        if (att->nparts == 0 &&
            (att->text == IMAP_SECTION_HEADER || att->text == IMAP_SECTION_HEADER_FIELDS ||
             att->text == IMAP_SECTION_HEADER_FIELDS_NOT))
            return IMAP_MSG_NEED_HEADER;
        return IMAP_MSG_NEED_WHOLE;
    case IMAP_FETCH_RFC822:
    case IMAP_FETCH_RFC822_TEXT:
    case IMAP_FETCH_BODY:
    case IMAP_FETCH_BODYSTRUCTURE:
        return IMAP_MSG_NEED_WHOLE;
    }
    return IMAP_MSG_NEED_WHOLE;
}

/* Only the parsed structure items can be cached: their text does not
   depend on the command. */
static int cacheable(enum imap_fetch_item item)
{
    return item == IMAP_FETCH_ENVELOPE || item == IMAP_FETCH_BODY ||
           item == IMAP_FETCH_BODYSTRUCTURE;
}

static const char *cached_text(const struct imap_msg_cache *cache, enum imap_fetch_item item)
{
    return cache != NULL && cacheable(item) ? cache->text[item] : NULL;
}

static enum imap_msg_need fetch_need(const struct imap_command *cmd,
                                     const struct imap_msg_cache *cache)
{
    enum imap_msg_need need = IMAP_MSG_NEED_NONE;
    for (size_t i = 0; i < cmd->u.fetch.count; i++) {
        const struct imap_fetch_att *att = &cmd->u.fetch.atts[i];
        if (cached_text(cache, att->item) != NULL)
            continue;
        enum imap_msg_need n = att_need(att);
        if (n > need)
            need = n;
    }
    return need;
}

int imap_msg_fetch_sets_seen(const struct imap_command *fetch)
{
    for (size_t i = 0; i < fetch->u.fetch.count; i++)
        if (att_sets_seen(&fetch->u.fetch.atts[i]))
            return 1;
    return 0;
}

int imap_msg_fetch_needs_content(const struct imap_command *fetch)
{
    return fetch_need(fetch, NULL) != IMAP_MSG_NEED_NONE;
}

struct render {
    struct buf *out;
    const struct imap_msg *msg;
    const struct imap_msg_content *content;
    int failed;        /* out's limit was hit */
    int items;         /* items written so far */
    unsigned done;     /* simple items written, by 1 << enum imap_fetch_item */
    uint64_t bytes;    /* literal bytes */
};

static void chk(struct render *r, int rc)
{
    if (rc < 0)
        r->failed = 1;
}

/* Starts an item: the separator and its name. */
static void item_start(struct render *r, const char *name)
{
    if (r->items++ > 0)
        chk(r, buf_append_char(r->out, ' '));
    chk(r, buf_append_str(r->out, name));
}

/* Appends the client-visible bytes [origin, origin + n) of data[0..size)
   with CRLF line endings and NUL as 0x80; the caller made sure they
   exist. */
static int append_window(struct buf *out, const char *data, size_t size, uint64_t origin,
                         size_t n)
{
    if (n == 0)
        return 0;
    if (out->limit != 0 && (n > out->limit || out->len > out->limit - n))
        return -1;
    char *w = buf_reserve(out, n);
    size_t written = 0, i = 0;
    uint64_t v = 0;  /* client offset of data[i] */
    /* Whole lines before the window are only counted. */
    while (i < size) {
        const char *nl = memchr(data + i, '\n', size - i);
        size_t lend = nl != NULL ? (size_t)(nl - data) + 1 : size;
        uint64_t vlen = lend - i;
        if (nl != NULL && (nl == data || nl[-1] != '\r'))
            vlen++;
        if (v + vlen > origin)
            break;
        v += vlen;
        i = lend;
    }
    for (; i < size && written < n; i++) {
        char c = data[i];
        if (c == '\n' && (i == 0 || data[i - 1] != '\r')) {
            if (v >= origin)
                w[written++] = '\r';
            v++;
            if (written == n)
                break;
        }
        if (v >= origin)
            w[written++] = c == '\0' ? (char)0x80 : c;
        v++;
    }
    if (written != n)
        msg_panic("imap_msg: partial window of %zu bytes has %zu", n, written);
    buf_commit(out, n);
    return 0;
}

/* " {n}\r\n" and the bytes: all of data[0..size) (crlf_size bytes for
   the client), or its window <origin.count>. */
static void literal(struct render *r, const char *data, size_t size, size_t crlf_size,
                    const struct imap_fetch_att *att)
{
    size_t n = crlf_size;
    uint64_t origin = 0;
    if (att != NULL && att->partial) {
        origin = att->origin;
        n = origin >= crlf_size ? 0 : crlf_size - (size_t)origin;
        if (n > att->count)
            n = att->count;
    }
    chk(r, buf_printf(r->out, " {%zu}\r\n", n));
    if (origin == 0 && n == crlf_size)
        chk(r, mime_append_crlf(r->out, data, size));
    else
        chk(r, append_window(r->out, data, size, origin, n));
    r->bytes += n;
}

static void range_literal(struct render *r, const struct mime_range *range,
                          const struct imap_fetch_att *att)
{
    const struct mime_message *mime = r->content->mime;
    literal(r, mime->data + range->offset, range->size, range->crlf_size, att);
}

/* A header field name as an astring: an atom when it can be one. */
static void field_name(struct render *r, const char *name)
{
    int atom = *name != '\0';
    for (const char *p = name; *p != '\0' && atom; p++)
        atom = strchr("(){ %*\"\\]", *p) == NULL && (unsigned char)*p > 0x20 &&
               (unsigned char)*p < 0x7f;
    if (atom)
        chk(r, buf_append_str(r->out, name));
    else
        chk(r, mime_imap_string(r->out, name, strlen(name)));
}

static const char *const section_text_names[] = {
    [IMAP_SECTION_WHOLE] = "",
    [IMAP_SECTION_HEADER] = "HEADER",
    [IMAP_SECTION_HEADER_FIELDS] = "HEADER.FIELDS",
    [IMAP_SECTION_HEADER_FIELDS_NOT] = "HEADER.FIELDS.NOT",
    [IMAP_SECTION_TEXT] = "TEXT",
    [IMAP_SECTION_MIME] = "MIME",
};

static enum mime_section_kind section_kind(enum imap_section_text text)
{
    switch (text) {
    case IMAP_SECTION_WHOLE:
        return MIME_SECTION_BODY;
    case IMAP_SECTION_HEADER:
        return MIME_SECTION_HEADER;
    case IMAP_SECTION_HEADER_FIELDS:
        return MIME_SECTION_HEADER_FIELDS;
    case IMAP_SECTION_HEADER_FIELDS_NOT:
        return MIME_SECTION_HEADER_FIELDS_NOT;
    case IMAP_SECTION_TEXT:
        return MIME_SECTION_TEXT;
    case IMAP_SECTION_MIME:
        return MIME_SECTION_MIME;
    }
    msg_panic("imap_msg: section text %d", (int)text);
}

static void render_section(struct render *r, const struct imap_fetch_att *att)
{
    char numbers[IMAP_SECTION_PARTS_MAX * 11 + 1];
    size_t nlen = 0;
    numbers[0] = '\0';
    for (size_t i = 0; i < att->nparts && i < IMAP_SECTION_PARTS_MAX; i++) {
        int k = snprintf(numbers + nlen, sizeof(numbers) - nlen, "%s%" PRIu32, i ? "." : "",
                         att->parts[i]);
        if (k < 0 || (size_t)k >= sizeof(numbers) - nlen)
            msg_panic("imap_msg: section numbers overflow");
        nlen += (size_t)k;
    }
    if ((unsigned)att->text >= sizeof(section_text_names) / sizeof(section_text_names[0]))
        msg_panic("imap_msg: section text %d", (int)att->text);

    item_start(r, "BODY[");
    chk(r, buf_append_str(r->out, numbers));
    if (nlen > 0 && att->text != IMAP_SECTION_WHOLE)
        chk(r, buf_append_char(r->out, '.'));
    chk(r, buf_append_str(r->out, section_text_names[att->text]));
    int fields = att->text == IMAP_SECTION_HEADER_FIELDS ||
                 att->text == IMAP_SECTION_HEADER_FIELDS_NOT;
    if (fields) {
        chk(r, buf_append_str(r->out, " ("));
        for (size_t i = 0; i < att->nfields; i++) {
            if (i > 0)
                chk(r, buf_append_char(r->out, ' '));
            field_name(r, att->fields[i]);
        }
        chk(r, buf_append_char(r->out, ')'));
    }
    chk(r, buf_append_char(r->out, ']'));
    if (att->partial)
        chk(r, buf_printf(r->out, "<%" PRIu32 ">", att->origin));

    struct mime_range range;
    const char *error;
    if (mime_section_range(r->content->mime, numbers, section_kind(att->text), &range,
                           &error) < 0) {
        literal(r, "", 0, 0, att);  /* Dovecot's choice: an empty part */
        return;
    }
    if (!fields) {
        range_literal(r, &range, att);
        return;
    }
    struct buf filtered;
    buf_init(&filtered, 0);
    mime_header_filter(r->content->mime, &range, (const char *const *)att->fields, att->nfields,
                       att->text == IMAP_SECTION_HEADER_FIELDS_NOT, &filtered);
    /* Already CRLF without NUL: the literal is the text itself. */
    literal(r, filtered.data ? filtered.data : "", filtered.len, filtered.len, att);
    buf_free(&filtered);
}

static void render_root_range(struct render *r, const char *name, enum mime_section_kind kind)
{
    struct mime_range range;
    const char *error;
    item_start(r, name);
    if (mime_section_range(r->content->mime, "", kind, &range, &error) < 0)
        msg_panic("imap_msg: %s: %s", name, error);
    range_literal(r, &range, NULL);
}

/* ENVELOPE, BODY or BODYSTRUCTURE: the caller's text, or rendered and
   handed to the caller's callback. */
static void render_structure(struct render *r, enum imap_fetch_item item)
{
    const struct imap_msg_cache *cache = r->msg->cache;
    const char *name = item == IMAP_FETCH_ENVELOPE ? "ENVELOPE "
                       : item == IMAP_FETCH_BODY   ? "BODY "
                                                   : "BODYSTRUCTURE ";
    item_start(r, name);
    const char *text = cached_text(cache, item);
    if (text != NULL) {
        chk(r, buf_append(r->out, text, cache->len[item]));
        return;
    }
    const struct mime_message *mime = r->content->mime;
    size_t start = r->out->len;
    if (item == IMAP_FETCH_ENVELOPE)
        chk(r, mime_imap_envelope(mime, mime->root, r->out));
    else
        chk(r, mime_imap_bodystructure(mime, mime->root, item == IMAP_FETCH_BODYSTRUCTURE,
                                       r->out));
    /* After a failure out may hold a piece only. */
    if (!r->failed && cache != NULL && cache->rendered != NULL)
        cache->rendered(cache->rendered_ctx, item, r->out->data + start, r->out->len - start);
}

static void render_item(struct render *r, const struct imap_fetch_att *att)
{
    const struct imap_msg *msg = r->msg;
    struct buf tmp;
    if (att->item != IMAP_FETCH_SECTION) {
        if ((unsigned)att->item >= IMAP_FETCH_ITEM_COUNT)
            msg_panic("imap_msg: fetch item %d", (int)att->item);
        /* Also sends an item the options add (UID, FLAGS, MODSEQ) once
           when the client named it too. */
        if (r->done & (1u << att->item))
            return;
        r->done |= 1u << att->item;
    }
    switch (att->item) {
    case IMAP_FETCH_FLAGS:
        /* These writers cannot report out's limit: go through tmp. */
        item_start(r, "FLAGS ");
        buf_init(&tmp, 0);
        imap_msg_flags_format(msg->maildir_flags, msg->keywords, msg->recent, &tmp);
        chk(r, buf_append(r->out, tmp.data, tmp.len));
        buf_free(&tmp);
        break;
    case IMAP_FETCH_INTERNALDATE:
        item_start(r, "INTERNALDATE \"");
        buf_init(&tmp, 0);
        imap_msg_date_format(msg->internal_date, &tmp);
        chk(r, buf_append(r->out, tmp.data, tmp.len));
        buf_free(&tmp);
        chk(r, buf_append_char(r->out, '"'));
        break;
    case IMAP_FETCH_RFC822_SIZE:
        item_start(r, "RFC822.SIZE");
        chk(r, buf_printf(r->out, " %" PRIu64, msg->crlf_size));
        break;
    case IMAP_FETCH_UID:
        item_start(r, "UID");
        chk(r, buf_printf(r->out, " %" PRIu32, msg->uid));
        break;
    case IMAP_FETCH_MODSEQ:
        item_start(r, "MODSEQ");
        chk(r, buf_printf(r->out, " (%" PRIu64 ")", msg->modseq));
        break;
    case IMAP_FETCH_ENVELOPE:
    case IMAP_FETCH_BODY:
    case IMAP_FETCH_BODYSTRUCTURE:
        render_structure(r, att->item);
        break;
    case IMAP_FETCH_RFC822:
        render_root_range(r, "RFC822", MIME_SECTION_BODY);
        break;
    case IMAP_FETCH_RFC822_HEADER:
        render_root_range(r, "RFC822.HEADER", MIME_SECTION_HEADER);
        break;
    case IMAP_FETCH_RFC822_TEXT:
        render_root_range(r, "RFC822.TEXT", MIME_SECTION_TEXT);
        break;
    case IMAP_FETCH_SECTION:
        render_section(r, att);
        break;
    case IMAP_FETCH_ITEM_COUNT:
        msg_panic("imap_msg: fetch item count");
    }
}

static int named(const struct imap_command *cmd, enum imap_fetch_item item)
{
    for (size_t i = 0; i < cmd->u.fetch.count; i++)
        if (cmd->u.fetch.atts[i].item == item)
            return 1;
    return 0;
}

int imap_msg_fetch(const struct imap_command *cmd, const struct imap_msg *msg,
                   unsigned options, struct imap_msg_content **content_p, struct buf *out,
                   uint64_t *bytes_r)
{
    if (cmd->cmd != IMAP_CMD_FETCH)
        msg_panic("imap_msg_fetch: %s command", imap_cmd_name(cmd->cmd));
    enum imap_msg_need need = fetch_need(cmd, msg->cache);
    if (imap_msg_content_load(msg, need, content_p) < 0)
        return -1;
    if (need != IMAP_MSG_NEED_NONE)
        imap_msg_content_parse(*content_p);
    struct render r = {.out = out, .msg = msg, .content = need ? *content_p : NULL};
    size_t start = out->len;
    static const struct imap_fetch_att uid_att = {.item = IMAP_FETCH_UID};
    static const struct imap_fetch_att flags_att = {.item = IMAP_FETCH_FLAGS};
    static const struct imap_fetch_att modseq_att = {.item = IMAP_FETCH_MODSEQ};

    chk(&r, buf_printf(out, "* %" PRIu32 " FETCH (", msg->seq));
    if ((options & IMAP_MSG_FETCH_UID) && !named(cmd, IMAP_FETCH_UID))
        render_item(&r, &uid_att);
    for (size_t i = 0; i < cmd->u.fetch.count; i++)
        render_item(&r, &cmd->u.fetch.atts[i]);
    if (options & IMAP_MSG_FETCH_FLAGS)
        render_item(&r, &flags_att);
    if (options & IMAP_MSG_FETCH_MODSEQ)
        render_item(&r, &modseq_att);
    chk(&r, buf_append_str(out, ")\r\n"));
    if (r.failed) {
        buf_truncate(out, start);
        errno = ENOBUFS;
        return -1;
    }
    if (bytes_r != NULL)
        *bytes_r = r.bytes;
    return 0;
}
