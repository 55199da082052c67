/*
 * NAME
 *	imap_parser_fetch - FETCH and STORE arguments
 * DESCRIPTION
 *	FETCH: sequence-set SP (ALL / FAST / FULL / fetch-att / "(" fetch-att
 *	*(SP fetch-att) ")") [SP "(" CHANGEDSINCE SP mod-sequence ")"]. The
 *	macros are expanded (RFC 3501 6.4.5): ALL = FLAGS INTERNALDATE
 *	RFC822.SIZE ENVELOPE, FAST = FLAGS INTERNALDATE RFC822.SIZE, FULL =
 *	ALL + BODY. Sections: [part.part...][.HEADER | .HEADER.FIELDS[.NOT]
 *	(list) | .TEXT | .MIME], MIME only after a part number, partial
 *	<origin.count>.
 *
 *	STORE: sequence-set [SP "(" UNCHANGEDSINCE SP mod-sequence ")"] SP
 *	[+|-]FLAGS[.SILENT] SP (flag-list / flag *(SP flag)).
 * LIMITS
 *	IMAP_SECTION_PARTS_MAX part numbers; lists bounded by max_tokens.
 */
#include <string.h>

#include "imap_parser_private.h"

static struct imap_fetch_att *add_att(struct imap_gram *g, size_t *cap, enum imap_fetch_item item)
{
    struct imap_command *cmd = g->cmd;
    cmd->u.fetch.atts = imap_arena_grow(g->arena, cmd->u.fetch.atts, cmd->u.fetch.count, cap,
                                        sizeof(struct imap_fetch_att));
    struct imap_fetch_att *att = &cmd->u.fetch.atts[cmd->u.fetch.count++];
    att->item = item;
    return att;
}

/* header-fld-name = astring, and RFC 5322 field names are printable
   ASCII without ':'. */
static int header_list(struct imap_gram *g, struct imap_fetch_att *att)
{
    size_t cap = 0;
    if (imap_gram_sp(g) < 0 || imap_gram_open(g) < 0)
        return -1;
    for (;;) {
        size_t len;
        att->fields = imap_arena_grow(g->arena, att->fields, att->nfields, &cap, sizeof(char *));
        if (imap_gram_astring(g, &att->fields[att->nfields], &len) < 0)
            return -1;
        const char *f = att->fields[att->nfields];
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)f[i] < 0x21 || (unsigned char)f[i] > 0x7e || f[i] == ':')
                return imap_gram_error(g, "Invalid header field name");
        if (len == 0)
            return imap_gram_error(g, "Invalid header field name");
        att->nfields++;
        if (imap_gram_peek(g) != ' ')
            break;
        if (imap_gram_sp(g) < 0)
            return -1;
    }
    return imap_gram_char(g, ')', "')' after header field names");
}

static int section(struct imap_gram *g, struct imap_fetch_att *att)
{
    size_t cap = 0;
    g->pos++; /* '[' */
    int c = imap_gram_peek(g);
    if (c == ']') {
        g->pos++;
        return 0;
    }
    if (c >= '0' && c <= '9') {
        for (;;) {
            if (att->nparts >= IMAP_SECTION_PARTS_MAX)
                return imap_gram_error(g, "Too many section part numbers");
            att->parts = imap_arena_grow(g->arena, att->parts, att->nparts, &cap,
                                         sizeof(uint32_t));
            if (imap_gram_nz_number(g, &att->parts[att->nparts]) < 0)
                return -1;
            att->nparts++;
            if (imap_gram_peek(g) != '.')
                break;
            g->pos++;
            c = imap_gram_peek(g);
            if (!(c >= '0' && c <= '9'))
                break;
        }
        /* "1.2]" ends here; "1.2.TEXT]" goes on with the text part. */
        if (g->buf[g->pos - 1] != '.')
            return imap_gram_char(g, ']', "']' after section");
    }
    const char *w;
    size_t len;
    /* Section words are letters and dots only: the word reader would also
       take "+" and "-", which cannot appear here anyway. */
    imap_gram_word(g, &w, &len);
    if (imap_gram_word_is(w, len, "HEADER")) {
        att->text = IMAP_SECTION_HEADER;
    } else if (imap_gram_word_is(w, len, "HEADER.FIELDS")) {
        att->text = IMAP_SECTION_HEADER_FIELDS;
    } else if (imap_gram_word_is(w, len, "HEADER.FIELDS.NOT")) {
        att->text = IMAP_SECTION_HEADER_FIELDS_NOT;
    } else if (imap_gram_word_is(w, len, "TEXT")) {
        att->text = IMAP_SECTION_TEXT;
    } else if (imap_gram_word_is(w, len, "MIME") && att->nparts > 0) {
        att->text = IMAP_SECTION_MIME;
    } else {
        return imap_gram_error(g, "Invalid section");
    }
    if (att->text == IMAP_SECTION_HEADER_FIELDS || att->text == IMAP_SECTION_HEADER_FIELDS_NOT) {
        if (header_list(g, att) < 0)
            return -1;
    }
    return imap_gram_char(g, ']', "']' after section");
}

