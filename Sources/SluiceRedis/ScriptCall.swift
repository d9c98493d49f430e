/// The keys and arguments of one script call, encoded in RESP once: everything of an `EVALSHA`
/// or `EVAL` after the script itself (`numkeys`, the keys, the arguments). A caller that repeats
/// the same call (the limiter, per key) keeps it and does not encode it again; the client puts the
/// script's SHA1 (or source) in front when it sends it.
public struct ScriptCall: Sendable, Equatable {
    /// `$<len>\r\n<numkeys>\r\n`, then each key and argument as a bulk string.
    let tail: [UInt8]
    /// Bulk strings in ``tail``: `numkeys`, the keys, the arguments.
    let count: Int
    let keyCount: Int
    /// Where in ``tail`` the first key's `$<len>` line starts (0 without keys).
    let keyOffset: Int

    public init(keys: [String], arguments: [String]) {
        var tail: [UInt8] = []
        tail.reserveCapacity(16 + keys.reduce(0) { $0 + $1.utf8.count + 16 } + arguments.reduce(0) { $0 + $1.utf8.count + 16 })
        RedisCommand.appendArgument(String(keys.count), to: &tail)
        keyOffset = keys.isEmpty ? 0 : tail.count
        for key in keys { RedisCommand.appendArgument(key, to: &tail) }
        for argument in arguments { RedisCommand.appendArgument(argument, to: &tail) }
        self.tail = tail
        count = 1 + keys.count + arguments.count
        keyCount = keys.count
    }
}

extension RedisCommand {
    /// `name script` (`EVALSHA <sha1>`, `EVAL <source>`) followed by `call`: the same command as
    /// `RedisCommand(name, [script, numkeys], keys, arguments)`, from the call's bytes as they are.
    init(_ name: String, script: some Collection<UInt8>, _ call: ScriptCall) {
        var encoded: [UInt8] = []
        encoded.reserveCapacity(name.utf8.count + script.count + call.tail.count + 32)
        Self.appendHeader(UInt8(ascii: "*"), 2 + call.count, to: &encoded)
        Self.appendArgument(name, to: &encoded)
        Self.appendHeader(UInt8(ascii: "$"), script.count, to: &encoded)
        encoded.append(contentsOf: script)
        encoded.append(13)
        encoded.append(10)
        let keyOffset = call.keyCount == 0 ? 0 : encoded.count + call.keyOffset
        encoded.append(contentsOf: call.tail)
        self.init(encoded: encoded, keyOffset: keyOffset, keyCount: call.keyCount)
    }
}
