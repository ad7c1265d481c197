/* The benchmark's trivial request-phase module: sees every request and lets it through. */
#include "../Examples/payloads/payload.h"

EXPORT(on_request) void on_request(void) { set_action(0); }
