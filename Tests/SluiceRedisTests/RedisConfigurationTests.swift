import SluiceRedis
import Testing

@Suite("Redis URLs")
struct RedisConfigurationTests {
    @Test func hostPortAndDefaults() throws {
        let plain = try RedisConfiguration(url: "redis://cache.internal")
        #expect(plain.endpoint == .tcp(host: "cache.internal", port: 6379))
        #expect(plain.database == 0 && plain.username == nil && plain.password == nil)
        let full = try RedisConfiguration(url: "redis://127.0.0.1:6390/3")
        #expect(full.endpoint == .tcp(host: "127.0.0.1", port: 6390))
        #expect(full.database == 3)
        let ipv6 = try RedisConfiguration(url: "redis://[::1]:7000")
        #expect(ipv6.endpoint == .tcp(host: "::1", port: 7000))
        #expect(ipv6.endpoint.description == "[::1]:7000")
    }

    @Test func credentials() throws {
        let acl = try RedisConfiguration(url: "redis://replica:p%40ss%3Aw0rd@h:1")
        #expect(acl.username == "replica")
        #expect(acl.password?.revealed == "p@ss:w0rd")
        #expect("\(acl.password!)" == "<redacted>" && !"\(acl)".contains("p@ss"), "the password never prints")
        let legacy = try RedisConfiguration(url: "redis://:only-password@h")
        #expect(legacy.username == nil && legacy.password?.revealed == "only-password")
        let fallback = try RedisConfiguration(url: "redis://h", password: "from-env")
        #expect(fallback.password?.revealed == "from-env")
        let urlWins = try RedisConfiguration(url: "redis://:in-url@h", password: "from-env")
        #expect(urlWins.password?.revealed == "in-url")
        let userOnly = try RedisConfiguration(url: "redis://sluice-worker:@h", password: "from-file")
        #expect(userOnly.username == "sluice-worker" && userOnly.password?.revealed == "from-file")
        #expect(!acl.description.contains("p@ss"))
        #expect(acl.description.contains("replica"))
    }

    @Test func tlsURLs() throws {
        let managed = try RedisConfiguration(url: "rediss://sluice:s3cret@cache.example.com:6380/2")
        #expect(managed.endpoint == .tcp(host: "cache.example.com", port: 6380))
        #expect(managed.tls == RedisTLS() && managed.username == "sluice" && managed.database == 2)
        #expect(managed.description == "cache.example.com:6380 db 2 over TLS (authenticated as sluice)")
        #expect(try RedisConfiguration(url: "redis://h").tls == nil)
        // Files are read when the configuration is validated (at start-up), naming the file.
        var broken = managed
        broken.tls = RedisTLS(caFile: "/nonexistent/ca.pem")
        #expect(throws: RedisError.self) { try broken.validate() }
        broken.tls = RedisTLS(certificateFile: "/tmp/cert.pem")
        do {
            try broken.validate()
            Issue.record("a certificate without its key must be refused")
        } catch {
            #expect(error.description.contains("needs its key"))
        }
    }

    @Test func unixSockets() throws {
        let socket = try RedisConfiguration(url: "unix:///run/redis/redis.sock?db=1")
        #expect(socket.endpoint == .unix(path: "/run/redis/redis.sock"))
        #expect(socket.database == 1)
    }

    @Test(arguments: [
        "127.0.0.1:6379", "rediss://h:0", "rediss://", "http://h", "redis://h:0", "redis://h:99999", "redis://h:port",
        "redis://h/-1", "redis://h/x", "redis://:bad%zz@h", "unix://relative.sock", "redis://",
    ])
    func refusedURLs(url: String) {
        #expect(throws: RedisError.self) { try RedisConfiguration(url: url) }
    }

    @Test func refusalsNeverEchoThePassword() {
        do {
            _ = try RedisConfiguration(url: "redis://u:topsecret@h:notaport")
            Issue.record("must be refused")
        } catch {
            #expect(!error.description.contains("topsecret"))
        }
    }
}

@Suite("RESP encoding")
struct RedisCommandTests {
    @Test func encodesArgumentsAsRESP() {
        let command = RedisCommand("set", "k", "")
        #expect(String(decoding: command.encoded, as: UTF8.self) == "*3\r\n$3\r\nset\r\n$1\r\nk\r\n$0\r\n\r\n")
        #expect(command.name == "SET")
        #expect(RedisCommand(arguments: [[0, 13, 10]]).encoded == Array("*1\r\n$3\r\n".utf8) + [0, 13, 10, 13, 10])
    }
}
