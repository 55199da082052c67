/*
 * NAME
 *	imap_msg_search - SEARCH keys matched against one message (RFC 3501 6.4.4)
 * DESCRIPTION
 *	imap_search_compile() turns the parser's key tree into its own
 *	tree: sequence and UID sets resolved against the view ("*" is the
 *	last message / the highest UID), needles folded once, dates as day
 *	numbers, and each node marked with what it needs of the file. The
 *	keys of an AND are reordered so that those answered from the index
 *	(flags, sizes, dates, sets) run before those that read the file,
 *	and OR tries its cheaper side first, so a message is only loaded
 *	when the cheap keys did not settle the answer; it is then loaded
 *	once, as far as the most demanding key needs (header or whole).
 *	Header keys (SUBJECT, FROM, TO, CC, BCC, HEADER, SENT*, the header
 *	part of TEXT) first take the header the caller keeps (the
 *	header_get hook of msg->cache), so a search that needs no body
 *	reads no file for a message whose header is kept; a header read
 *	from a file goes to the header_loaded hook.
 *
 *	Flags: KEYWORD matches a message whose file name has the letter
 *	the folder's keyword map gives the keyword (case-insensitive); a
 *	keyword the map does not know matches nothing (UNKEYWORD: every
 *	message). NEW is RECENT UNSEEN, OLD is NOT RECENT.
 *	LARGER/SMALLER compare RFC822.SIZE. MODSEQ n matches mod-sequences
 *	>= n (RFC 7162 3.1.5). Text keys: see imap_msg_text.c; FROM, TO,
 *	CC and BCC match the field's decoded text or one of its parsed
 *	addresses (RFC 3501 defines them on the envelope); TEXT is
 *	every header field and every body part, BODY the body parts only.
 *	An empty string matches every message for BODY and TEXT, and those
 *	having the field for the header keys.
 * LIMITS
 *	The compiled tree has as many nodes as the command's (the parser
 *	bounds them with max_search_nodes) and its depth (max_depth), which
 *	bounds the recursion here.
 * DIAGNOSTICS
 *	A file that cannot be loaded matches no text key; SENT* keys then
 *	use the internal date.
 */
#include <stdlib.h>
#include <string.h>

#include "imap_msg_private.h"
#include "log.h"
#include "xalloc.h"

struct snode {
    enum imap_search_type type;
    enum imap_msg_need need;
    struct snode *kids;      /* AND: nkids, OR: 2, NOT: 1 */
    size_t nkids;
    struct imap_seq_range *ranges;
    size_t nranges;
    const char *field;       /* the header field of a text key */
    char *field_copy;        /* HEADER: owned */
    struct buf needle;       /* folded */
    int64_t day;             /* dates: days since the epoch */
    uint64_t number;         /* LARGER, SMALLER, MODSEQ */
};

struct imap_search {
    struct snode root;
    int load_failed;         /* while matching one message */
};

static const char *text_key_field(enum imap_search_type type)
{
    switch (type) {
    case IMAP_SEARCH_BCC:
        return "Bcc";
    case IMAP_SEARCH_CC:
        return "Cc";
    case IMAP_SEARCH_FROM:
        return "From";
    case IMAP_SEARCH_SUBJECT:
        return "Subject";
    case IMAP_SEARCH_TO:
        return "To";
    default:
        return NULL;
    }
}

static void compile_node(struct snode *n, const struct imap_search_key *k, uint32_t count,
                         uint32_t max_uid);

static void compile_and(struct snode *n, const struct imap_search_key *first, uint32_t count,
                        uint32_t max_uid)
{
    size_t nkids = 0;
    for (const struct imap_search_key *k = first; k != NULL; k = k->next)
        nkids++;
    n->kids = nkids ? xcalloc(nkids, sizeof(*n->kids)) : NULL;
    n->nkids = nkids;
    size_t i = 0;
    for (const struct imap_search_key *k = first; k != NULL; k = k->next)
        compile_node(&n->kids[i++], k, count, max_uid);
    /* Stable insertion sort by need: cheap keys first. */
    for (i = 1; i < nkids; i++) {
        struct snode tmp = n->kids[i];
        size_t j = i;
        while (j > 0 && n->kids[j - 1].need > tmp.need) {
            n->kids[j] = n->kids[j - 1];
            j--;
        }
        n->kids[j] = tmp;
    }
    for (i = 0; i < nkids; i++)
        if (n->kids[i].need > n->need)
            n->need = n->kids[i].need;
}

