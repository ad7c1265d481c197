import ShipManifest
import Supervision
import Testing

@testable import Probes

@Suite("NIO uplink check")
struct UplinkCheckTests {
    let check = NIOUplinkCheck()
    /// For an uplink that must be up: long enough for a loaded machine (the start of a whole-suite
    /// run on two cores kept a local connect past the default 5 s in a clean-machine CI run); an
    /// uplink that must be down is answered at once either way.
    static let patient = Duration.seconds(30)

    @Test(.timeLimit(.minutes(1)))
    func aListeningPortIsUp() async throws {
        let listener = try await RawListener.start()
        let reports = await check.check(
            [Uplink(name: "db", url: "postgres://app@127.0.0.1:\(listener.port)/app", timeout: Self.patient)],
            environment: [:])
        #expect(reports.count == 1)
        #expect(reports.first?.isUp == true)
        #expect(reports.first?.address == "127.0.0.1:\(listener.port)")
        #expect((reports.first?.latency ?? .zero) > .zero)
        await listener.close()
    }

    @Test(.timeLimit(.minutes(1)))
    func aClosedPortIsConnectionRefused() async throws {
        let port = try await closedPort()
        let reports = await check.check(
            [Uplink(name: "cache", url: "redis://127.0.0.1:\(port)")], environment: [:])
        #expect(reports.first?.error == "connection refused")
        #expect(reports.first?.address == "127.0.0.1:\(port)")
    }

    @Test(.timeLimit(.minutes(1)))
    func uplinksOnTheSameHostAndPortShareOneConnection() async throws {
        let listener = try await RawListener.start()
        let reports = await check.check(
            [
                Uplink(
                    name: "primary", url: "postgres://127.0.0.1:\(listener.port)/one", timeout: Self.patient),
                Uplink(name: "replica", url: "tcp://127.0.0.1:\(listener.port)", timeout: Self.patient),
            ], environment: [:])
        #expect(reports.map(\.isUp) == [true, true])
        #expect(reports[0].latency == reports[1].latency)
        // A marker connection made afterwards is accepted after every earlier one.
        let marker = try await RawConnection.with(listener.address) { $0.localPort }
        #expect(await listener.acceptedBefore(remotePort: marker) == 1)
        await listener.close()
    }

    @Test(.timeLimit(.minutes(1)))
    func anUndefinedVariableIsNamed() async throws {
        let reports = await check.check(
            [Uplink(name: "db", url: "postgres://user:${DB_PASSWORD}@${DB_HOST}:5432/app")],
            environment: ["DB_PASSWORD": "hunter2"])
        #expect(reports.first?.isUp == false)
        #expect(reports.first?.error == "environment variable 'DB_HOST' is not set")
        #expect(reports.first?.address == "postgres://user:***@${DB_HOST}:5432/app")
    }

    @Test(.timeLimit(.minutes(1)))
    func expandedVariablesAreChecked() async throws {
        let listener = try await RawListener.start()
        let reports = await check.check(
            [Uplink(name: "db", url: "tcp://$DB_HOST:${DB_PORT}", timeout: Self.patient)],
            environment: ["DB_HOST": "127.0.0.1", "DB_PORT": "\(listener.port)"])
        #expect(reports.first?.isUp == true)
        #expect(reports.first?.address == "127.0.0.1:\(listener.port)")
        await listener.close()
    }

    @Test(.timeLimit(.minutes(1)))
    func httpUplinkIsUpBelow500AndDownOn503() async throws {
        let health = HealthAnswer(status: 503, body: #"{"status":"launching"}"#)
        try await withEndpoint(health: health) { _, address in
            let port = address.port ?? 0
            let reports = await check.check(
                [Uplink(name: "api", url: "http://127.0.0.1:\(port)/health")], environment: [:])
            #expect(reports.first?.error == "HTTP 503")
            #expect(reports.first?.address == "127.0.0.1:\(port)")

            health.set(status: 200, body: "{}")
            let healthy = await check.check(
                [Uplink(name: "api", url: "http://127.0.0.1:\(port)/health", timeout: Self.patient)],
                environment: [:])
            #expect(healthy.first?.isUp == true)
            let missing = await check.check(
                [Uplink(name: "api", url: "http://127.0.0.1:\(port)/missing", timeout: Self.patient)],
                environment: [:])
            #expect(missing.first?.isUp == true, "404 is below 500: the service is there")
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func anHTTPUplinkThatNeverAnswersTimesOut() async throws {
        let silent = try await RawListener.start()
        let reports = await check.check(
            [Uplink(name: "api", url: "http://127.0.0.1:\(silent.port)/", timeout: .milliseconds(300))],
            environment: [:])
        #expect(reports.first?.error == "timed out after 300ms")
        await silent.close()
    }

    @Test(.timeLimit(.minutes(1)))
    func reportsComeBackInInputOrder() async throws {
        let up = try await RawListener.start()
        let down = try await closedPort()
        let uplinks = [
            Uplink(name: "a", url: "tcp://127.0.0.1:\(down)"),
            Uplink(name: "b", url: "redis://127.0.0.1:\(up.port)", timeout: Self.patient),
            Uplink(name: "c", url: "mysql://$MISSING/db"),
            Uplink(name: "d", url: "not a url"),
            Uplink(name: "e", url: "tcp://127.0.0.1:\(up.port)", timeout: Self.patient),
        ]
        let reports = await check.check(uplinks, environment: [:])
        #expect(reports.map(\.name) == ["a", "b", "c", "d", "e"])
        #expect(reports.map(\.isUp) == [false, true, false, false, true])
        #expect((reports.filter(\.isUp).map(\.latency).min() ?? .zero) > .zero)
        await up.close()
    }

    @Test(.timeLimit(.minutes(1)))
    func aPasswordNeverAppearsInAReport() async throws {
        let port = try await closedPort()
        let reports = await check.check(
            [
                Uplink(name: "db", url: "postgres://app:s3cret@127.0.0.1:\(port)/app"),
                Uplink(name: "bad", url: "postgres://app:s3cret@bad host:5432/app"),
                Uplink(name: "env", url: "postgres://app:$PASSWORD@127.0.0.1:\(port)/app"),
            ], environment: ["PASSWORD": "s3cret"])
        for report in reports {
            #expect(!report.address.contains("s3cret"))
            #expect(!(report.error ?? "").contains("s3cret"))
        }
        #expect(reports[1].error?.contains("is not a valid host name") == true)
    }

    @Test func failuresReadAsOperatorMessages() {
        #expect(ProbeFailure.noSuchHost("db.internal").description == "no such host 'db.internal'")
        #expect(ProbeFailure.timedOut(.seconds(5)).description == "timed out after 5s")
        #expect(ProbeFailure.refused.description == "connection refused")
    }
}
