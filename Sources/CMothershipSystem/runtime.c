#include "CMothershipSystem.h"

#include <stdbool.h>

// The Swift runtime's switch for dynamic exclusivity checking (swift_beginAccess returns at once
// when it is set). Defined in libswiftCore; not part of a public header.
extern bool _swift_disableExclusivityChecking;

void ms_disable_exclusivity_checking(void) { _swift_disableExclusivityChecking = true; }
