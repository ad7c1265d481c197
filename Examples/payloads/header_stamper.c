/* Response phase: stamps a header on every response it sees and drops `X-Powered-By`.
 *
 *   [[modules]]
 *   name = "stamper"
 *   wasm = "header_stamper.wasm"
 *   routes = ["/.*"]
 *   phase = "response"
 *   config = { header = "X-Served-By", value = "mothership" }   # these are the defaults
 */
#include "payload.h"

static char config[4096];

EXPORT(on_response) void on_response(void) {
    int config_length = read_config(config, sizeof config);
    int name_length = 0, value_length = 0;
    int name = json_string(config, config_length, "header", &name_length);
    int value = json_string(config, config_length, "value", &value_length);
    if (name >= 0 && name_length > 0)
        set_header(config + name, name_length,
                   value >= 0 ? config + value : "mothership", value >= 0 ? value_length : 10);
    else
        set_header("X-Served-By", 11, value >= 0 ? config + value : "mothership", value >= 0 ? value_length : 10);
    remove_header("x-powered-by", 12);
}
