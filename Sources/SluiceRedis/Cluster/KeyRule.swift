/// Which arguments of a command are its keys, declared when the command is built
/// (``RedisCommand``): every argument of `DEL`/`EXISTS`/`MGET`/`UNLINK`/`TOUCH`, the declared keys
/// of `EVAL`/`EVALSHA`/`FCALL`, none for commands without keys, else the first argument. Keys are
/// always consecutive arguments.
struct KeyRule {
    private enum Kind { case none, first, all, declared }
    private let kind: Kind

    init(name: String) {
        let name = name.utf8.contains(where: { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) }) ? name.uppercased() : name
        switch name {
        case "DEL", "EXISTS", "MGET", "UNLINK", "TOUCH": kind = .all
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO": kind = .declared
        case _ where Self.keyless.contains(name): kind = .none
        default: kind = .first
        }
    }

    /// The positions (the name is 0) of the keys of a command of `argumentCount` arguments;
    /// `numberOfKeys` is its third argument read as a number (`numkeys` of the script commands).
    func keys(argumentCount: Int, numberOfKeys: Int?) -> Range<Int> {
        switch kind {
        case .none: return 0..<0
        case .first: return argumentCount > 1 ? 1..<2 : 0..<0
        case .all: return 1..<max(1, argumentCount)
        case .declared:
            guard argumentCount >= 3, let numberOfKeys, numberOfKeys >= 0 else { return 0..<0 }
            return 3..<(3 + min(numberOfKeys, argumentCount - 3))
        }
    }

    /// Commands that name no key: any node can answer them (`PUBLISH` is broadcast over the
    /// cluster bus, so any node will do too).
    private static let keyless: Set<String> = [
        "PING", "ECHO", "INFO", "TIME", "SCRIPT", "FUNCTION", "CLUSTER", "PUBLISH", "SUBSCRIBE", "AUTH", "SELECT", "CLIENT",
        "DBSIZE", "FLUSHALL", "FLUSHDB", "DEBUG", "COMMAND", "ACL", "CONFIG", "MEMORY", "LATENCY", "READONLY", "READWRITE", "ASKING",
        "WAIT", "HELLO", "RANDOMKEY", "SCAN", "KEYS", "SLOWLOG", "LASTSAVE", "ROLE", "QUIT",
    ]
}

extension RedisCommand {
    /// The keys the command declared when it was built, read at their place in the encoding.
    var keys: [ArraySlice<UInt8>] {
        var result: [ArraySlice<UInt8>] = []
        result.reserveCapacity(keyCount)
        var index = keyOffset
        for _ in 0..<keyCount {
            guard let key = argument(at: &index) else { break }
            result.append(key)
        }
        return result
    }

    /// The command's arguments (name first), decoded from its RESP encoding.
    var arguments: [ArraySlice<UInt8>] {
        guard encoded.first == UInt8(ascii: "*") else { return [] }
        var index = encoded.startIndex + 1
        let count = number(at: &index)
        var result: [ArraySlice<UInt8>] = []
        for _ in 0..<count {
            guard let argument = argument(at: &index) else { break }
            result.append(argument)
        }
        return result
    }

    /// The bulk string whose `$<len>` line starts at `index`, which is moved past it.
    private func argument(at index: inout Int) -> ArraySlice<UInt8>? {
        guard index < encoded.endIndex, encoded[index] == UInt8(ascii: "$") else { return nil }
        index += 1
        let length = number(at: &index)
        guard index + length <= encoded.endIndex else { return nil }
        defer { index += length + 2 }  // the bytes and \r\n
        return encoded[index..<(index + length)]
    }

    /// The decimal number up to the `\r\n` at `index`, which is moved past them.
    private func number(at index: inout Int) -> Int {
        var value = 0
        while index < encoded.endIndex, encoded[index] != 13 {
            value = value * 10 + Int(encoded[index] - 48)
            index += 1
        }
        index += 2
        return value
    }

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
