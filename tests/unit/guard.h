/*
 * guard: place test input flush against an unmapped page, so a parser that
 * reads one byte past what it was given faults (picohttpparser's technique).
 */
#ifndef WSM_TEST_GUARD_H
#define WSM_TEST_GUARD_H

#include <stddef.h>

/*
 * Copy data[0..len) so that its last byte is the last byte before a
 * PROT_NONE page. The copy is writable (parsers unmask in place). Valid until
 * the next guard_copy() or guard_release(); len must be <= 1 MiB.
 */
void *guard_copy(const void *data, size_t len);
void guard_release(void);

#endif
