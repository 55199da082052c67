/* libFuzzer target for lib/maildir_keywords.c's parser: any bytes as a
   dovecot-keywords file. Checks that every usable letter's name is a
   valid keyword that maps back to the same letter, that no two usable
   letters share a name (case-insensitively), and that unusable letters
   show nothing. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "maildir_keywords.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct maildir_keywords *kw = maildir_keywords_new("/nonexistent");
    maildir_keywords_parse(kw, (const char *)data, size);
    uint32_t usable = maildir_keywords_usable(kw);
    unsigned used = MAILDIR_KEYWORDS_MAX - maildir_keywords_free_count(kw);
    if (used > MAILDIR_KEYWORDS_MAX || usable >> MAILDIR_KEYWORDS_MAX != 0)
        abort();
    for (unsigned n = 0; n < MAILDIR_KEYWORDS_MAX; n++) {
        char letter = (char)('a' + n);
        const char *name = maildir_keywords_name(kw, letter);
        if ((name != NULL) != ((usable >> n) & 1))
            abort();
        if (name == NULL)
            continue;
        if (!maildir_keywords_valid(name) || maildir_keywords_letter(kw, name) != letter)
            abort();
        for (unsigned m = 0; m < n; m++) {
            const char *other = maildir_keywords_name(kw, (char)('a' + m));
            if (other != NULL && strcasecmp(other, name) == 0)
                abort();
        }
    }
    /* The same bytes again change nothing. */
    unsigned gen = maildir_keywords_generation(kw);
    maildir_keywords_parse(kw, (const char *)data, size);
    if (maildir_keywords_generation(kw) != gen || maildir_keywords_usable(kw) != usable)
        abort();
    maildir_keywords_free(&kw);
    return 0;
}