static int partial(struct imap_gram *g, struct imap_fetch_att *att)
{
    g->pos++; /* '<' */
    if (imap_gram_number(g, &att->origin) < 0 || imap_gram_char(g, '.', "'.' in partial") < 0 ||
        imap_gram_nz_number(g, &att->count) < 0 || imap_gram_char(g, '>', "'>'") < 0)
        return -1;
    att->partial = 1;
    return 0;
}

static const struct {
    const char *name;
    enum imap_fetch_item item;
} simple_atts[] = {
    {"ENVELOPE", IMAP_FETCH_ENVELOPE},
    {"FLAGS", IMAP_FETCH_FLAGS},
    {"INTERNALDATE", IMAP_FETCH_INTERNALDATE},
    {"RFC822", IMAP_FETCH_RFC822},
    {"RFC822.HEADER", IMAP_FETCH_RFC822_HEADER},
    {"RFC822.SIZE", IMAP_FETCH_RFC822_SIZE},
    {"RFC822.TEXT", IMAP_FETCH_RFC822_TEXT},
    {"BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE},
    {"UID", IMAP_FETCH_UID},
    {"MODSEQ", IMAP_FETCH_MODSEQ},
};

static const enum imap_fetch_item macro_items[] = {
    IMAP_FETCH_FLAGS, IMAP_FETCH_INTERNALDATE, IMAP_FETCH_RFC822_SIZE, IMAP_FETCH_ENVELOPE,
    IMAP_FETCH_BODY};

static int fetch_att(struct imap_gram *g, size_t *cap, int top)
{
    const char *w;
    size_t len;
    imap_gram_word(g, &w, &len);
    if (len == 0)
        return imap_gram_error(g, imap_gram_at_end(g) ? "Missing arguments"
                                                      : "Invalid fetch attribute");
    if (top) {
        size_t n = 0;
        if (imap_gram_word_is(w, len, "ALL")) {
            g->cmd->u.fetch.macro = IMAP_FETCH_MACRO_ALL;
            n = 4;
        } else if (imap_gram_word_is(w, len, "FAST")) {
            g->cmd->u.fetch.macro = IMAP_FETCH_MACRO_FAST;
            n = 3;
        } else if (imap_gram_word_is(w, len, "FULL")) {
            g->cmd->u.fetch.macro = IMAP_FETCH_MACRO_FULL;
            n = 5;
        }
        for (size_t i = 0; i < n; i++)
            add_att(g, cap, macro_items[i]);
        if (n)
            return 0;
    }
    for (size_t i = 0; i < sizeof(simple_atts) / sizeof(simple_atts[0]); i++)
        if (imap_gram_word_is(w, len, simple_atts[i].name)) {
            add_att(g, cap, simple_atts[i].item);
            return 0;
        }
    int peek = imap_gram_word_is(w, len, "BODY.PEEK");
    if (!peek && !imap_gram_word_is(w, len, "BODY"))
        return imap_gram_error(g, "Unknown fetch attribute");
    if (imap_gram_peek(g) != '[') {
        if (peek)
            return imap_gram_error(g, "BODY.PEEK needs a section");
        add_att(g, cap, IMAP_FETCH_BODY);
        return 0;
    }
    struct imap_fetch_att *att = add_att(g, cap, IMAP_FETCH_SECTION);
    att->peek = peek;
    if (section(g, att) < 0)
        return -1;
    if (imap_gram_peek(g) == '<' && partial(g, att) < 0)
        return -1;
    return 0;
}

int imap_gram_fetch(struct imap_gram *g)
{
    struct imap_command *cmd = g->cmd;
    size_t cap = 0;
    if (imap_gram_sp(g) < 0 || imap_gram_seqset(g, &cmd->u.fetch.set) < 0 || imap_gram_sp(g) < 0)
        return -1;
    if (imap_gram_peek(g) == '(') {
        if (imap_gram_open(g) < 0)
            return -1;
        for (;;) {
            if (fetch_att(g, &cap, 0) < 0)
                return -1;
            if (imap_gram_peek(g) != ' ')
                break;
            if (imap_gram_sp(g) < 0)
                return -1;
        }
        if (imap_gram_char(g, ')', "')' after fetch attributes") < 0)
            return -1;
    } else if (fetch_att(g, &cap, 1) < 0) {
        return -1;
    }
    int c = imap_gram_peek(g);
    if (c >= 0 && c != ' ')
        return imap_gram_error(g, "Invalid fetch attribute");
    if (c != ' ')
        return 0;
    if (imap_gram_sp(g) < 0 || imap_gram_open(g) < 0)
        return -1;
    for (;;) {
        const char *w;
        size_t len;
        imap_gram_word(g, &w, &len);
        if (!imap_gram_word_is(w, len, "CHANGEDSINCE"))
            return imap_gram_error(g, "Unknown fetch modifier");
        if (imap_gram_sp(g) < 0 || imap_gram_number64(g, 1, &cmd->u.fetch.changedsince) < 0)
            return -1;
        cmd->u.fetch.has_changedsince = 1;
        if (imap_gram_peek(g) != ' ')
            break;
        if (imap_gram_sp(g) < 0)
            return -1;
    }
    return imap_gram_char(g, ')', "')' after fetch modifiers");
}

int imap_gram_store(struct imap_gram *g)
{
    struct imap_command *cmd = g->cmd;
    if (imap_gram_sp(g) < 0 || imap_gram_seqset(g, &cmd->u.store.set) < 0 || imap_gram_sp(g) < 0)
        return -1;
    const char *w;
    size_t len;
    if (imap_gram_peek(g) == '(') {
        if (imap_gram_open(g) < 0)
            return -1;
        imap_gram_word(g, &w, &len);
        if (!imap_gram_word_is(w, len, "UNCHANGEDSINCE"))
            return imap_gram_error(g, "Unknown store modifier");
        if (imap_gram_sp(g) < 0 || imap_gram_number64(g, 0, &cmd->u.store.unchangedsince) < 0 ||
            imap_gram_char(g, ')', "')' after store modifiers") < 0 || imap_gram_sp(g) < 0)
            return -1;
        cmd->u.store.has_unchangedsince = 1;
    }
    imap_gram_word(g, &w, &len);
    if (len > 0 && (w[0] == '+' || w[0] == '-')) {
        cmd->u.store.op = w[0] == '+' ? IMAP_STORE_ADD : IMAP_STORE_REMOVE;
        w++;
        len--;
    }
    if (imap_gram_word_is(w, len, "FLAGS.SILENT"))
        cmd->u.store.silent = 1;
    else if (!imap_gram_word_is(w, len, "FLAGS"))
        return imap_gram_error(g, "Invalid store attribute");
    if (imap_gram_sp(g) < 0)
        return -1;
    if (imap_gram_peek(g) == '(')
        return imap_gram_flag_list(g, &cmd->u.store.flags, &cmd->u.store.nflags);
    size_t cap = 0;
    for (;;) {
        cmd->u.store.flags = imap_arena_grow(g->arena, cmd->u.store.flags, cmd->u.store.nflags,
                                             &cap, sizeof(char *));
        if (imap_gram_flag(g, &cmd->u.store.flags[cmd->u.store.nflags]) < 0)
            return -1;
        cmd->u.store.nflags++;
        if (imap_gram_peek(g) != ' ')
            return 0;
        if (imap_gram_sp(g) < 0)
            return -1;
    }
}
