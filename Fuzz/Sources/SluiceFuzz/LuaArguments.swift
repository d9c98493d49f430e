import Foundation
import SluiceRedis

/// `lua/*.lua` with random arguments, run by a real Redis (`SLUICE_FUZZ_REDIS`, a URL; scripts/fuzz
/// starts a private one). Every script must answer either a reply or its own `ERR <script>: …`
/// error — never a Lua runtime error (an argument it forgot to check) — and a refusal must write
/// nothing.
///
/// Input: byte 0 picks the script, byte 1 the number of keys (0–5), the rest is split at 0x00 into
/// arguments; a byte 0x01 inside an argument is replaced by a boundary value.
enum LuaArguments {
    static let scripts: [(name: String, prefix: String, source: String)] = {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../lua").standardized.path
        return [("gcra", "ERR gcra: "), ("queue_enqueue", "ERR queue: "), ("queue_claim", "ERR queue: "), ("queue_complete", "ERR queue: "),
                ("lock_release", "ERR lock: "), ("gcra_charge", "ERR gcra_charge: "), ("heartbeat", "ERR heartbeat: "), ("lease_acquire", "ERR lease: ")].map { name, prefix in
            (name, prefix, try! String(contentsOfFile: "\(directory)/\(name).lua", encoding: .utf8))
        }
    }()

    static let boundaries = ["0", "-1", "1", "1e308", "-1e308", "nan", "inf", "9007199254740993", "2251799813685248", "0.5", "", " 1", "0x10"]

    static let client: RedisClient = {
        guard let url = ProcessInfo.processInfo.environment["SLUICE_FUZZ_REDIS"], var configuration = try? RedisConfiguration(url: url) else {
            fatalError("SLUICE_FUZZ_REDIS must name the Redis to run the scripts on (scripts/fuzz sets it)")
        }
        configuration.connections = 1
        return RedisClient(configuration: configuration)
    }()

    private final class Results: @unchecked Sendable {
        var value: [Result<RedisReply, RedisError>] = []
    }

    /// The commands in order on one connection, blocking libFuzzer's thread (it runs one input at
    /// a time, outside Swift concurrency) until the last reply.
    static func execute(_ commands: [RedisCommand]) -> [Result<RedisReply, RedisError>] {
        let results = Results()
        let done = DispatchSemaphore(value: 0)
        Task {
            for command in commands {
                do throws(RedisError) {
                    results.value.append(.success(try await client.send(command)))
                } catch {
                    results.value.append(.failure(error))
                }
            }
            done.signal()
        }
        done.wait()
        return results.value
    }

    static func run(_ bytes: [UInt8]) {
        guard bytes.count >= 2 else { return }
        let script = scripts[Int(bytes[0]) % scripts.count]
        let keyCount = Int(bytes[1]) % 6
        var arguments = bytes.dropFirst(2).split(separator: 0, omittingEmptySubsequences: false).prefix(40).map { part in
            String(decoding: part, as: UTF8.self).split(separator: "\u{1}", omittingEmptySubsequences: false)
                .enumerated().map { $0.offset == 0 ? String($0.element) : boundaries[$0.element.utf8.count % boundaries.count] + $0.element }
                .joined()
        }
        if arguments.count == 1 && arguments[0].isEmpty { arguments = [] }
        // Keys in one hash tag, as the service's are; the database is emptied before each input.
        let keys = (0..<keyCount).map { "{fuzz}:k\($0)" }
        let results = execute([
            RedisCommand("FLUSHALL"),
            RedisCommand("EVAL", [script.source, String(keys.count)] + keys + arguments),
            RedisCommand("DBSIZE"),
        ])
        switch results[1] {
        case .failure(.server(let message)):
            precondition(message.hasPrefix(script.prefix), "\(script.name): not its own error: \(message) for \(arguments)")
            precondition((try? results[2].get())?.int == 0, "\(script.name): refused, yet wrote keys, for \(arguments)")
        case .failure(let error):
            fatalError("\(script.name): \(error)")
        case .success:
            break
        }
    }
}
