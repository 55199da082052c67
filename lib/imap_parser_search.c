/*
 * NAME
 *	imap_parser_search - SEARCH arguments as a key tree
 * DESCRIPTION
 *	search = "SEARCH" [SP "CHARSET" SP astring] 1*(SP search-key), with
 *	every RFC 3501 key, sequence sets, parenthesized groups, NOT, OR
 *	and MODSEQ (RFC 7162). Juxtaposed keys are ANDed: the root and each
 *	group are IMAP_SEARCH_AND nodes whose children are linked by next.
 *	Key names are case-insensitive. CHARSET UTF-8 and US-ASCII are
 *	accepted (any case); another charset is a NO [BADCHARSET] error.
 * LIMITS
 *	limits.max_search_nodes keys per command; limits.max_depth levels of
 *	parentheses, NOT and OR (the recursion follows the nesting, so this
 *	bounds the stack too).
 */
#include <strings.h>

#include "imap_parser_private.h"

enum search_arg {
    ARG_NONE,
    ARG_ASTRING,
    ARG_DATE,
    ARG_NUMBER,
    ARG_HEADER,
    ARG_KEYWORD,
    ARG_NOT,
    ARG_OR,
    ARG_SEQSET,
    ARG_MODSEQ,
};

static const struct {
    const char *name;
    enum imap_search_type type;
    enum search_arg arg;
} search_keys[] = {
    {"ALL", IMAP_SEARCH_ALL, ARG_NONE},
    {"ANSWERED", IMAP_SEARCH_ANSWERED, ARG_NONE},
    {"BCC", IMAP_SEARCH_BCC, ARG_ASTRING},
    {"BEFORE", IMAP_SEARCH_BEFORE, ARG_DATE},
    {"BODY", IMAP_SEARCH_BODY, ARG_ASTRING},
    {"CC", IMAP_SEARCH_CC, ARG_ASTRING},
    {"DELETED", IMAP_SEARCH_DELETED, ARG_NONE},
    {"DRAFT", IMAP_SEARCH_DRAFT, ARG_NONE},
    {"FLAGGED", IMAP_SEARCH_FLAGGED, ARG_NONE},
    {"FROM", IMAP_SEARCH_FROM, ARG_ASTRING},
    {"HEADER", IMAP_SEARCH_HEADER, ARG_HEADER},
    {"KEYWORD", IMAP_SEARCH_KEYWORD, ARG_KEYWORD},
    {"LARGER", IMAP_SEARCH_LARGER, ARG_NUMBER},
    {"NEW", IMAP_SEARCH_NEW, ARG_NONE},
    {"NOT", IMAP_SEARCH_NOT, ARG_NOT},
    {"OLD", IMAP_SEARCH_OLD, ARG_NONE},
    {"ON", IMAP_SEARCH_ON, ARG_DATE},
    {"OR", IMAP_SEARCH_OR, ARG_OR},
    {"RECENT", IMAP_SEARCH_RECENT, ARG_NONE},
    {"SEEN", IMAP_SEARCH_SEEN, ARG_NONE},
    {"SENTBEFORE", IMAP_SEARCH_SENTBEFORE, ARG_DATE},
    {"SENTON", IMAP_SEARCH_SENTON, ARG_DATE},
    {"SENTSINCE", IMAP_SEARCH_SENTSINCE, ARG_DATE},
    {"SINCE", IMAP_SEARCH_SINCE, ARG_DATE},
    {"SMALLER", IMAP_SEARCH_SMALLER, ARG_NUMBER},
    {"SUBJECT", IMAP_SEARCH_SUBJECT, ARG_ASTRING},
    {"TEXT", IMAP_SEARCH_TEXT, ARG_ASTRING},
    {"TO", IMAP_SEARCH_TO, ARG_ASTRING},
    {"UID", IMAP_SEARCH_UID, ARG_SEQSET},
    {"UNANSWERED", IMAP_SEARCH_UNANSWERED, ARG_NONE},
    {"UNDELETED", IMAP_SEARCH_UNDELETED, ARG_NONE},
    {"UNDRAFT", IMAP_SEARCH_UNDRAFT, ARG_NONE},
    {"UNFLAGGED", IMAP_SEARCH_UNFLAGGED, ARG_NONE},
    {"UNKEYWORD", IMAP_SEARCH_UNKEYWORD, ARG_KEYWORD},
    {"UNSEEN", IMAP_SEARCH_UNSEEN, ARG_NONE},
    {"MODSEQ", IMAP_SEARCH_MODSEQ, ARG_MODSEQ},
};
#define NKEYS (sizeof(search_keys) / sizeof(search_keys[0]))

const char *imap_search_type_name(enum imap_search_type type)
{
    if (type == IMAP_SEARCH_AND)
        return "AND";
    if (type == IMAP_SEARCH_SEQSET)
        return "SEQSET";
    for (size_t i = 0; i < NKEYS; i++)
        if (search_keys[i].type == type)
            return search_keys[i].name;
    return "UNKNOWN";
}

static int search_key(struct imap_gram *g, struct imap_search_key **key_r);

static int enter(struct imap_gram *g)
{
    if (++g->depth > g->limits->max_depth)
        return imap_gram_fail(g, IMAP_PERR_LIMIT, 0, "Search keys nested too deeply");
    return 0;
}

/* search-key *(SP search-key) into an AND node. */
static int key_list(struct imap_gram *g, struct imap_search_key *and)
{
    struct imap_search_key **tail = &and->u.list.first;
    for (;;) {
        if (search_key(g, tail) < 0)
            return -1;
        tail = &(*tail)->next;
        and->u.list.count++;
        if (imap_gram_peek(g) != ' ')
            return 0;
        if (imap_gram_sp(g) < 0)
            return -1;
    }
}

