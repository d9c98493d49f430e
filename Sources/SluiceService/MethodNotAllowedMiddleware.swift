import HTTPTypes
import Hummingbird

/// Answers requests that no route takes: `405` + `Allow` when the path exists under other methods
/// (RFC 9110 §15.5.6), `204` + `Allow` for `OPTIONS` on such a path, and a problem+json `404`
/// otherwise — instead of Hummingbird's empty `404`.
///
/// Added to the router after every route, so it wraps only the not-found responder and costs
/// matched requests nothing. `HEAD` is answered for every `GET` route by the router itself
/// (`autoGenerateHeadEndpoints`), so it is listed wherever `GET` is.
struct MethodNotAllowedMiddleware: RouterMiddleware {
    typealias Context = SluiceRequestContext

    private struct Route: Sendable {
        let components: [RouterPath.Element]
        var methods: [String]
    }

    private let routes: [Route]

    init(routes: [Router<Context>.RouteDescription]) {
        var byPath: [String: Route] = [:]
        for route in routes {
            byPath[route.path.description, default: Route(components: route.path.components, methods: [])].methods.append(route.method.rawValue)
        }
        self.routes = byPath.values.map { route in
            var methods = Set(route.methods)
            if methods.contains("GET") { methods.insert("HEAD") }
            return Route(components: route.components, methods: methods.sorted())
        }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let segments = request.uri.path.split(separator: "/", omittingEmptySubsequences: true)
        // The most specific path wins, as in the router: `/v1/models/resign` before `/v1/models/{version}`.
        let matching = routes.filter { Self.matches($0.components, segments) }
        guard let route = matching.max(by: { Self.literalCount($0.components) < Self.literalCount($1.components) }) else {
            throw Problem.notFound("No resource at \(request.uri.path.prefix(200)).")
        }
        if request.method == .options {
            return Response(status: .noContent, headers: [.allow: route.methods.joined(separator: ", ")])
        }
        throw Problem.methodNotAllowed(allowed: route.methods)
    }

    /// Literal segments (`resign`) as opposed to captures and wildcards: an element is literal when
    /// it equals the literal spelled like it (Hummingbird keeps its element kinds to itself).
    private static func literalCount(_ components: [RouterPath.Element]) -> Int {
        components.count { $0 == .path(Substring($0.description)) }
    }

    private static func matches(_ components: [RouterPath.Element], _ segments: [Substring]) -> Bool {
        components.count == segments.count && zip(components, segments).allSatisfy { $0 ~= $1 }
    }
}
