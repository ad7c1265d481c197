import NIOPosix
import Relay
import ShipManifest
import Testing

@testable import Probes

@Suite("NIO health check")
struct HealthCheckTests {
    let check = NIOHealthCheck()
    /// For a probe that must succeed: long enough for a loaded machine (the whole suite at once on
    /// two cores delayed one past 2 s); a probe that must fail is answered at once either way.
    static let patient = Duration.seconds(30)

    @Test(.timeLimit(.minutes(1)))
    func probeIsTrueWhileHealthAnswers200AndFalseOn503() async throws {
        let health = HealthAnswer(status: 200)
        try await withEndpoint(health: health) { _, address in
            #expect(await check.probe(address, path: "/health", timeout: Self.patient))
            health.set(status: 503, body: #"{"status":"draining"}"#)
            #expect(await !check.probe(address, path: "/health", timeout: .seconds(2)))
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func probeIsFalseForAMissingPath() async throws {
        try await withEndpoint { _, address in
            #expect(await !check.probe(address, path: "/nope", timeout: .seconds(2)))
            #expect(await check.probe(address, path: "metrics", timeout: Self.patient))
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func probeIsFalseQuicklyForAClosedPort() async throws {
        let address = BindAddress.tcp(host: "127.0.0.1", port: try await closedPort())
        let clock = ContinuousClock()
        let start = clock.now
        // Refused at once: the probe must not wait out its timeout. The timeout is long so that the
        // bound tells the two apart even when a loaded machine delays the attempts' retries (a run
        // of the whole suite at load 13 took 5.7 s for the three refused attempts and their backoff).
        #expect(await !check.probe(address, path: "/health", timeout: .seconds(60)))
        #expect(start.duration(to: clock.now) < .seconds(20))
    }

    @Test(.timeLimit(.minutes(1)))
    func probeTimesOutAgainstAServerThatNeverAnswers() async throws {
        let silent = try await RawListener.start()
        let clock = ContinuousClock()
        let start = clock.now
        #expect(await !check.probe(silent.address, path: "/health", timeout: .milliseconds(300)))
        #expect(start.duration(to: clock.now) >= .milliseconds(250))
        // The server never answers: what ends the probe is its timeout, and it says so. (An upper
        // bound on the time taken measured the machine instead: 2 s, then 10 s, failed on a loaded
        // one, 2.4 s and 12.2 s; a hang is the time limit's to catch.)
        let connector = ProbeConnector(group: MultiThreadedEventLoopGroup.singleton)
        let result = await connector.run(
            ProbeEndpoint(connectingTo: silent.address),
            request: ProbeRequest(path: "/health", host: "127.0.0.1"), timeout: .milliseconds(300))
        #expect(result == .failure(.timedOut(.milliseconds(300))))
        await silent.close()
    }

    @Test(.timeLimit(.minutes(1)))
    func probeIsFalseForAMalformedResponse() async throws {
        let garbage = try await RawListener.start(reply: "SSH-2.0-OpenSSH_9.2\r\n\r\n")
        #expect(await !check.probe(garbage.address, path: "/health", timeout: .seconds(2)))
        await garbage.close()
    }

    @Test(.timeLimit(.minutes(1)))
    func probeWorksOverAUnixSocket() async throws {
        let health = HealthAnswer(status: 200)
        try await withEndpoint(on: .unix(path: temporarySocketPath()), health: health) { _, address in
            #expect(await check.probe(address, path: "/health", timeout: Self.patient))
            health.set(status: 503, body: "{}")
            #expect(await !check.probe(address, path: "/health", timeout: .seconds(2)))
            #expect(await check.accepts(address, timeout: Self.patient))
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func acceptsIsTrueForAListenerAndFalseOtherwise() async throws {
        let listener = try await RawListener.start()
        #expect(await check.accepts(listener.address, timeout: Self.patient))
        await listener.close()
        let closed = BindAddress.tcp(host: "127.0.0.1", port: try await closedPort())
        #expect(await !check.accepts(closed, timeout: .seconds(2)))
        #expect(await !check.accepts(.unix(path: temporarySocketPath()), timeout: .seconds(2)))
    }

    @Test(.timeLimit(.minutes(1)))
    func aWildcardBindIsProbedOnLoopback() async throws {
        try await withEndpoint { _, address in
            let wildcard = BindAddress.tcp(host: "0.0.0.0", port: address.port ?? 0)
            #expect(await check.probe(wildcard, path: "/health", timeout: Self.patient))
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aCancelledProbeReturnsFalsePromptly() async throws {
        let silent = try await RawListener.start()
        let probing = Task { await check.probe(silent.address, path: "/health", timeout: .seconds(30)) }
        probing.cancel()
        #expect(await probing.value == false)
        await silent.close()
    }

    @Test(.timeLimit(.minutes(1)))
    func probeAndUplinkWorkOverIPv6Loopback() async throws {
        let endpoint = MetricsEndpoint(
            address: .tcp(host: "::1", port: 0), metrics: { "" }, health: { (200, "{}") })
        // A machine without IPv6 loopback has nothing to test here.
        guard let port = try? await endpoint.start() else { return }
        let address = BindAddress.tcp(host: "::1", port: port)
        #expect(await check.probe(address, path: "/health", timeout: Self.patient))
        let reports = await NIOUplinkCheck().check(
            [Uplink(name: "v6", url: "http://[::1]:\(port)/health")], environment: [:])
        #expect(reports.first?.address == "[::1]:\(port)")
        #expect(reports.first?.isUp == true)
        await endpoint.stop()
    }
}
