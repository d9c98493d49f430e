/// hiredis' RESP reader on a byte stream, without a connection: the parser and the conversion to
/// ``RedisReply`` that every reply goes through, fed whatever bytes are given. Used by the fuzzer
/// (`Fuzz/`) and the tests to show that no stream of bytes crashes them.
public enum RESPReader {
    /// Every complete reply in `bytes`, or the protocol error that stopped the reader.
    public static func replies(from bytes: [UInt8]) -> Result<[RedisReply], RedisError> {
        let reader = HiredisReader()
        var replies: [RedisReply] = []
        do {
            try bytes.withUnsafeBytes { try reader.feed($0) }
            while let reply = try reader.next() { replies.append(reply) }  // the rest is an incomplete reply
            return .success(replies)
        } catch {
            return .failure(error as? RedisError ?? .unexpectedReply("\(error)"))
        }
    }
}
