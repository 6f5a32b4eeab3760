//! Status (`masclet status`).
