// A new user's session with Sluice through the client swift-openapi-generator builds from
// openapi.yaml (the same session as Clients/python/scenario.py):
//
//     swift run --package-path Clients/swift SluiceClientScenario http://127.0.0.1:8080 sk_<admin key>
//
// Exits non-zero, naming the step, if any answer is not what openapi.yaml promises. Needs a worker.
import Foundation
import OpenAPIRuntime
import OpenAPIURLSession

func check(_ condition: Bool, _ step: String, _ detail: @autoclosure () -> Any = "") {
    guard condition else {
        print("FAILED: \(step): \(detail())")
        exit(1)
    }
    print("ok: \(step)")
}

func client(_ url: URL, key: String) -> Client {
    Client(serverURL: url, configuration: .init(dateTranscoder: .iso8601WithFractionalSeconds),
           transport: URLSessionTransport(), middlewares: [BearerToken(key: key)])
}

let arguments = CommandLine.arguments
guard arguments.count == 3, let url = URL(string: arguments[1]) else {
    print("usage: SluiceClientScenario <replica URL> <admin key>")
    exit(2)
}
let admin = client(url, key: arguments[2])
let setosa = Components.Schemas.Features(sepalLength: 5.1, sepalWidth: 3.5, petalLength: 1.4, petalWidth: 0.2)
let virginica = Components.Schemas.Features(sepalLength: 6.9, sepalWidth: 3.1, petalLength: 5.4, petalWidth: 2.1)
let one = Operations.Predict.Input.Body.json(.SinglePredictionRequest(.init(features: setosa)))

let created = try await admin.createKey(body: .json(.RejectingKeySpec(.init(
    name: "swift-client", scopes: [.predict], policies: [.init(name: "default", rate: 5, period: 1, burst: 5)]))))
guard case .created(let createdKey) = created else { check(false, "create a key", created); exit(1) }
let key = try createdKey.body.json
check(key.value2.key.hasPrefix("sk_"), "create a key")
let user = client(url, key: key.value2.key)

let single = try await user.predict(body: one).ok
check(try single.body.json.predictions.map(\.label) == ["setosa"], "predict one instance")
check(single.headers.rateLimitPolicy.contains("\"default\"") && single.headers.rateLimitPolicy.contains(";q=5"),
      "RateLimit-Policy names the key's policy", single.headers.rateLimitPolicy)
check(single.headers.rateLimit.contains(";r="), "RateLimit gives what remains", single.headers.rateLimit)

let batch = try await user.predict(body: .json(.BatchPredictionRequest(.init(instances: [setosa, virginica, setosa])))).ok
check(try batch.body.json.predictions.map(\.label) == ["setosa", "virginica", "setosa"], "predict a batch of three")

var refusal: Components.Responses.TooManyRequests?
for _ in 0..<20 {
    if case .tooManyRequests(let answer) = try await user.predict(body: one) {
        refusal = answer
        break
    }
}
guard let refusal else { check(false, "over the limit: 429"); exit(1) }
let problem = try refusal.body.applicationProblemJson
check(problem.status == 429 && refusal.headers.retryAfter >= 1 && problem.retryAfter == refusal.headers.retryAfter
      && problem.violatedPolicies == ["default"], "the 429 says when to retry and which policy refused", problem)
try await Task.sleep(for: .seconds(refusal.headers.retryAfter))
check((try? await user.predict(body: one).ok) != nil, "served again after Retry-After")

guard case .created(let queueCreated) = try await admin.createKey(body: .json(.QueueingKeySpec(.init(
    name: "swift-client-queue", scopes: [.predict], policies: [.init(name: "default", rate: 1, period: 1, burst: 1)], overflow: .queue))))
else { check(false, "create a queueing key"); exit(1) }
let queueing = client(url, key: try queueCreated.body.json.value2.key)
check((try? await queueing.predict(body: one).ok) != nil, "the queueing key's burst is served at once")
let accepted = try await queueing.predict(
    headers: .init(prefer: "respond-async"), body: .json(.SinglePredictionRequest(.init(features: virginica)))).accepted
let ticket = try accepted.body.json
check(accepted.headers.location == ticket.location, "over its burst, Prefer: respond-async queues a job", ticket)
var job: Components.Schemas.Job?
for _ in 0..<100 {
    // 202 while the job waits or runs, 200 once it is done: the same Job either way.
    switch try await queueing.getJob(path: .init(id: ticket.id)) {
    case .ok(let done): job = try done.body.json
    case .accepted(let pending): job = try pending.body.json
    case let other: check(false, "poll the job", other)
    }
    if job?.status == .succeeded || job?.status == .failed { break }
    try await Task.sleep(for: .milliseconds(100))
}
check(job?.status == .succeeded && job?.result?.predictions.first?.label == "virginica", "the job completes with its result", job as Any)

let rotated = try await admin.rotateKey(path: .init(id: key.value1.id), body: .json(.init(gracePeriod: 0))).ok.body.json
check(rotated.value2.key != key.value2.key, "rotate the key")
if case .unauthorized = try await user.predict(body: one) { check(true, "the old secret is refused") } else { check(false, "the old secret is refused") }
let fresh = client(url, key: rotated.value2.key)
switch try await fresh.predict(body: one) {
case .ok, .tooManyRequests: check(true, "the new secret authenticates")
case let other: check(false, "the new secret authenticates", other)
}

check((try? await admin.revokeKey(path: .init(id: key.value1.id)).noContent) != nil, "revoke the key")
if case .notFound = try await admin.getKey(path: .init(id: key.value1.id)) { check(true, "a revoked key is gone") } else { check(false, "a revoked key is gone") }
if case .unauthorized = try await fresh.predict(body: one) { check(true, "a revoked key authenticates no more") } else { check(false, "a revoked key authenticates no more") }

let invalid = try await admin.createKey(body: .json(.RejectingKeySpec(.init(name: "", scopes: [.predict]))))
guard case .unprocessableContent(let unprocessable) = invalid else { check(false, "an invalid key is a 422", invalid); exit(1) }
let details = try unprocessable.body.applicationProblemJson
check(details.errors?.map(\.pointer) == ["/name"], "the 422's problem details point at /name", details)
print("scenario passed")
