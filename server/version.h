/*
 * version: the one place the release number is written (wsmaster -v, the
 * start-up log line, /metrics' wschat_build_info).
 */
#ifndef WSM_VERSION_H
#define WSM_VERSION_H

#define WSCHAT_VERSION "0.1.0"

#endif
