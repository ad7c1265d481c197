import DockingProtocol
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

extension BayBerth {
    /// Connects to the bay's socket, retrying until `timeout` (the bay binds it once it is ready),
    /// waits for Dock and answers Moored with `config`. Returns the docked link; throws
    /// `BayDockingError` when the time runs out, `CancellationError` when cancelled.
    public func dock(socketPath: String, config: [String: String], timeout: Duration) async throws
        -> BerthLink
    {
        let deadline =
            NIODeadline.now()
            + .nanoseconds(
                Int64(timeout.components.seconds) * 1_000_000_000
                    + timeout.components.attoseconds / 1_000_000_000)
        var lastFailure = "nothing accepted the connection"
        while true {
            try Task.checkCancellation()
            let moored = loop.makePromise(of: UInt32.self)
            let lost = loop.makePromise(of: String.self)
            do {
                let channel = try await ClientBootstrap(group: loop)
                    .channelOption(.writeBufferWaterMark, value: Self.linkWaterMarks)
                    .channelOption(.recvAllocator, value: Self.linkReceiveBuffers)
                    .connectTimeout(.seconds(1))
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let pipeline = channel.pipeline.syncOperations
                            // Typed Cargo's limit; a link without it is held to
                            // the original's by the berth.
                            try pipeline.addHandler(
                                ByteToMessageHandler(
                                    DockingFrameDecoder(maxPayload: DockingCodec.maxTypedPayload)))
                            try pipeline.addHandler(
                                BayLinkHandler(berth: self, config: config, moored: moored, lost: lost))
                        }
                    }
                    .connect(unixDomainSocketPath: socketPath).get()
                let timer = loop.scheduleTask(deadline: deadline) { channel.close(promise: nil) }
                do {
                    let generation = try await withTaskCancellationHandler {
                        try await moored.futureResult.get()
                    } onCancel: {
                        channel.close(promise: nil)
                    }
                    timer.cancel()
                    return BerthLink(berth: self, generation: generation, lost: lost.futureResult)
                } catch {
                    timer.cancel()
                    try Task.checkCancellation()
                    lastFailure = NIODeadline.now() >= deadline ? "connected, but no Dock came" : "\(error)"
                }
            } catch let error as CancellationError {
                throw error
            } catch {
                moored.fail(error)
                lost.succeed("never docked")
                lastFailure = "\(error)"
            }
            guard NIODeadline.now() + limits.dockRetryInterval < deadline else {
                throw BayDockingError("no dock on \(socketPath) within the start timeout: \(lastFailure)")
            }
            try await Task.sleep(for: .nanoseconds(limits.dockRetryInterval.nanoseconds))
        }
    }

    /// Removes a socket file an earlier process of the bay left behind.
    public func clear(socketPath: String) { unlink(socketPath) }

    /// Backpressure on the link starts once 1 MiB waits to be written to the bay.
    static let linkWaterMarks = ChannelOptions.Types.WriteBufferWaterMark(low: 256 * 1024, high: 1024 * 1024)
    static let linkReceiveBuffers = AdaptiveRecvByteBufferAllocator(
        minimum: 1024, initial: 16 * 1024, maximum: 256 * 1024)
}

/// A docked link, as the fleet's side sees it.
public struct BerthLink: Sendable {
    let berth: BayBerth
    let generation: UInt32
    let lostFuture: EventLoopFuture<String>

    init(berth: BayBerth, generation: UInt32, lost: EventLoopFuture<String>) {
        self.berth = berth
        self.generation = generation
        self.lostFuture = lost
    }

    /// Suspends until the link is lost; returns why.
    public func lost() async -> String {
        (try? await lostFuture.get()) ?? "the link failed"
    }

    /// Closes the link (its clients are closed with 1011).
    public func close() {
        let core = berth.core
        let generation = self.generation
        berth.loop.execute { core.value.closeLink(generation: generation) }
    }

    /// How many WebSocket clients the link carries now (0 once it is gone).
    public func passengers() async -> Int {
        let core = berth.core
        let generation = self.generation
        return (try? await berth.loop.submit { core.value.clientCount(generation: generation) }.get()) ?? 0
    }

    /// Ends a replaced link: its remaining clients are closed with 1001 and announced to the bay
    /// with Disembark, then the link closes. The future completes once the clients have left the
    /// link, so the bay's process may be stopped after it without its clients seeing the link's
    /// loss (1011) first.
    @discardableResult
    public func retire() -> EventLoopFuture<Void> {
        let core = berth.core
        let generation = self.generation
        return berth.loop.submit { core.value.retire(generation: generation) }
    }
}
