import Synchronization

/// The ids of the keys that exist, held in memory, so that an address throttled for failed
/// authentication can be refused a made-up id without a Redis lookup.
///
/// Loaded from the id index (`SMEMBERS sluice:keys`) when first needed and again when older
/// than ``maximumAge``; ids announced as changed are added at once (they may be new). An id
/// deleted meanwhile stays until the next load, which costs only a lookup that finds nothing.
/// Loading fails open for the caller's purpose: without a set, ``contains(_:)`` answers true
/// and the normal lookup decides.
public final class KnownKeyIDs: Sendable {
    public static let maximumAge: Duration = .seconds(10)
    private let store: KeyStore
    private struct State {
        var ids: Set<String> = []
        var loadedAt: ContinuousClock.Instant?
        var loading = false
    }
    private let state = Mutex(State())

    init(store: KeyStore) {
        self.store = store
    }

    /// True when `id` exists (or may: the set could not be loaded); loads it when stale.
    public func contains(_ id: String) async -> Bool {
        let now = ContinuousClock.now
        let (known, load) = state.withLock { state -> (Bool?, Bool) in
            let fresh = state.loadedAt.map { now - $0 < Self.maximumAge } ?? false
            let load = !fresh && !state.loading
            if load { state.loading = true }
            return (state.loadedAt == nil ? nil : state.ids.contains(id), load)
        }
        if load {
            let ids = try? await store.ids()
            state.withLock { state in
                state.loading = false
                if let ids {
                    state.ids = Set(ids)
                    state.loadedAt = now
                }
            }
            if let ids { return ids.contains(id) }
            return true
        }
        // Another caller is loading the first set: let the lookup decide.
        return known ?? true
    }

    func insert(_ id: String) {
        state.withLock { _ = $0.ids.insert(id) }
    }
}
