/* The host interface of mothership payloads (SPEC §7), for modules written in C without libc.
 * Build with the toolchain's clang: see build.sh. All integers are i32; pointers index this
 * module's exported `memory`. */
#ifndef MOTHERSHIP_PAYLOAD_H
#define MOTHERSHIP_PAYLOAD_H

#define HOST(name) __attribute__((import_module("env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

/* The request JSON (in on_response: the response JSON): its length, then a copy. */
HOST(get_request) int get_request(void);
HOST(read_request) int read_request(char *buffer, int length);
/* 0 continue, 1 block. */
HOST(set_action) void set_action(int action);
/* Answer the client instead of the ship (request phase). Headers are a JSON object. */
HOST(set_block) void set_block(int status, const char *body, int body_length);
HOST(set_block_with_headers)
void set_block_with_headers(int status, const char *body, int body_length, const char *headers, int headers_length);
/* 0 debug, 1 warn, 2 info, 3 error. */
HOST(log) void host_log(int level, const char *message, int length);
/* Ours: change the forwarded path (a `?query` in it replaces the query), set or remove a header
 * (request headers in on_request, response headers in on_response), read the module's config. */
HOST(set_path) void set_path(const char *path, int length);
HOST(set_header) void set_header(const char *name, int name_length, const char *value, int value_length);
HOST(remove_header) void remove_header(const char *name, int name_length);
HOST(get_config) int get_config(void);
HOST(read_config) int read_config(char *buffer, int length);

enum { LOG_DEBUG = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_ERROR = 3 };

/* --- small helpers (no libc) --- */

static inline int text_length(const char *text) {
    int length = 0;
    while (text[length]) length++;
    return length;
}

static inline int same_bytes(const char *a, const char *b, int length) {
    for (int i = 0; i < length; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* Where `"key":"` starts its string value in a JSON document, or -1; the value's raw (still
 * escaped) length goes to *length. Good enough for the flat documents the host writes: inside
 * string values a quote is always escaped, so the pattern only matches a real key. */
static inline int json_string(const char *json, int json_length, const char *key, int *length) {
    int key_length = text_length(key);
    for (int i = 0; i + key_length + 4 <= json_length; i++) {
        if (json[i] != '"' || !same_bytes(json + i + 1, key, key_length)) continue;
        int at = i + 1 + key_length;
        if (json[at] != '"' || json[at + 1] != ':' || json[at + 2] != '"') continue;
        int start = at + 3, end = start;
        while (end < json_length && json[end] != '"') end += json[end] == '\\' ? 2 : 1;
        if (end > json_length) return -1;
        *length = end - start;
        return start;
    }
    return -1;
}

#endif