static int modseq(struct imap_gram *g, struct imap_search_key *key)
{
    if (imap_gram_sp(g) < 0)
        return -1;
    if (imap_gram_peek(g) == '"') {
        /* entry-name SP entry-type-req: per-flag mod-sequences are not
           kept apart, so the pair is checked and ignored. */
        char *entry;
        const char *w;
        size_t len;
        if (imap_gram_string(g, IMAP_LITCTX_STRING, &entry, NULL) < 0 || imap_gram_sp(g) < 0)
            return -1;
        imap_gram_word(g, &w, &len);
        if (!imap_gram_word_is(w, len, "priv") && !imap_gram_word_is(w, len, "shared") &&
            !imap_gram_word_is(w, len, "all"))
            return imap_gram_error(g, "Invalid MODSEQ entry type");
        if (imap_gram_sp(g) < 0)
            return -1;
    }
    return imap_gram_number64(g, 0, &key->u.modseq);
}

static int search_key(struct imap_gram *g, struct imap_search_key **key_r)
{
    if (++g->search_nodes > g->limits->max_search_nodes)
        return imap_gram_fail(g, IMAP_PERR_LIMIT, 0, "Too many search keys");
    struct imap_search_key *key = imap_arena_alloc(g->arena, sizeof(*key));
    *key_r = key;
    int c = imap_gram_peek(g);
    if (c == '(') {
        key->type = IMAP_SEARCH_AND;
        if (enter(g) < 0 || imap_gram_open(g) < 0)
            return -1;
        if (imap_gram_peek(g) == ')')
            return imap_gram_error(g, "Empty search key list");
        if (key_list(g, key) < 0)
            return -1;
        if (imap_gram_peek(g) != ')')
            return imap_gram_error(g, imap_gram_at_end(g) ? "Missing ')'" : "Expected ')'");
        g->pos++;
        g->depth--;
        return 0;
    }
    if (c == '*' || (c >= '0' && c <= '9')) {
        key->type = IMAP_SEARCH_SEQSET;
        return imap_gram_seqset(g, &key->u.set);
    }
    const char *w;
    size_t len;
    imap_gram_word(g, &w, &len);
    size_t i;
    for (i = 0; i < NKEYS; i++)
        if (imap_gram_word_is(w, len, search_keys[i].name))
            break;
    if (i == NKEYS) {
        if (len == 0 && c == ')')
            return imap_gram_error(g, "Unexpected ')'");
        if (len == 0 && c < 0)
            return imap_gram_error(g, "Missing search key");
        return imap_gram_error(g, "Unknown search key");
    }
    c = imap_gram_peek(g);
    if (c >= 0 && c != ' ' && c != ')')
        return imap_gram_error(g, "Unknown search key");
    key->type = search_keys[i].type;
    switch (search_keys[i].arg) {
    case ARG_NONE:
        return 0;
    case ARG_ASTRING:
        if (imap_gram_sp(g) < 0)
            return -1;
        return imap_gram_astring(g, &key->u.string, NULL);
    case ARG_DATE:
        if (imap_gram_sp(g) < 0)
            return -1;
        return imap_gram_date(g, &key->u.date);
    case ARG_NUMBER:
        if (imap_gram_sp(g) < 0)
            return -1;
        return imap_gram_number(g, &key->u.size);
    case ARG_HEADER:
        if (imap_gram_sp(g) < 0 || imap_gram_astring(g, &key->u.header.field, NULL) < 0 ||
            imap_gram_sp(g) < 0)
            return -1;
        return imap_gram_astring(g, &key->u.header.value, NULL);
    case ARG_KEYWORD:
        if (imap_gram_sp(g) < 0)
            return -1;
        return imap_gram_atom(g, &key->u.string);
    case ARG_SEQSET:
        if (imap_gram_sp(g) < 0)
            return -1;
        return imap_gram_seqset(g, &key->u.set);
    case ARG_MODSEQ:
        return modseq(g, key);
    case ARG_NOT:
        if (enter(g) < 0 || imap_gram_sp(g) < 0 || search_key(g, &key->u.negated) < 0)
            return -1;
        g->depth--;
        return 0;
    case ARG_OR:
        if (enter(g) < 0 || imap_gram_sp(g) < 0 || search_key(g, &key->u.either.a) < 0 ||
            imap_gram_sp(g) < 0 || search_key(g, &key->u.either.b) < 0)
            return -1;
        g->depth--;
        return 0;
    }
    return imap_gram_error(g, "Unknown search key");
}

int imap_gram_search(struct imap_gram *g)
{
    struct imap_command *cmd = g->cmd;
    if (imap_gram_sp(g) < 0)
        return -1;
    size_t save = g->pos;
    const char *w;
    size_t len;
    imap_gram_word(g, &w, &len);
    if (imap_gram_word_is(w, len, "CHARSET") && imap_gram_peek(g) == ' ') {
        if (imap_gram_sp(g) < 0 || imap_gram_astring(g, &cmd->u.search.charset, NULL) < 0)
            return -1;
        if (strcasecmp(cmd->u.search.charset, "UTF-8") != 0 &&
            strcasecmp(cmd->u.search.charset, "US-ASCII") != 0)
            return imap_gram_fail(g, IMAP_PERR_BADCHARSET, 1,
                                  "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset");
        if (imap_gram_sp(g) < 0)
            return -1;
    } else {
        g->pos = save;
    }
    cmd->u.search.root = imap_arena_alloc(g->arena, sizeof(struct imap_search_key));
    cmd->u.search.root->type = IMAP_SEARCH_AND;
    return key_list(g, cmd->u.search.root);
}
