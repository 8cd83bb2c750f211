//! The pure decisions about mappings: policy, conflicts, leases, the approval queue.
