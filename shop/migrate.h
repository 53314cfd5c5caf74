/*
 * migrate.h (shop): the `shop migrate` command (migrate.c).
 */
#ifndef SHOP_MIGRATE_H
#define SHOP_MIGRATE_H

/* argv holds the arguments after "migrate". Returns the exit code: 0 done,
 * 1 failed, 2 usage, 3 the target is not empty. */
int shop_migrate_main(int argc, char **argv);

#endif
