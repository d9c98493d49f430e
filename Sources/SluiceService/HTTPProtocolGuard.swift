import NIOCore
import NIOHTTP1

/// Between NIO's HTTP/1.1 parser and Hummingbird: what the parser refuses (a header section over
/// ``maxHeaderBytes`` → 431, anything unparsable, such as a smuggling attempt with both
/// Content-Length and Transfer-Encoding → 400) and what RFC 9112 forbids that it lets through
/// (an HTTP/1.1 request without exactly one `Host`) is answered with a problem, and the connection
/// is closed: nothing that follows on it can be read as a second request.
final class HTTPProtocolGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// The same bound as the shipped load balancers' (HAProxy's default buffer, nginx's
    /// `large_client_header_buffers 4 16k`), so a request is not refused by one and taken by another.
    static let maxHeaderBytes = 16 * 1024
    static let maxHeaderCount = 100

    private var refused = false
    /// Per request read and not yet answered, in order (pipelined requests are read ahead):
    /// whether the connection closes after its answer (HTTP/1.0 without `Connection: keep-alive`,
    /// or `Connection: close`).
    private var closeAfterResponse: [Bool] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        if case .head(let head) = unwrapInboundIn(data) {
            let fields = CheckedFields(head.headers)
            if let reason = Self.violation(head, hosts: fields.hosts) {
                refuse(context, status: .badRequest, type: "bad-request", title: "Bad request", detail: reason)
                return
            }
            // A body in an encoding nobody here decodes would be read as garbage (RFC 9110 15.5.16).
            if let encoding = fields.encoding {
                refuse(context, status: .unsupportedMediaType, type: "unsupported-media-type", title: "Unsupported content encoding",
                       detail: "Content-Encoding \(encoding) is not accepted; send the body unencoded.")
                return
            }
            // The only expectation there is (RFC 9110 10.1.1).
            if let expectation = fields.expectation {
                refuse(context, status: .expectationFailed, type: "expectation-failed", title: "Expectation failed", detail: "Expect \(expectation) cannot be met.")
                return
            }
            closeAfterResponse.append(!head.isKeepAlive)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data), !refused, !closeAfterResponse.isEmpty, closeAfterResponse.removeFirst() else {
            context.write(data, promise: promise)
            return
        }
        context.writeAndFlush(data, promise: promise)
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        guard !refused else { return }
        if parserError == .headerOverflow {
            refuse(context, status: .requestHeaderFieldsTooLarge, type: "headers-too-large", title: "Request header fields too large",
                   detail: "The header section may hold at most \(Self.maxHeaderCount) fields and \(Self.maxHeaderBytes) bytes.")
        } else {
            refuse(context, status: .badRequest, type: "bad-request", title: "Bad request", detail: "The request is not valid HTTP (\(parserError)).")
        }
    }

    /// The fields the guard checks, found in one pass over the head's fields (each name looked
    /// up in `HTTPHeaders` is a pass of its own, and every request pays them).
    struct CheckedFields {
        var hosts = 0
        /// The first `Content-Encoding` value other than `identity`.
        var encoding: String?
        /// The first `Expect` value other than `100-continue`.
        var expectation: String?

        init(_ headers: HTTPHeaders) {
            for (name, value) in headers {
                if Self.is(name, "host") {
                    hosts += 1
                } else if Self.is(name, "content-encoding") {
                    if encoding == nil, value.lowercased() != "identity" { encoding = value }
                } else if Self.is(name, "expect") {
                    if expectation == nil, value.lowercased() != "100-continue" { expectation = value }
                }
            }
        }

        /// `name` is `lowercased` in any case (ASCII), compared byte by byte.
        private static func `is`(_ name: String, _ lowercased: StaticString) -> Bool {
            let expected = UnsafeBufferPointer(start: lowercased.utf8Start, count: lowercased.utf8CodeUnitCount)
            return name.utf8.elementsEqual(expected) { byte, other in
                (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte + 32 == other : byte == other
            }
        }
    }

    /// What RFC 9112 forbids in a head that the parser accepted (`hosts` `Host` fields), if anything.
    static func violation(_ head: HTTPRequestHead, hosts: Int) -> String? {
        if hosts > 1 { return "A request may carry one Host header, not \(hosts)." }
        if hosts == 0 && (head.version.major, head.version.minor) >= (1, 1) { return "A request of HTTP version 1.1 needs a Host header." }
        return nil
    }

    private func refuse(_ context: ChannelHandlerContext, status: HTTPResponseStatus, type: String, title: String, detail: String) {
        refused = true
        // Encoded like every problem (a detail may quote a client's header value).
        let body = Problem(status: .init(code: Int(status.code)), type: "/problems/\(type)", title: title, detail: detail).encodedBody
        let headers = HTTPHeaders([
            ("Content-Type", "application/problem+json"), ("Connection", "close"), ("Content-Length", String(body.count)),
        ])
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolatedUnsafeUnchecked().whenComplete { _ in context.close(promise: nil) }
    }
}
