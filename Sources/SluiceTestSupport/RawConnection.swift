import Foundation

/// A TCP connection driven byte by byte, for tests of slow, silent or many clients: what an
/// HTTP client library would never do on purpose.
public final class RawConnection {
    public let fd: Int32

    /// Connects to 127.0.0.1:`port` from `source` (any 127.x.y.z address: a distinct client as far
    /// as per-address limits are concerned). Throws when the connection is refused or not
    /// accepted within `timeout` seconds (a server whose backlog is full).
    public init(port: Int, source: String = "127.0.0.1", timeout: Double = 5) throws {
        // The descriptor becomes `fd` only once connected: an init that throws after `fd` is set
        // runs deinit, and a second close(2) of the same number may close another thread's new
        // socket (the flood in LoadBalancerAbuseTests opens and closes thousands).
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestSupportError("socket() failed: errno \(errno)") }
        func fail(_ what: String, _ failure: Int32) -> TestSupportError {
            close(descriptor)
            return TestSupportError("\(what): errno \(failure)")
        }
        // The port is left to connect(), which picks it knowing the server; bind() would pick it
        // blind.
        var late: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_IP), Self.bindAddressNoPort, &late, socklen_t(MemoryLayout<Int32>.size))
        var local = Self.address(source, port: 0)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw fail("cannot bind to \(source)", errno) }
        let flags = fcntl(descriptor, F_GETFL)
        _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
        var remote = Self.address("127.0.0.1", port: port)
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var failure: Int32 = connected == 0 ? 0 : errno
        if failure == EINPROGRESS {
            var polled = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
            if poll(&polled, 1, Int32(timeout * 1000)) == 1 {
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &failure, &length)
            } else {
                failure = ETIMEDOUT
            }
        }
        guard failure == 0 else { throw fail("cannot connect to port \(port) from \(source)", failure) }
        _ = fcntl(descriptor, F_SETFL, flags)
        fd = descriptor
    }

    deinit { close(fd) }

    /// Linux's `IP_BIND_ADDRESS_NO_PORT` (since 4.2): bind the address now, the port at connect().
    private static let bindAddressNoPort: Int32 = 24

    /// Writes `text`; false once the peer has closed the connection.
    @discardableResult
    public func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Foundation.send(fd, $0.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// Reads what arrives within `timeout` seconds, until the peer closes (or, with `until`, as soon
    /// as what arrived ends with it): the bytes, and whether the connection was closed (an orderly
    /// close or a reset) by then.
    public func receive(timeout: Double, until terminator: String? = nil) -> (text: String, closed: Bool) {
        var received: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        let end = terminator.map { Array($0.utf8) }
        while true {
            let remaining = deadline.timeIntervalSinceNow
            if let end, received.count >= end.count, Array(received.suffix(end.count)) == end {
                return (String(decoding: received, as: UTF8.self), false)
            }
            guard remaining > 0 else { return (String(decoding: received, as: UTF8.self), false) }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(remaining * 1000) + 1) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { return (String(decoding: received, as: UTF8.self), true) }
            received += buffer.prefix(count)
        }
    }

    /// True once the peer has closed or reset the connection (does not wait, consumes nothing).
    public var peerClosed: Bool {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, 0) == 1 else { return false }
        if descriptor.revents & Int16(POLLERR | POLLHUP) != 0 { return true }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK)) <= 0
    }

    /// Seconds until the peer closed the connection, reading and discarding what it sends; nil
    /// when it is still open after `timeout` seconds.
    public func secondsUntilClosed(timeout: Double) -> Double? {
        let start = Date()
        return receive(timeout: timeout).closed ? Date().timeIntervalSince(start) : nil
    }

    static func address(_ host: String, port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr(host)
        return address
    }
}
