import Foundation
import Synchronization

/// Runs model training off the request path: on a thread of its own at a lower CPU priority,
/// one training per replica at a time. Training a 64 KiB upload takes ~0.5 s of CPU; on the
/// cooperative pool (two threads on two cores) two uploads stalled the predictions around them
/// (scripts/bench-training: p99 307 ms, throughput ÷ 9; here p99 8.9 ms, ÷ 1.4). A second upload
/// while one trains is refused with a 429 rather than queued: the client retries after a second,
/// and a replica never holds a backlog of them.
final class TrainingSlot: Sendable {
    private let busy = Atomic<Bool>(false)

    /// `work` on the training thread; `Problem.trainingBusy` if one is running already.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            throw Problem.trainingBusy
        }
        defer { busy.store(false, ordering: .releasing) }
        return try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                // Linux gives each thread its own nice value: this one yields the cores to the
                // event loops and request handlers whenever they have work.
                _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
                continuation.resume(with: Result { try work() })
            }
            thread.name = "sluice-training"
            thread.start()
        }
    }
}
