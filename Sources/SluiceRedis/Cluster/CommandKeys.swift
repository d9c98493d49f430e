/// Where a command's keys are, for routing it to the node that owns their slot.
extension RedisCommand {
    /// The command's arguments (name first), decoded from its RESP encoding.
    var arguments: [ArraySlice<UInt8>] {
        var result: [ArraySlice<UInt8>] = []
        var index = encoded.startIndex
        func number(after marker: UInt8) -> Int? {
            guard index < encoded.endIndex, encoded[index] == marker else { return nil }
            var value = 0
            index += 1
            while index < encoded.endIndex, encoded[index] != 13 {
                value = value * 10 + Int(encoded[index] - 48)
                index += 1
            }
            index += 2  // \r\n
            return value
        }
        guard let count = number(after: UInt8(ascii: "*")) else { return [] }
        for _ in 0..<count {
            guard let length = number(after: UInt8(ascii: "$")), index + length <= encoded.endIndex else { return result }
            result.append(encoded[index..<(index + length)])
            index += length + 2
        }
        return result
    }

    /// The keys: every argument of `DEL`/`EXISTS`/`MGET`/`UNLINK`/`TOUCH`, the declared keys of
    /// `EVAL`/`EVALSHA`/`FCALL`, none for commands without keys, else the first argument.
    var keys: [ArraySlice<UInt8>] {
        let arguments = arguments
        guard let first = arguments.first else { return [] }
        let name = String(decoding: first, as: UTF8.self).uppercased()
        switch name {
        case "DEL", "EXISTS", "MGET", "UNLINK", "TOUCH":
            return Array(arguments.dropFirst())
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            guard arguments.count >= 3, let count = Int(String(decoding: arguments[2], as: UTF8.self)), count >= 0 else { return [] }
            return Array(arguments.dropFirst(3).prefix(count))
        case _ where Self.keyless.contains(name):
            return []
        default:
            return arguments.count > 1 ? [arguments[1]] : []
        }
    }

    /// Commands that name no key: any node can answer them (`PUBLISH` is broadcast over the
    /// cluster bus, so any node will do too).
    private static let keyless: Set<String> = [
        "PING", "ECHO", "INFO", "TIME", "SCRIPT", "FUNCTION", "CLUSTER", "PUBLISH", "SUBSCRIBE", "AUTH", "SELECT", "CLIENT",
        "DBSIZE", "FLUSHALL", "FLUSHDB", "DEBUG", "COMMAND", "ACL", "CONFIG", "MEMORY", "LATENCY", "READONLY", "READWRITE", "ASKING",
        "WAIT", "HELLO", "RANDOMKEY", "SCAN", "KEYS", "SLOWLOG", "LASTSAVE", "ROLE", "QUIT",
    ]

    /// Commands that may be sent again after a lost connection: they change nothing.
    var isIdempotent: Bool {
        guard let first = arguments.first else { return false }
        return Self.readOnly.contains(String(decoding: first, as: UTF8.self).uppercased())
    }

    private static let readOnly: Set<String> = [
        "GET", "MGET", "HGET", "HMGET", "HGETALL", "EXISTS", "TTL", "PTTL", "ZRANGE", "ZSCORE", "ZCARD", "ZCOUNT", "LRANGE", "LLEN",
        "SMEMBERS", "SCARD", "SISMEMBER", "TYPE", "STRLEN", "PING", "INFO", "TIME", "DBSIZE", "CLUSTER", "SCRIPT", "EVAL_RO",
        "EVALSHA_RO", "FCALL_RO",
    ]
}
