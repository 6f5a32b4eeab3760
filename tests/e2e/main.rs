//! End-to-end tests of the engine on real filesystems and on fault-injecting storage.
//! One test binary; each module opens with the failure it guards against.

mod chains;
mod corruption;
mod damage;
mod faults;
mod gc;
mod golden;
mod hostile;
mod layers;
mod nonces;
mod pg_fixture;
mod retention;
mod roundtrip;
mod streams;
