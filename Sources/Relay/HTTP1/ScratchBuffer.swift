import NIOCore

/// A connection's buffer for the heads it writes, used again for the next head once nothing else
/// holds it (the write went out and the exchange is over): no allocation per head in the usual
/// case. A buffer still shared is simply not used again (clearing it would copy).
///
/// An object, held by a constant reference: taking and keeping touch only its own property, never
/// a property of the connection across the allocation or the clearing (with exclusivity checked,
/// a struct's mutating methods kept a runtime check on every use of the connection's property).
final class ScratchBuffer {
    private var kept: ByteBuffer?
    /// Larger buffers are not kept: a connection's idle memory stays small.
    private static let keepLimit = 4096

    /// An empty buffer with room for at least `capacity` bytes.
    func take(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        if var buffer = kept {
            kept = nil
            if buffer.capacity >= capacity {
                buffer.clear()
                return buffer
            }
        }
        return allocator.buffer(capacity: max(capacity, 512))
    }

    /// Keeps `buffer` for the next `take` (its bytes are not changed by keeping it).
    func keep(_ buffer: ByteBuffer) {
        if buffer.capacity <= Self.keepLimit { kept = buffer }
    }
}
