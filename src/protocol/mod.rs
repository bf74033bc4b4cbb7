//! PostgreSQL v3 framing and the few messages rolegate reads or writes. No policy.
