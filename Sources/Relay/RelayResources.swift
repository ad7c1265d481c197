import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// The relay's own resources (SPEC §4): when it runs out of file descriptors or memory, that is
/// its failure, not a ship's. Such errors are answered 503, logged, and never counted against a
/// ship's circuit breaker; at start the open-files limit is raised as far as the system allows.
enum RelayResources {
    /// `errno` values that say the relay (or the machine) ran out, not the ship.
    static func isExhaustion(_ code: CInt) -> Bool {
        code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM
    }

    /// The exhaustion `errno` behind `error`, if that is what it is.
    static func exhaustion(in error: any Error) -> CInt? {
        if let error = error as? IOError { return isExhaustion(error.errnoCode) ? error.errnoCode : nil }
        if let error = error as? NIOConnectionError {
            for failure in error.connectionErrors {
                if let code = exhaustion(in: failure.error) { return code }
            }
        }
        return nil
    }

    /// The text of an `errno` (`too many open files`).
    static func describe(_ code: CInt) -> String { String(cString: strerror(code)).lowercased() }

    /// Raises the soft limit on open files to the hard limit and logs both.
    static func raiseOpenFilesLimit(logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Self.openFiles, &limit) == 0 else { return }
        let soft = limit.rlim_cur
        if soft < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            if setrlimit(Self.openFiles, &limit) == 0 {
                logger.info("open files limit raised from \(text(soft)) to \(text(limit.rlim_max))")
                return
            }
            logger.warning(
                "open files limit is \(text(soft)); raising it to its hard limit \(text(limit.rlim_max)) failed: \(describe(errno))"
            )
            return
        }
        logger.info("open files limit is \(text(soft)) (its hard limit)")
    }

    private static let openFiles = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)

    private static func text(_ value: rlim_t) -> String {
        value == rlim_t.max ? "unlimited" : String(value)
    }

    /// Accept errors pause accepting on a listener for a moment instead of retrying at once (a
    /// listener out of descriptors would otherwise spin), and are logged at most once a second.
    static func acceptBackoff(listener: String, logger: Logger) -> AcceptBackoffHandler {
        let lastLogged = NIOLockedValueBox(NIODeadline.distantPast)
        return AcceptBackoffHandler(shouldForwardIOErrorCaught: false) { error in
            let now = NIODeadline.now()
            let due = lastLogged.withLockedValue { last in
                guard now - last >= .seconds(1) else { return false }
                last = now
                return true
            }
            if due {
                logger.error(
                    "relay '\(listener)' cannot accept connections: \(describe(error.errnoCode)); retrying in 100ms"
                )
            }
            return .milliseconds(100)
        }
    }
}

extension LocalResponse {
    /// The relay itself is out of descriptors or memory: not the ship's fault (SPEC §4).
    static func relayExhausted(ship: String, code: CInt) -> LocalResponse {
        LocalResponse(
            status: .serviceUnavailable,
            message: "the relay cannot open a connection to ship '\(ship)': \(RelayResources.describe(code))",
            retryAfterSeconds: 1)
    }
}
