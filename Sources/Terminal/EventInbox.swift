import Foundation
import Net
import Wire

/// What a sync session waits for.
enum SessionEvent: Sendable {
    /// From the connection with this id (events of an earlier connection are stale).
    case message(UInt64, Message)
    case closed(UInt64, CloseReason)
    /// A local write committed: push it.
    case localWrite
    case stop
}

/// A queue of events with a blocking, deadline-bounded `next`: the sync loop's only wait.
final class EventInbox: @unchecked Sendable {
    // `@unchecked` is true: `events` is touched only while `condition` is locked.
    private let condition = NSCondition()
    private var events: [SessionEvent] = []

    func post(_ event: SessionEvent) {
        condition.lock()
        events.append(event)
        condition.signal()
        condition.unlock()
    }

    /// The next event, or nil when `deadline` passes first.
    func next(before deadline: Date) -> SessionEvent? {
        condition.lock()
        defer { condition.unlock() }
        while events.isEmpty {
            if !condition.wait(until: deadline) { return nil }
        }
        return events.removeFirst()
    }

    /// Removes and returns the first ERROR queued from connection `id`, if any. A send that
    /// fails because the hub closed the connection looks here first: the hub's ERROR (and its
    /// code, which decides whether and when to retry) came in before its close.
    func takeError(from id: UInt64) -> ErrorMessage? {
        condition.lock()
        defer { condition.unlock() }
        for (index, event) in events.enumerated() {
            if case .message(id, .error(let error)) = event {
                events.remove(at: index)
                return error
            }
        }
        return nil
    }

    /// Drops everything queued except a pending stop (a new connection starts clean).
    func reset() {
        condition.lock()
        let stop = events.contains { if case .stop = $0 { return true } else { return false } }
        events = stop ? [.stop] : []
        condition.unlock()
    }
}