static void compile_node(struct snode *n, const struct imap_search_key *k, uint32_t count,
                         uint32_t max_uid)
{
    memset(n, 0, sizeof(*n));
    n->type = k->type;
    buf_init(&n->needle, 0);
    switch (k->type) {
    case IMAP_SEARCH_AND:
        compile_and(n, k->u.list.first, count, max_uid);
        break;
    case IMAP_SEARCH_OR:
        n->kids = xcalloc(2, sizeof(*n->kids));
        n->nkids = 2;
        compile_node(&n->kids[0], k->u.either.a, count, max_uid);
        compile_node(&n->kids[1], k->u.either.b, count, max_uid);
        if (n->kids[0].need > n->kids[1].need) {
            struct snode tmp = n->kids[0];
            n->kids[0] = n->kids[1];
            n->kids[1] = tmp;
        }
        n->need = n->kids[1].need;
        break;
    case IMAP_SEARCH_NOT:
        n->kids = xcalloc(1, sizeof(*n->kids));
        n->nkids = 1;
        compile_node(&n->kids[0], k->u.negated, count, max_uid);
        n->need = n->kids[0].need;
        break;
    case IMAP_SEARCH_SEQSET:
        n->nranges = imap_seqset_resolve(&k->u.set, count, &n->ranges);
        break;
    case IMAP_SEARCH_UID:
        n->nranges = imap_seqset_resolve(&k->u.set, max_uid, &n->ranges);
        break;
    case IMAP_SEARCH_BCC:
    case IMAP_SEARCH_CC:
    case IMAP_SEARCH_FROM:
    case IMAP_SEARCH_SUBJECT:
    case IMAP_SEARCH_TO:
        n->field = text_key_field(k->type);
        imap_msg_fold_append(&n->needle, k->u.string, strlen(k->u.string));
        n->need = IMAP_MSG_NEED_HEADER;
        break;
    case IMAP_SEARCH_BODY:
    case IMAP_SEARCH_TEXT:
        imap_msg_fold_append(&n->needle, k->u.string, strlen(k->u.string));
        n->need = n->needle.len == 0 ? IMAP_MSG_NEED_NONE : IMAP_MSG_NEED_WHOLE;
        break;
    case IMAP_SEARCH_HEADER:
        n->field = n->field_copy = xstrdup(k->u.header.field);
        imap_msg_fold_append(&n->needle, k->u.header.value, strlen(k->u.header.value));
        n->need = IMAP_MSG_NEED_HEADER;
        break;
    case IMAP_SEARCH_BEFORE:
    case IMAP_SEARCH_ON:
    case IMAP_SEARCH_SINCE:
        n->day = imap_msg_days(k->u.date.year, k->u.date.month, k->u.date.day);
        break;
    case IMAP_SEARCH_SENTBEFORE:
    case IMAP_SEARCH_SENTON:
    case IMAP_SEARCH_SENTSINCE:
        n->day = imap_msg_days(k->u.date.year, k->u.date.month, k->u.date.day);
        n->need = IMAP_MSG_NEED_HEADER;
        break;
    case IMAP_SEARCH_LARGER:
    case IMAP_SEARCH_SMALLER:
        n->number = k->u.size;
        break;
    case IMAP_SEARCH_MODSEQ:
        n->number = k->u.modseq;
        break;
    case IMAP_SEARCH_ALL:
    case IMAP_SEARCH_ANSWERED:
    case IMAP_SEARCH_DELETED:
    case IMAP_SEARCH_DRAFT:
    case IMAP_SEARCH_FLAGGED:
    case IMAP_SEARCH_NEW:
    case IMAP_SEARCH_OLD:
    case IMAP_SEARCH_RECENT:
    case IMAP_SEARCH_SEEN:
    case IMAP_SEARCH_UNANSWERED:
    case IMAP_SEARCH_UNDELETED:
    case IMAP_SEARCH_UNDRAFT:
    case IMAP_SEARCH_UNFLAGGED:
    case IMAP_SEARCH_UNSEEN:
        break;
    case IMAP_SEARCH_KEYWORD:
    case IMAP_SEARCH_UNKEYWORD:
        /* Matched by name: the map is the message's (imap_msg.keywords). */
        n->field_copy = xstrdup(k->u.string);
        n->field = n->field_copy;
        break;
    case IMAP_SEARCH_TYPE_COUNT:
        msg_panic("imap_search: key type %d", (int)k->type);
    }
}

