/* guard: see guard.h. One mapping reused per process (Check forks per test). */
#include "guard.h"

#include <assert.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUARD_MAX (1u << 20)

static unsigned char *region;
static size_t region_len;

void *guard_copy(const void *data, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    assert(len <= GUARD_MAX);
    if (region == NULL) {
        region_len = GUARD_MAX + 2 * page;
        region = mmap(NULL, region_len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert(region != MAP_FAILED);
        /* The last page stays unmapped-in-effect: any access faults. */
        int rc = mprotect(region + region_len - page, page, PROT_NONE);
        assert(rc == 0);
        (void)rc;
    }
    unsigned char *end = region + region_len - page;
    memcpy(end - len, data, len);
    return end - len;
}

void guard_release(void)
{
    if (region != NULL) {
        munmap(region, region_len);
        region = NULL;
    }
}
