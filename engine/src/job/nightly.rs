//! The nightly job (`masclet run -t TIER`).
