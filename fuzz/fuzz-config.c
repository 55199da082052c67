/* libFuzzer target for lib/config.c (main.cf text, $name expansion, list
   helpers) and lib/master_cf.c (master.cf text) on the same input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "master_cf.h"

static void touch_value(const char *name, const char *raw, void *ctx)
{
    (void)raw;
    (void)ctx;
    const char *value = config_str(name);
    long long n;
    int b;
    (void)config_parse_int(value, &n);
    (void)config_parse_bool(value, &b);
    (void)config_parse_time(value, &n);
    size_t count;
    char **list = config_split_list(value, &count);
    for (size_t i = 0; i < count; i++)
        if (list[i] == NULL || list[i][0] == '\0')
            abort();
    if (list[count] != NULL)
        abort();
    strv_free(&list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int initialized;
    if (!initialized) {
        log_init("fuzz-config");
        log_set_file("/dev/null");
        initialized = 1;
    }
    const char *text = (const char *)data;

    /* master.cf first, against default main.cf values (a fuzzed
       default_process_limit would make config_int() exit, by design). */
    config_free_all();
    struct master_service *services;
    size_t count;
    char *error = NULL;
    if (master_cf_parse(text, size, "master.cf", &services, &count, &error) == 0) {
        for (size_t i = 0; i < count; i++) {
            char *line = master_cf_format(&services[i]);
            free(line);
            if (services[i].args[services[i].arg_count] != NULL)
                abort();
            if (strcmp(services[i].type, "inet") == 0) {
                char *host, *port;
                if (master_cf_inet_address(services[i].name, &host, &port) != 0)
                    abort();
                free(host);
                free(port);
            }
        }
        master_cf_free(&services, count);
    } else {
        if (error == NULL)
            abort();
        free(error);
    }

    if (config_parse_text(text, size, "main.cf") != 0)
        abort();
    config_foreach_set(touch_value, NULL);
    (void)config_str("myhostname");
    (void)config_str("mydomain");
    (void)config_str("smtpd_banner");
    (void)config_list_has_domain("mydestination", "localhost");
    (void)config_list_has_domain("virtual_mailbox_domains", "Example.TEST");
    config_override("mail_name", "fuzz");
    (void)config_str("smtpd_banner");
    char *expanded = config_expand(size > 0 && text[0] == '$' ? "$myhostname ${mydomain?x}" : "$mail_name");
    free(expanded);
    config_free_all();
    return 0;
}
