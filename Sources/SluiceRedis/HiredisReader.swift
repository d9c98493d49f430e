import CHiredis

/// hiredis' RESP reader (`redisReaderCreate`/`Feed`/`GetReply`): the one parser every reply goes
/// through, fed bytes as they arrive from the socket, whatever their framing.
///
/// Not thread-safe; a connection's reader lives on its channel's event loop. Open to the counted
/// benchmarks (`Benchmarks/`) as SPI, so they measure the very parser replies go through.
@_spi(Benchmarks) public final class HiredisReader {
    private let reader: UnsafeMutablePointer<redisReader>

    public init() {
        // redisReaderCreate only fails when malloc does.
        guard let reader = redisReaderCreate() else { fatalError("hiredis: out of memory creating a reader") }
        self.reader = reader
    }

    deinit { redisReaderFree(reader) }

    /// Appends bytes to the reader's buffer.
    public func feed(_ bytes: UnsafeRawBufferPointer) throws(RedisError) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        guard redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), bytes.count) == REDIS_OK else {
            throw .unexpectedReply("protocol error: \(errorText)")
        }
    }

    /// The next complete reply, `nil` when the buffer holds only part of one. After a protocol
    /// error the stream cannot be resynchronised: the connection must be dropped.
    public func next() throws(RedisError) -> RedisReply? {
        var raw: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &raw) == REDIS_OK else {
            throw .unexpectedReply("protocol error: \(errorText)")
        }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        return Self.convert(raw.assumingMemoryBound(to: redisReply.self))
    }

    private var errorText: String {
        withUnsafeBytes(of: reader.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    static func convert(_ pointer: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let reply = pointer.pointee
        func bytes() -> [UInt8] {
            guard let str = reply.str, reply.len > 0 else { return [] }
            return Array(UnsafeRawBufferPointer(start: str, count: Int(reply.len)))
        }
        switch reply.type {
        case REDIS_REPLY_STRING:
            return .bulkString(bytes())
        case REDIS_REPLY_STATUS:
            return .simpleString(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(reply.integer))
        case REDIS_REPLY_ARRAY:
            return .array((0..<Int(reply.elements)).map { convert(reply.element[$0]!) })
        default:
            return .null
        }
    }
}
