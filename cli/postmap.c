/*
 * NAME
 *	postmap - build, query and edit lmdb lookup tables
 * SYNOPSIS
 *	postmap [-v] [-c config_dir] [-q key | -s | -d key] [type:]file...
 * DESCRIPTION
 *	Builds file.lmdb from each text file ("key value" lines), or with
 *	-q prints the value of key, -s lists every entry, -d deletes key
 *	from the source file and rebuilds. See docs/postmap.md and
 *	cli/cli_tables.c.
 */
#include "cli_tables.h"

int main(int argc, char **argv)
{
    return cli_tables_main(argc, argv, CLI_TABLES_POSTMAP);
}
