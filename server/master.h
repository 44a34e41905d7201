/*
 * master: the root process (see master.c). Called by main() with a validated
 * configuration; runs until stopped and exits the process.
 */
#ifndef WSM_MASTER_H
#define WSM_MASTER_H

#include "config.h"
#include "version.h"

void master_run(const struct config *cfg) __attribute__((noreturn));

#endif
