/* A request-phase module that reads the request JSON (method, headers, JA4H) and lets it through:
 * the cost of a module that looks at what it is handed. */
#include "../Examples/payloads/payload.h"

static char request[16384];

EXPORT(on_request) void on_request(void) {
    int length = get_request();
    if (length <= (int)sizeof request) read_request(request, length);
    set_action(0);
}
