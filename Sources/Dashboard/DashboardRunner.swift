import Supervision

/// What the dashboard asks of the rest of mothership, provided by the executable.
public struct DashboardServices: Sendable {
    /// The current fleet, binds, request total and modules.
    public var snapshot: @Sendable () async -> DashboardSnapshot
    /// Every vessel's output ring, plus `DashboardState.mothershipEntry` for mothership's own log.
    public var logs: OutputLog
    /// The supervisor's restart of one vessel; false when it has no process to restart.
    public var restart: @Sendable (String) async -> Bool
    /// The same graceful landing as SIGTERM.
    public var land: @Sendable () async -> Void

    public init(
        snapshot: @escaping @Sendable () async -> DashboardSnapshot, logs: OutputLog,
        restart: @escaping @Sendable (String) async -> Bool, land: @escaping @Sendable () async -> Void
    ) {
        self.snapshot = snapshot
        self.logs = logs
        self.restart = restart
        self.land = land
    }
}

/// Where the dashboard draws and reads keys: `TerminalDevice`, or a fake in tests.
public protocol DashboardTerminal: Sendable {
    func size() -> TerminalSize
    /// Calls `bytes` with typed input and `resized` on a window change, until `restore()`.
    func listen(bytes: @escaping @Sendable ([UInt8]) -> Void, resized: @escaping @Sendable () -> Void)
    func write(_ text: String)
    /// Gives the terminal back as it was found. Idempotent.
    func restore()
}

extension TerminalDevice: DashboardTerminal {}

/// The dashboard's loop: keys and resizes in, frames out. A frame is drawn at most every 200 ms
/// (5 per second), and written only where it differs from the one on screen (nothing when nothing
/// changed). Runs until cancelled;
/// the terminal is restored before it returns.
public struct DashboardRunner<C: Clock>: Sendable where C.Duration == Duration {
    let services: DashboardServices
    let clock: C
    let frameInterval: Duration

    public init(services: DashboardServices, clock: C, frameInterval: Duration = .milliseconds(200)) {
        self.services = services
        self.clock = clock
        self.frameInterval = frameInterval
    }

    enum Event: Sendable {
        case input([UInt8])
        case resized
        case tick
        case notice(String)
    }

    public func run(on terminal: some DashboardTerminal) async {
        defer { terminal.restore() }
        let (events, continuation) = AsyncStream.makeStream(of: Event.self)
        terminal.listen(
            bytes: { continuation.yield(.input($0)) }, resized: { continuation.yield(.resized) })
        let interval = frameInterval
        let clock = self.clock
        let ticker = Task {
            while !Task.isCancelled {
                do { try await clock.sleep(for: interval / 2) } catch { return }
                continuation.yield(.tick)
            }
        }
        defer { ticker.cancel() }

        let origin = clock.now
        var state = DashboardState()
        var decoder = KeyDecoder()
        var meter = RateMeter()
        var size = terminal.size()
        var shown: ScreenBuffer?
        var lastFrame: C.Instant?
        var snapshot = await services.snapshot()
        var pendingSince: C.Instant?

        await withTaskCancellationHandler {
            for await event in events {
                switch event {
                case .input(let bytes):
                    let context = self.context(snapshot, state: state, size: size)
                    for key in decoder.feed(bytes) {
                        if let action = state.handle(key, in: context) { perform(action, continuation) }
                    }
                    pendingSince = decoder.hasPending ? clock.now : nil
                case .notice(let text):
                    state.notice = text
                case .resized:
                    size = terminal.size()
                    shown = nil
                case .tick:
                    if let since = pendingSince, since.duration(to: clock.now) >= .milliseconds(50) {
                        let context = self.context(snapshot, state: state, size: size)
                        for key in decoder.flush() {
                            if let action = state.handle(key, in: context) { perform(action, continuation) }
                        }
                        pendingSince = nil
                    }
                }
                if let last = lastFrame, last.duration(to: clock.now) < interval { continue }
                snapshot = await services.snapshot()
                if let total = snapshot.requestsTotal {
                    snapshot.requestRate = meter.sample(total, at: origin.duration(to: clock.now))
                }
                let log = excerpt(snapshot, state: state)
                let frame = Renderer.render(snapshot, state: state, log: log, size: size)
                terminal.write(FrameEncoder.encode(frame, over: shown))
                shown = frame
                lastFrame = clock.now
            }
        } onCancel: {
            continuation.finish()
        }
    }

    func perform(_ action: DashboardAction, _ events: AsyncStream<Event>.Continuation) {
        let services = self.services
        switch action {
        case .restart(let name):
            Task {
                if !(await services.restart(name)) {
                    events.yield(.notice("\(name) has no process to restart (waiting, backing off or done)"))
                }
            }
        case .land: Task { await services.land() }
        }
    }

    /// The selected log entry's lines (the Logs tab only).
    func excerpt(_ snapshot: DashboardSnapshot, state: DashboardState) -> LogExcerpt {
        guard state.tab == .logs else { return .empty }
        let entries = snapshot.fleet.vessels.map(\.name) + [DashboardState.mothershipEntry]
        guard let name = state.selection(in: entries) else { return .empty }
        return LogExcerpt(lines: services.logs.lines(of: name), total: services.logs.total(of: name))
    }

    func context(_ snapshot: DashboardSnapshot, state: DashboardState, size: TerminalSize) -> DashboardContext
    {
        let log = excerpt(snapshot, state: state)
        return DashboardContext(
            vessels: snapshot.fleet.vessels.map(\.name), moduleCount: snapshot.modules.count,
            logTotal: log.total, logRetained: log.lines.count, logPage: Renderer.logPage(for: size))
    }
}

extension DashboardRunner where C == ContinuousClock {
    public init(services: DashboardServices) {
        self.init(services: services, clock: ContinuousClock())
    }
}
