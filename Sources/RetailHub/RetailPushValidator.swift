public import Hub
import Retail
public import SyncEngine

/// The retail application schema guarding a hub's push path: every pushed row is checked
/// against `RetailSchemaRules` before anything of its batch is merged (INVALID_VALUE).
/// Wire it with `configuration.pushValidator = RetailPushValidator()`.
public struct RetailPushValidator: PushValidator {
    public init() {}

    public func validate(_ changeset: Changeset) throws(PushRefusal) {
        do {
            try ChangesetValidator.check(changeset)
        } catch {
            throw PushRefusal(error.description)
        }
    }
}
