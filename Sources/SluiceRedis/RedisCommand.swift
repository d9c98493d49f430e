/// One Redis command as binary-safe arguments, the first being the command name.
public struct RedisCommand: Sendable, Hashable {
    public var arguments: [[UInt8]]

    public init(arguments: [[UInt8]]) {
        self.arguments = arguments
    }

    /// `RedisCommand("SET", key, value)`.
    public init(_ name: String, _ arguments: String...) {
        self.init(name, arguments)
    }

    public init(_ name: String, _ arguments: [String]) {
        self.arguments = [Array(name.utf8)] + arguments.map { Array($0.utf8) }
    }

    /// The command name, for logs and metrics (never the arguments: they may hold secrets).
    public var name: String {
        arguments.first.map { String(decoding: $0, as: UTF8.self).uppercased() } ?? ""
    }
}
