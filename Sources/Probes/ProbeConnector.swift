import NIOCore
import NIOHTTP1
import NIOPosix
import ShipManifest

/// One HTTP/1.1 GET sent by a probe.
struct ProbeRequest: Sendable {
    var path: String
    var host: String

    init(path: String, host: String) {
        self.path = path.hasPrefix("/") ? path : "/" + path
        self.host = host
    }
}

/// The status code of the response (nil for a connect-only probe), or why there was none.
typealias ProbeResult = Result<Int?, ProbeFailure>

/// Runs one probe: connect, optionally send a GET and read the response head, then close.
///
/// Everything happens on one event loop, so the connect, the response handler, the deadline and the
/// caller's cancellation race for a single promise and the first to complete it wins; whoever loses is
/// ignored, and the channel is closed once the promise is complete. The whole exchange is bounded by
/// `timeout`; the probe never throws. `group` must outlive the probes (the default singleton does).
struct ProbeConnector: Sendable {
    let group: any EventLoopGroup

    func run(_ endpoint: ProbeEndpoint, request: ProbeRequest?, timeout: Duration) async -> ProbeResult {
        let loop = group.next()
        let promise = loop.makePromise(of: ProbeResult.self)
        let amount = TimeAmount(timeout)
        let deadline = loop.scheduleTask(in: amount) { promise.succeed(.failure(.timedOut(timeout))) }
        promise.futureResult.whenComplete { _ in deadline.cancel() }

        var bootstrap = ClientBootstrap(group: loop).connectTimeout(amount)
        if let request {
            bootstrap = bootstrap.channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        ProbeResponseHandler(
                            request: request, endpoint: endpoint, timeout: timeout, promise: promise))
                }
            }
        }
        let connecting: EventLoopFuture<any Channel> =
            switch endpoint {
            case .tcp(let host, let port): bootstrap.connect(host: host, port: port)
            case .unix(let path): bootstrap.connect(unixDomainSocketPath: path)
            }
        connecting.whenComplete { result in
            switch result {
            case .success(let channel):
                if request == nil { promise.succeed(.success(nil)) }
                promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
            case .failure(let error):
                promise.succeed(.failure(ProbeFailure(error, endpoint: endpoint, timeout: timeout)))
            }
        }
        return await withTaskCancellationHandler {
            (try? await promise.futureResult.get()) ?? .failure(.cancelled)
        } onCancel: {
            promise.succeed(.failure(.cancelled))
        }
    }
}
