#include <zlib.h>

/// `deflateInit2` is a macro; Swift cannot call it.
static inline int czlib_deflate_init(z_streamp stream, int level, int window_bits, int mem_level) {
    return deflateInit2(stream, level, Z_DEFLATED, window_bits, mem_level, Z_DEFAULT_STRATEGY);
}

/// `inflateInit2` is a macro too (tests decode what the relay encodes).
static inline int czlib_inflate_init(z_streamp stream, int window_bits) {
    return inflateInit2(stream, window_bits);
}
