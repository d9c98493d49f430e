import HTTPTypes
import OpenAPIRuntime
import struct Foundation.URL

/// Sends `Authorization: Bearer <API key>` on every request (openapi.yaml's `bearer` scheme).
struct BearerToken: ClientMiddleware {
    let key: String

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        request.headerFields[.authorization] = "Bearer \(key)"
        return try await next(request, body, baseURL)
    }
}
