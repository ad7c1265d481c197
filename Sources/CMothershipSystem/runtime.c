#include "CMothershipSystem.h"

#include <stdbool.h>

// The Swift runtime's switch for dynamic exclusivity checking (swift_beginAccess returns at once
// when it is set). Defined in libswiftCore; not part of a public header.
extern bool _swift_disableExclusivityChecking;

void ms_disable_exclusivity_checking(void) { _swift_disableExclusivityChecking = true; }

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

long ms_release_startup_code(void) {
    char exe[PATH_MAX];
    ssize_t length = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (length <= 0) return -1;
    exe[length] = 0;
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps) return -1;
    char line[PATH_MAX + 256];
    long released = 0;
    while (fgets(line, sizeof line, maps)) {
        unsigned long start, end, offset, inode;
        char perms[8], device[32], path[PATH_MAX];
        path[0] = 0;
        if (sscanf(line, "%lx-%lx %7s %lx %31s %lu %4095s", &start, &end, perms, &offset, device, &inode, path) < 7)
            continue;
        // Only the executable's code: read-only, never written, nothing relocated in it (no text
        // relocations), so dropping its page-table entries loses nothing. Data and RELRO pages, which
        // the loader may have written, are never touched.
        if (strcmp(perms, "r-xp") != 0 || strcmp(path, exe) != 0) continue;
        if (madvise((void *)start, end - start, MADV_DONTNEED) == 0) released += (long)(end - start);
    }
    fclose(maps);
    return released;
}
