import Foundation
import Hummingbird
import NIOCore
import SluiceCore

extension Response {
    /// A JSON response with Sluice's coding conventions (snake_case fields, RFC 3339 times).
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder.sluice.encode(value))))
    }
}

extension Request {
    /// The body, read up to `limit` bytes: a larger one is refused while it is still arriving.
    func collectedBody(limit: Int) async throws(Problem) -> [UInt8] {
        do {
            let buffer = try await body.collect(upTo: limit)
            // A connection that closes mid-body ends the stream early rather than failing it.
            if let declared = headers.value(.contentLength).flatMap(Int.init), buffer.readableBytes < declared {
                throw Problem.clientClosedRequest
            }
            return Array(buffer.readableBytesView)
        } catch let problem as Problem {
            throw problem
        } catch is NIOTooManyBytesError {
            throw Problem.tooLarge(limit: limit)
        } catch {
            // The client hung up (or its connection broke) mid-body: not a 413.
            throw Problem.clientClosedRequest
        }
    }

    /// The media type of the body without parameters, lower-cased.
    var mediaType: String? {
        guard let value = headers.value(.contentType) else { return nil }
        if value == "application/json" { return value }  // the common case, without any allocation
        return value.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
    }
}

extension Date {
    /// A time in microseconds since the Unix epoch (how Redis' clock is kept in the scripts).
    init(microseconds: Int64) {
        self.init(timeIntervalSince1970: Double(microseconds) / 1_000_000)
    }
}
