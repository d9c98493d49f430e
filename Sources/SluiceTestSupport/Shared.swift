import Synchronization

/// A lock-protected value the tasks of a test share.
public final class Shared<Value: Sendable>: Sendable {
    public let value: Mutex<Value>
    public init(_ value: Value) { self.value = Mutex(value) }
}