struct imap_search *imap_search_compile(const struct imap_command *cmd, uint32_t count,
                                        uint32_t max_uid)
{
    if (cmd->cmd != IMAP_CMD_SEARCH || cmd->u.search.root == NULL)
        msg_panic("imap_search_compile: not a SEARCH command");
    struct imap_search *s = xcalloc(1, sizeof(*s));
    compile_node(&s->root, cmd->u.search.root, count, max_uid);
    return s;
}

int imap_search_needs_content(const struct imap_search *search)
{
    return search->root.need != IMAP_MSG_NEED_NONE;
}

static void free_node(struct snode *n)
{
    for (size_t i = 0; i < n->nkids; i++)
        free_node(&n->kids[i]);
    free(n->kids);
    free(n->ranges);
    free(n->field_copy);
    buf_free(&n->needle);
}

void imap_search_free(struct imap_search **search_p)
{
    struct imap_search *s = *search_p;
    if (s == NULL)
        return;
    free_node(&s->root);
    free(s);
    *search_p = NULL;
}

struct match_ctx {
    struct imap_search *search;
    const struct imap_msg *msg;
    struct imap_msg_content **content_p;
};

/* The loaded message as far as need, or NULL when it cannot be read.
   The file is read once, as far as the whole search needs; a header
   the caller keeps (msg->cache) answers header keys without it, and a
   whole load then follows only when a key needs the body. */
static const struct imap_msg_content *content(struct match_ctx *m, enum imap_msg_need need)
{
    enum imap_msg_need most = m->search->root.need;
    if (m->search->load_failed)
        return NULL;
    if (need == IMAP_MSG_NEED_HEADER && most == IMAP_MSG_NEED_WHOLE) {
        if (imap_msg_content_cached(m->msg, m->content_p))
            return *m->content_p;
        if (imap_msg_content_load_uncached(m->msg, most, m->content_p) < 0) {
            m->search->load_failed = 1;
            return NULL;
        }
        return *m->content_p;
    }
    if (imap_msg_content_load(m->msg, most, m->content_p) < 0) {
        m->search->load_failed = 1;
        return NULL;
    }
    return *m->content_p;
}

static int has_flag(const struct imap_msg *msg, char letter)
{
    return msg->maildir_flags != NULL && strchr(msg->maildir_flags, letter) != NULL;
}

static int has_keyword(const struct imap_msg *msg, const char *name)
{
    char letter = maildir_keywords_letter(msg->keywords, name);
    return letter != 0 && has_flag(msg, letter);
}

static int64_t day_of(int64_t t)
{
    return t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
}

/* The message header within c->data. A header from the caller's cache
   is not parsed: it is all of data (what lib/mime's root would say). */
static void root_header(const struct imap_msg_content *c, size_t *offset_r, size_t *size_r)
{
    if (c->mime == NULL) {
        *offset_r = 0;
        *size_r = c->size;
        return;
    }
    *offset_r = c->mime->root->header_offset;
    *size_r = c->mime->root->header_size;
}

static int64_t sent_day(struct match_ctx *m)
{
    const struct imap_msg_content *c = content(m, IMAP_MSG_NEED_HEADER);
    if (c != NULL) {
        size_t offset, size;
        root_header(c, &offset, &size);
        struct mime_field f;
        int year, month, day;
        if (mime_header_find(c->data, offset, size, "Date", &f) &&
            imap_msg_parse_date(c->data + f.value_offset, f.value_len, NULL, &year,
                                &month, &day) == 0)
            return imap_msg_days(year, month, day);
    }
    return day_of(m->msg->internal_date);
}

static int header_has(struct match_ctx *m, const struct snode *n, const char *field)
{
    const struct imap_msg_content *c = content(m, IMAP_MSG_NEED_HEADER);
    if (c == NULL)
        return 0;
    size_t offset, size;
    root_header(c, &offset, &size);
    return imap_msg_header_contains(c->data, offset, size,
                                    field, n->needle.data, n->needle.len);
}

/* FROM, TO, CC, BCC: the raw field decoded, or one of its addresses
   as parsed for ENVELOPE (comments and blanks inside removed). */
static int address_has(struct match_ctx *m, const struct snode *n)
{
    if (header_has(m, n, n->field))
        return 1;
    const struct imap_msg_content *c = content(m, IMAP_MSG_NEED_HEADER);
    if (c == NULL)
        return 0;
    size_t offset, size;
    root_header(c, &offset, &size);
    return imap_msg_address_contains(c->data, offset, size,
                                     n->field, n->needle.data, n->needle.len);
}

