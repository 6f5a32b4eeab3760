//! Operations: what the commands do, each built from the layers below. Destructive ones
//! (forget, gc) plan first and execute the plan under the exclusive lock.

pub mod backup;
pub(crate) mod check;
pub(crate) mod forget;
pub mod gc;
pub mod hazmat;
pub(crate) mod repair;
pub(crate) mod restore;
pub mod retention;
