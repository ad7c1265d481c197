/* Request phase: rewrites a path prefix before the route table sees the request (the query stays).
 *
 *   [[modules]]
 *   name = "rewriter"
 *   wasm = "path_rewriter.wasm"
 *   routes = ["/old/.*"]
 *   phase = "request"
 *   config = { from = "/old/", to = "/new/" }
 *
 * `/old/items?x=1` is routed and forwarded as `/new/items?x=1`. */
#include "payload.h"

static char request[32768];
static char config[4096];
static char path[8192];

EXPORT(on_request) void on_request(void) {
    int config_length = read_config(config, sizeof config);
    int from_length = 0, to_length = 0;
    int from = json_string(config, config_length, "from", &from_length);
    int to = json_string(config, config_length, "to", &to_length);
    if (from < 0 || to < 0) {
        host_log(LOG_ERROR, "config needs from and to", 24);
        return;
    }
    int request_length = get_request();
    if (request_length > (int)sizeof request) return; /* too large to inspect: left alone */
    read_request(request, request_length);
    int path_length = 0;
    int at = json_string(request, request_length, "path", &path_length);
    if (at < 0 || path_length < from_length || !same_bytes(request + at, config + from, from_length)) return;
    int rest = path_length - from_length;
    if (to_length + rest > (int)sizeof path) return;
    for (int i = 0; i < to_length; i++) path[i] = config[to + i];
    for (int i = 0; i < rest; i++) path[to_length + i] = request[at + from_length + i];
    set_path(path, to_length + rest);
    host_log(LOG_DEBUG, "path rewritten", 14);
}