static int match_node(struct match_ctx *m, const struct snode *n)
{
    const struct imap_msg *msg = m->msg;
    const struct imap_msg_content *c;
    switch (n->type) {
    case IMAP_SEARCH_AND:
        for (size_t i = 0; i < n->nkids; i++)
            if (!match_node(m, &n->kids[i]))
                return 0;
        return 1;
    case IMAP_SEARCH_OR:
        return match_node(m, &n->kids[0]) || match_node(m, &n->kids[1]);
    case IMAP_SEARCH_NOT:
        return !match_node(m, &n->kids[0]);
    case IMAP_SEARCH_SEQSET:
        return imap_seqset_contains(n->ranges, n->nranges, msg->seq);
    case IMAP_SEARCH_UID:
        return imap_seqset_contains(n->ranges, n->nranges, msg->uid);
    case IMAP_SEARCH_ALL:
        return 1;
    case IMAP_SEARCH_ANSWERED:
        return has_flag(msg, 'R');
    case IMAP_SEARCH_DELETED:
        return has_flag(msg, 'T');
    case IMAP_SEARCH_DRAFT:
        return has_flag(msg, 'D');
    case IMAP_SEARCH_FLAGGED:
        return has_flag(msg, 'F');
    case IMAP_SEARCH_SEEN:
        return has_flag(msg, 'S');
    case IMAP_SEARCH_UNANSWERED:
        return !has_flag(msg, 'R');
    case IMAP_SEARCH_UNDELETED:
        return !has_flag(msg, 'T');
    case IMAP_SEARCH_UNDRAFT:
        return !has_flag(msg, 'D');
    case IMAP_SEARCH_UNFLAGGED:
        return !has_flag(msg, 'F');
    case IMAP_SEARCH_UNSEEN:
        return !has_flag(msg, 'S');
    case IMAP_SEARCH_NEW:
        return msg->recent && !has_flag(msg, 'S');
    case IMAP_SEARCH_OLD:
        return !msg->recent;
    case IMAP_SEARCH_RECENT:
        return msg->recent != 0;
    case IMAP_SEARCH_KEYWORD:
        return has_keyword(msg, n->field);
    case IMAP_SEARCH_UNKEYWORD:
        return !has_keyword(msg, n->field);
    case IMAP_SEARCH_BCC:
    case IMAP_SEARCH_CC:
    case IMAP_SEARCH_FROM:
    case IMAP_SEARCH_TO:
        return address_has(m, n);
    case IMAP_SEARCH_SUBJECT:
    case IMAP_SEARCH_HEADER:
        return header_has(m, n, n->field);
    case IMAP_SEARCH_BODY:
        if (n->needle.len == 0)
            return 1;
        c = content(m, IMAP_MSG_NEED_WHOLE);
        return c != NULL && imap_msg_body_contains(c->mime, n->needle.data, n->needle.len);
    case IMAP_SEARCH_TEXT:
        if (n->needle.len == 0)
            return 1;
        /* The header first: a kept one may settle it without the file. */
        if (header_has(m, n, NULL))
            return 1;
        c = content(m, IMAP_MSG_NEED_WHOLE);
        return c != NULL && imap_msg_body_contains(c->mime, n->needle.data, n->needle.len);
    case IMAP_SEARCH_BEFORE:
        return day_of(msg->internal_date) < n->day;
    case IMAP_SEARCH_ON:
        return day_of(msg->internal_date) == n->day;
    case IMAP_SEARCH_SINCE:
        return day_of(msg->internal_date) >= n->day;
    case IMAP_SEARCH_SENTBEFORE:
        return sent_day(m) < n->day;
    case IMAP_SEARCH_SENTON:
        return sent_day(m) == n->day;
    case IMAP_SEARCH_SENTSINCE:
        return sent_day(m) >= n->day;
    case IMAP_SEARCH_LARGER:
        return msg->crlf_size > n->number;
    case IMAP_SEARCH_SMALLER:
        return msg->crlf_size < n->number;
    case IMAP_SEARCH_MODSEQ:
        return msg->modseq >= n->number;
    case IMAP_SEARCH_TYPE_COUNT:
        break;
    }
    msg_panic("imap_search: key type %d", (int)n->type);
}

int imap_search_match(struct imap_search *search, const struct imap_msg *msg,
                      struct imap_msg_content **content_p)
{
    struct match_ctx m = {search, msg, content_p};
    search->load_failed = 0;
    return match_node(&m, &search->root) ? 1 : 0;
}
