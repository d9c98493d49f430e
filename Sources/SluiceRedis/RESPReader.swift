import CHiredis

/// hiredis' RESP reader on a byte stream, without a connection: the parser and the conversion to
/// ``RedisReply`` that every reply goes through, fed whatever bytes are given. Used by the fuzzer
/// (`Fuzz/`) and the tests to show that no stream of bytes crashes them.
public enum RESPReader {
    /// Every complete reply in `bytes`, or the protocol error that stopped the reader.
    public static func replies(from bytes: [UInt8]) -> Result<[RedisReply], RedisError> {
        guard let reader = redisReaderCreate() else { return .failure(.unexpectedReply("out of memory")) }
        defer { redisReaderFree(reader) }
        let fed = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress.map { redisReaderFeed(reader, UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self), buffer.count) } ?? REDIS_OK
        }
        guard fed == REDIS_OK else { return .failure(.unexpectedReply("the reader refused the bytes")) }
        var replies: [RedisReply] = []
        while true {
            var raw: UnsafeMutableRawPointer?
            guard redisReaderGetReply(reader, &raw) == REDIS_OK else {
                let reason = withUnsafeBytes(of: reader.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                return .failure(.unexpectedReply("protocol error: \(reason)"))
            }
            guard let raw else { return .success(replies) }  // the rest is an incomplete reply
            replies.append(HiredisSession.convert(raw.assumingMemoryBound(to: redisReply.self)))
            freeReplyObject(raw)
        }
    }
}
