import Foundation
import Hummingbird
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
            return Array(buffer.readableBytesView)
        } catch {
            throw Problem.tooLarge(limit: limit)
        }
    }

    /// The media type of the body without parameters, lower-cased.
    var mediaType: String? {
        guard let value = headers[.contentType] else { return nil }
        if value == "application/json" { return value }  // the common case, without any allocation
        return value.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
    }
}
