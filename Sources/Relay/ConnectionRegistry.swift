import NIOCore
import Synchronization

/// The open connections of a listener, so that stopping it can close them too (a keep-alive client
/// would otherwise hold its connection open after the listener is gone).
final class ConnectionRegistry: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var closing = false
    }
    private let state = Mutex(State())

    /// Tracks `channel` until it closes; a channel accepted after `closeAll()` began is closed at once.
    func add(_ channel: any Channel) {
        let accepted = state.withLock { state -> Bool in
            guard !state.closing else { return false }
            state.channels[ObjectIdentifier(channel)] = channel
            return true
        }
        guard accepted else {
            channel.close(promise: nil)
            return
        }
        channel.closeFuture.whenComplete { [weak self] _ in
            self?.state.withLock { _ = $0.channels.removeValue(forKey: ObjectIdentifier(channel)) }
        }
    }

    /// Closes every tracked connection and waits until they are closed.
    func closeAll() async {
        let channels = state.withLock { state in
            state.closing = true
            return Array(state.channels.values)
        }
        for channel in channels { channel.close(promise: nil) }
        for channel in channels { try? await channel.closeFuture.get() }
    }
}

extension ConnectionRegistry {
    /// Asks every connection to close after its current response (`RelayDrainEvent`), waits up to
    /// `timeout` for them to go, then closes the rest.
    func drain(timeout: TimeAmount) async {
        let channels = state.withLock { state in
            state.closing = true
            return Array(state.channels.values)
        }
        for channel in channels {
            channel.pipeline.fireUserInboundEventTriggered(RelayDrainEvent())
        }
        let deadline = NIODeadline.now() + timeout
        for channel in channels {
            let remaining = deadline - NIODeadline.now()
            if remaining <= .zero { break }
            let closed = channel.closeFuture
            let timer = channel.eventLoop.scheduleTask(in: remaining) { channel.close(promise: nil) }
            try? await closed.get()
            timer.cancel()
        }
        for channel in channels { channel.close(promise: nil) }
    }
}
