/* Request phase: lets a request through only with the right API key.
 *
 *   [[modules]]
 *   name = "api-key-gate"
 *   wasm = "api_key_gate.wasm"
 *   routes = ["/api/.*"]
 *   phase = "request"
 *   config = { api_key = "s3cret" }   # optional: header = "x-api-key" (lower case)
 *
 * A request without the key, or with another, is answered 401 with a JSON body. */
#include "payload.h"

static char request[32768];
static char config[4096];
static char header_key[128];

static const char denied[] = "{\"error\":\"missing or invalid API key\"}";
static const char denied_headers[] =
    "{\"content-type\":\"application/json\",\"www-authenticate\":\"ApiKey\",\"cache-control\":\"no-store\"}";

EXPORT(on_request) void on_request(void) {
    int config_length = read_config(config, sizeof config);
    int request_length = get_request();
    if (request_length > (int)sizeof request) {
        host_log(LOG_WARN, "request too large to inspect; refused", 37);
        set_block_with_headers(401, denied, sizeof denied - 1, denied_headers, sizeof denied_headers - 1);
        return;
    }
    read_request(request, request_length);

    int expected_length = 0;
    int expected = json_string(config, config_length, "api_key", &expected_length);
    if (expected < 0 || expected_length == 0) {
        host_log(LOG_ERROR, "no api_key in config: refusing everything", 41);
        set_block(503, "gate not configured\n", 20);
        return;
    }
    /* The header to look for: `header` from config, else x-api-key. */
    const char *name = "x-api-key";
    int name_length = 0;
    int configured = json_string(config, config_length, "header", &name_length);
    if (configured >= 0 && name_length > 0 && name_length < (int)sizeof header_key) {
        for (int i = 0; i < name_length; i++) header_key[i] = config[configured + i];
        header_key[name_length] = 0;
        name = header_key;
    }
    int given_length = 0;
    int given = json_string(request, request_length, name, &given_length);
    if (given >= 0 && given_length == expected_length &&
        same_bytes(request + given, config + expected, expected_length)) {
        set_action(0);
        return;
    }
    host_log(LOG_INFO, "rejected a request without a valid API key", 42);
    set_block_with_headers(401, denied, sizeof denied - 1, denied_headers, sizeof denied_headers - 1);
}
