/*
 * projections_cmd.h (shop): the `shop projections` command
 * (projections_cmd.c).
 */
#ifndef SHOP_PROJECTIONS_CMD_H
#define SHOP_PROJECTIONS_CMD_H

/* argv holds the arguments after "projections". Returns the exit code:
 * 0 done, 1 failed, 2 usage. */
int shop_projections_main(int argc, char **argv);

#endif
