import FlagshipElection
import ShipManifest
import Testing

/// The pure parts of the election: URL parsing, identities, the breaker, the row and its steps.
@Suite("Flagship election decisions")
struct ElectionDecisionTests {
    @Test(
        arguments: [
            (
                "postgres://app:s3cret@db.internal:6543/shop?sslmode=disable", "db.internal", 6543, "app",
                "s3cret", "shop", PostgresURL.TLSMode.disable
            ),
            ("postgresql://db/app", "db", 5432, "postgres", nil, "app", .prefer),
            (
                "postgres://u%40corp:p%3Aw%2F@127.0.0.1", "127.0.0.1", 5432, "u@corp", "p:w/", "u@corp",
                .prefer
            ),
            ("postgres://u@[::1]:5433/x?sslmode=require", "::1", 5433, "u", nil, "x", .require),
            ("postgres://u@h/x?application_name=a&sslmode=verify-full", "h", 5432, "u", nil, "x", .verify),
        ] as [(String, String, Int, String, String?, String, PostgresURL.TLSMode)])
    func parsesPostgresURLs(
        text: String, host: String, port: Int, user: String, password: String?, database: String,
        tls: PostgresURL.TLSMode
    ) throws {
        let url = try PostgresURL(parsing: text)
        #expect(url.host == host)
        #expect(url.port == port)
        #expect(url.user == user)
        #expect(url.password == password)
        #expect(url.database == database)
        #expect(url.tls == tls)
        if let password { #expect(!url.description.contains(password)) }
    }

    @Test func redactsThePasswordAndRejectsOtherSchemes() throws {
        #expect(
            try PostgresURL(parsing: "postgres://app:s3cret@db:5432/shop").description
                == "postgres://app:***@db:5432/shop")
        #expect(throws: PostgresURL.ParseError.self) { try PostgresURL(parsing: "mysql://a:b@db/x") }
        #expect(throws: PostgresURL.ParseError.self) {
            try PostgresURL(parsing: "postgres://db/x?sslmode=maybe")
        }
        do {
            _ = try PostgresURL(parsing: "redis://u:hunter2@cache")
        } catch {
            #expect(!error.description.contains("hunter2"))
        }
    }

    @Test func lockKeyAndChannelComeFromTheDeploymentName() {
        let shop = DeploymentIdentity(name: "shop", deployID: "1")
        let again = DeploymentIdentity(name: "shop", deployID: "2")
        let blog = DeploymentIdentity(name: "blog", deployID: "1")
        #expect(shop.lockKey == again.lockKey && shop.channel == again.channel)
        #expect(shop.lockKey != blog.lockKey && shop.channel != blog.channel)
        #expect(shop.channel.hasPrefix("mothership_flagship_") && shop.channel.count == 36)
        #expect(shop.channel.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
    }

    @Test func deployIDIsMSDeployIDOrTheManifestsSHA256() {
        let hashed = DeploymentIdentity(name: "shop", environment: [:], manifestText: "abc")
        #expect(hashed.deployID == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hashed.shortDeployID == "ba7816bf8f01")
        let explicit = DeploymentIdentity(
            name: "shop", environment: ["MS_DEPLOY_ID": " v42\n"], manifestText: "abc")
        #expect(explicit.deployID == "v42")
        let empty = DeploymentIdentity(name: "shop", environment: ["MS_DEPLOY_ID": ""], manifestText: "abc")
        #expect(empty.deployID == hashed.deployID)
    }

    @Test func theBreakerRetriesWithGrowingDelaysThenOpens() {
        var breaker = ConnectionBreaker(
            initialDelay: .milliseconds(100), maximumDelay: .milliseconds(300), maxFailures: 5)
        let plenty = Duration.seconds(30)
        #expect(breaker.recordFailure(remaining: plenty) == .retry(after: .milliseconds(100)))
        #expect(breaker.recordFailure(remaining: plenty) == .retry(after: .milliseconds(200)))
        #expect(breaker.recordFailure(remaining: plenty) == .retry(after: .milliseconds(300)))
        #expect(breaker.recordFailure(remaining: plenty) == .retry(after: .milliseconds(300)))
        #expect(breaker.recordFailure(remaining: plenty) == .open(attempts: 5))
    }

    @Test func theBreakerOpensWhenTheNextAttemptWouldMissTheDeadline() {
        var breaker = ConnectionBreaker()
        #expect(breaker.recordFailure(remaining: .milliseconds(500)) == .retry(after: .milliseconds(100)))
        #expect(breaker.recordFailure(remaining: .milliseconds(150)) == .open(attempts: 2))
        breaker.recordSuccess()
        #expect(breaker.failures == 0)
    }

    @Test(
        arguments: [
            ("running", nil, FlagshipProgress.running),
            ("ready", nil, .ready),
            (
                "abort", "prelaunch job 'migrate' exited with status 1",
                .aborted(reason: "prelaunch job 'migrate' exited with status 1")
            ),
            ("abort", nil, .aborted(reason: "no reason recorded")),
        ] as [(String, String?, FlagshipProgress)])
    func readsTheStatusRow(state: String, detail: String?, expected: FlagshipProgress) {
        #expect(FlagshipProgress(state: state, detail: detail) == expected)
        #expect(expected.state == state)
    }

    @Test func unknownRowStatesAndForeignNotificationsAreIgnored() {
        #expect(FlagshipProgress(state: "exploded", detail: nil) == nil)
        #expect(FlagshipProgress.payload("ready", deployID: "v1") == "ready v1")
        #expect(FlagshipProgress.announced(by: "ready v1", for: "v1") == "ready")
        #expect(FlagshipProgress.announced(by: "abort v1", for: "v1") == "abort")
        #expect(FlagshipProgress.announced(by: "ready v2", for: "v1") == nil)
        #expect(FlagshipProgress.announced(by: "ready", for: "v1") == nil)
        #expect(FlagshipProgress.announced(by: "running v1", for: "v1") == nil)
    }

    @Test(
        arguments: [
            (nil, ElectionStep.tryLock),
            (FlagshipProgress.running, .tryLock),
            (.ready, .escortFinished(.ready)),
            (.aborted(reason: "x"), .escortFinished(.aborted(reason: "x"))),
        ] as [(FlagshipProgress?, ElectionStep)])
    func aFinishedReleaseNeedsNoLock(row: FlagshipProgress?, step: ElectionStep) {
        #expect(ElectionStep.afterFirstRead(row) == step)
    }

    @Test(
        arguments: [
            (false, nil, ElectionStep.escortWaiting),
            (false, FlagshipProgress.running, .escortWaiting),
            (true, nil, .flagship(takingOver: false)),
            (true, .running, .flagship(takingOver: true)),
            (true, .ready, .unlockThenEscort(.ready)),
            (true, .aborted(reason: "x"), .unlockThenEscort(.aborted(reason: "x"))),
        ] as [(Bool, FlagshipProgress?, ElectionStep)])
    func theLockDecidesUnlessTheReleaseFinishedMeanwhile(
        acquired: Bool, row: FlagshipProgress?, step: ElectionStep
    ) {
        #expect(ElectionStep.afterLock(acquired: acquired, rowNow: row) == step)
    }
}
