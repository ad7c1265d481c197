import NIOCore
import NIOHTTP1
import Synchronization

/// The open `/events` streams (Server-Sent Events) and the one task that feeds them.
///
/// The task runs only while at least one stream is open: it reads the fleet every `pollInterval`,
/// sends the document to streams that just opened and to every stream when its fingerprint changed,
/// and a comment line as heartbeat. With nobody connected nothing runs.
final class EventStreams: Sendable {
    private struct Stream {
        let channel: any Channel
        var fresh: Bool
    }

    private struct State {
        var streams: [ObjectIdentifier: Stream] = [:]
        var polling = false
        var fingerprint: String?
    }

    private let state = Mutex(State())
    private let console: any WebConsole
    private let settings: WebDashboardSettings

    init(console: any WebConsole, settings: WebDashboardSettings) {
        self.console = console
        self.settings = settings
    }

    var count: Int { state.withLock { $0.streams.count } }

    /// Adds a stream, before its response head is written (on the channel's event loop, which the
    /// events sent to it reach only after); false when `maximumStreams` are open.
    func admit(_ channel: any Channel) -> Bool {
        let start: Bool? = state.withLock { state in
            guard state.streams.count < settings.maximumStreams else { return nil }
            state.streams[ObjectIdentifier(channel)] = Stream(channel: channel, fresh: true)
            guard !state.polling else { return false }
            state.polling = true
            state.fingerprint = nil
            return true
        }
        guard let start else { return false }
        if start { Task { await poll() } }
        return true
    }

    func remove(_ channel: any Channel) {
        _ = state.withLock { $0.streams.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    private func poll() async {
        let clock = ContinuousClock()
        var lastBeat = clock.now
        while true {
            let fleet = await console.fleet()
            let now = clock.now
            let beat = now - lastBeat >= settings.heartbeat
            if beat { lastBeat = now }
            let sends: [(any Channel, String)]? = state.withLock { state in
                if state.streams.isEmpty {
                    state.polling = false
                    return nil
                }
                let changed = state.fingerprint != fleet.fingerprint
                state.fingerprint = fleet.fingerprint
                var sends: [(any Channel, String)] = []
                for (key, stream) in state.streams {
                    if stream.fresh || changed {
                        sends.append((stream.channel, Self.event(fleet.json)))
                        state.streams[key]?.fresh = false
                    } else if beat {
                        sends.append((stream.channel, ": heartbeat\n\n"))
                    }
                }
                return sends
            }
            guard let sends else { return }
            for (channel, text) in sends {
                let buffer = channel.allocator.buffer(string: text)
                channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: nil)
            }
            try? await Task.sleep(for: settings.pollInterval)
        }
    }

    /// One `data:` event; the document is one line of JSON.
    static func event(_ json: String) -> String {
        "data: " + json + "\n\n"
    }
}
