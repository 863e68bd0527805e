public import SyncEngine

