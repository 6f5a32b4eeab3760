//! Cleanup (`masclet cleanup`): built in its own change.
