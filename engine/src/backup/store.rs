//! Storing a read batch: *plan* (chunk ids, what the repository lacks, the walk beside the
//! parent snapshot, delta base candidates) on the writer's thread, *seal* (compress or
//! delta, encrypt, verify) on all cores, then *finish* (into the open pack, in order).
//!
//! The three steps are apart so that sealing runs as one stream of jobs on the thread pool
//! (queue.rs): the next batch, or the next file, is planned and its chunks queued while the
//! ones before are still being sealed. A chunk counts as stored from the moment a plan
//! decides to store it, so a later batch planned before it is sealed refers to it instead
//! of storing it twice.

use super::{GLUED_MIN, Sealed, Writer};
use crate::chunker::Batch;
use crate::crypto::Keys;
use crate::delta::{BaseChain, candidate_chains, seal_chunk};
use crate::error::Result;
use crate::format::ObjectType;
use crate::id::ChunkId;
use crate::parent::Parent;
use crate::repo::Repo;
use crate::resemble::sketch;
use crate::storage::Storage;
use rayon::prelude::*;
use std::collections::HashSet;
use std::ops::Range;

/// A stretch of a read batch on its way to the repository.
struct Piece {
    range: Range<usize>,
    id: ChunkId,
    new: bool,
    sketch: Option<i64>,
}

impl Piece {
    fn len(&self) -> u32 {
        u32::try_from(self.range.len()).expect("chunks are below 4 GiB")
    }
}

/// What a batch's plan decided: the pieces to list, in order, and for each new one the
/// base chains to try.
pub(crate) struct Plan {
    ty: ObjectType,
    pieces: Vec<Piece>,
    bases: Vec<Vec<BaseChain>>,
    /// Sketches of new chunks are computed while sealing (no parent asked for them).
    late_sketch: bool,
}

/// A new piece sealed (or the reason it could not be), with its sketch when computed late.
pub(crate) type SealOut = (Result<Sealed>, Option<i64>);

/// Seal the new pieces of `plan` on all cores.
pub(crate) fn seal(
    keys: &Keys,
    storage: &dyn Storage,
    level: i32,
    data: &[u8],
    plan: &mut Plan,
) -> Vec<SealOut> {
    plan.jobs()
        .into_par_iter()
        .map(|job| job.run(keys, storage, level, data))
        .collect()
}

/// One new piece to seal. Needs nothing of the writer, so it can run while the writer
/// plans the next batch.
pub(crate) struct SealJob {
    ty: ObjectType,
    range: Range<usize>,
    id: ChunkId,
    bases: Vec<BaseChain>,
    late_sketch: bool,
}

impl SealJob {
    /// Seal the piece of `data` (its batch's bytes).
    pub(crate) fn run(
        self,
        keys: &Keys,
        storage: &dyn Storage,
        level: i32,
        data: &[u8],
    ) -> SealOut {
        let plain = &data[self.range];
        let sealed = seal_chunk(keys, storage, self.ty, &self.id, plain, self.bases, level);
        (sealed, self.late_sketch.then(|| sketch(plain)).flatten())
    }
}

impl Plan {
    /// The sealing jobs of the new pieces, in order (their results go to
    /// [`Writer::finish`] in the same order).
    pub(crate) fn jobs(&mut self) -> Vec<SealJob> {
        let bases = std::mem::take(&mut self.bases);
        self.pieces
            .iter()
            .filter(|p| p.new)
            .zip(bases)
            .map(|(p, bases)| SealJob {
                ty: self.ty,
                range: p.range.clone(),
                id: p.id,
                bases,
                late_sketch: self.late_sketch,
            })
            .collect()
    }
}

impl<'r> Writer<'r> {
    /// A change that erases a cut point glues the changed parent chunk to the next one:
    /// stored as is, the glued chunk would be one delta against one of them, carrying the
    /// other's bytes as literals. When the new chunk ends with exactly the parent's
    /// following chunk (same length, same keyed id), cut it off again: the tail
    /// deduplicates and only the head is new. Otherwise, when it starts like a parent chunk
    /// (same head) and is longer by at least [`GLUED_MIN`], cut it at that chunk's length:
    /// each piece then finds its own base (the head that chunk, the tail the one after it),
    /// and next night the same cut gives the same pieces. Chunk boundaries are the writer's
    /// choice (format-spec.md, "Chunking"), so this changes nothing for readers.
    fn resync(
        repo: &Repo,
        in_pack: &HashSet<ChunkId>,
        parent: &mut Parent<'r>,
        data: &[u8],
        piece: Piece,
    ) -> Result<Vec<Piece>> {
        let Range { start, end } = piece.range;
        let following = parent.following().filter(|(next, len)| {
            (*len as usize) < end - start
                && repo.keys.chunk_id(&data[end - *len as usize..end]) == *next
        });
        let cut = match following {
            Some((_, len)) => end - len as usize,
            None => {
                // A glued chunk that starts where a parent chunk started: cut it at that
                // chunk's length, so the head is a delta against that chunk and the tail
                // one against the chunk after it, instead of one delta carrying the tail's
                // bytes as literals. Next night the same cut reproduces both pieces.
                let Some(len) = piece.sketch.and_then(|s| parent.same_head_len(s)) else {
                    return Ok(vec![piece]);
                };
                let len = len as usize;
                if len < GLUED_MIN || end - start < len + GLUED_MIN {
                    return Ok(vec![piece]);
                }
                start + len
            }
        };
        let head = start..cut;
        let head_id = repo.keys.chunk_id(&data[head.clone()]);
        let is_new = |id: ChunkId| -> Result<bool> {
            Ok(!repo.index.contains(&id)? && !in_pack.contains(&id))
        };
        let tail = cut..end;
        let next = match following {
            Some((next, _)) => next,
            None => repo.keys.chunk_id(&data[tail.clone()]),
        };
        let head_new = is_new(head_id)?;
        let tail_new = is_new(next)?;
        let sketch_of = |r: &Range<usize>, new: bool| {
            if new { sketch(&data[r.clone()]) } else { None }
        };
        Ok(vec![
            Piece {
                sketch: sketch_of(&head, head_new),
                range: head,
                id: head_id,
                new: head_new,
            },
            Piece {
                sketch: sketch_of(&tail, tail_new),
                range: tail,
                id: next,
                new: tail_new,
            },
        ])
    }

    /// Store the chunks of `batch` the repository lacks; return every chunk's id, length
    /// and (for file content) resemblance sketch.
    pub(crate) fn store(
        &mut self,
        ty: ObjectType,
        batch: &Batch,
    ) -> Result<Vec<(ChunkId, u32, Option<i64>)>> {
        let mut plan = self.plan(ty, batch)?;
        let repo = self.repo;
        let level = i32::from(repo.config.zstd_level);
        let sealed = seal(
            &repo.keys,
            repo.storage.as_ref(),
            level,
            &batch.data,
            &mut plan,
        );
        self.finish(plan, sealed)
    }

    /// Decide what of `batch` to store and how (see the module's documentation).
    pub(crate) fn plan(&mut self, ty: ObjectType, batch: &Batch) -> Result<Plan> {
        crate::check_interrupt()?;
        let repo = self.repo;
        let keys = &repo.keys;
        let bytes = |i: usize| &batch.data[batch.chunks[i].clone()];
        let ids: Vec<ChunkId> = (0..batch.chunks.len())
            .into_par_iter()
            .map(|i| keys.chunk_id(bytes(i)))
            .collect();
        // The lookups below (presence, resync, base chains) share one read transaction;
        // it ends before sealing, which may index a pack.
        let read = repo.index.read_tx()?;
        let present = repo.index.contains_many(&ids)?;
        // Absent from the repository and from what this backup stores. Whether a chunk is
        // stored is decided only when the walk below emits it (then it joins `in_pack`): a
        // chunk cut apart there is never stored itself, so a later copy of it must not
        // count on it.
        let is_new: Vec<bool> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| !present[i] && !self.in_pack.contains(id))
            .collect();
        // Sketches of new file chunks (unchanged chunks inherit the parent's).
        // Without a parent nothing asks for sketches before sealing (they only go into the
        // tree, for the next backup): they are then computed by the sealing workers, in the
        // same pass over the chunk.
        let late_sketch = ty == ObjectType::Data && self.parent.is_none();
        let sketches: Vec<Option<i64>> = if late_sketch {
            vec![None; ids.len()]
        } else {
            (0..ids.len())
                .into_par_iter()
                .map(|i| {
                    if ty == ObjectType::Data && is_new[i] {
                        sketch(bytes(i))
                    } else {
                        None
                    }
                })
                .collect()
        };
        // Walk the chunks in order beside the parent, cutting merged chunks apart again
        // (see `resync`); `pieces` is what gets stored and listed from here on.
        let mut pieces: Vec<Piece> = Vec::with_capacity(ids.len());
        let mut bases = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let piece = Piece {
                range: batch.chunks[i].clone(),
                id: *id,
                new: is_new[i],
                sketch: sketches[i],
            };
            let split = match (&mut self.parent, ty) {
                (Some(p), ObjectType::Data) if piece.new => {
                    Self::resync(repo, &self.in_pack, p, &batch.data, piece)?
                }
                _ => vec![piece],
            };
            for mut piece in split {
                // Stored once, by its first emitted copy; later copies refer to it.
                piece.new = piece.new && self.in_pack.insert(piece.id);
                let hint = match (&mut self.parent, ty) {
                    (Some(p), ObjectType::Data) => {
                        let (hints, known) =
                            p.observe(&piece.id, piece.len(), piece.new, piece.sketch);
                        if !piece.new {
                            piece.sketch = known;
                        }
                        hints
                    }
                    (Some(p), _) => {
                        let [a, b, c] = p.observe_tree(piece.new, piece.len());
                        [a, b, c, None, None]
                    }
                    (None, _) => [None; 5],
                };
                if ty == ObjectType::Data && !piece.new && piece.sketch.is_none() {
                    piece.sketch = sketch(&batch.data[piece.range.clone()]);
                }
                if piece.new {
                    bases.push(candidate_chains(repo, &hint, &piece.id)?);
                }
                pieces.push(piece);
            }
        }
        drop(read);
        Ok(Plan {
            ty,
            pieces,
            bases,
            late_sketch,
        })
    }

    /// Put a planned batch's sealed chunks into the open pack, in order; return every
    /// piece's id, length and sketch for the tree.
    pub(crate) fn finish(
        &mut self,
        plan: Plan,
        sealed: Vec<SealOut>,
    ) -> Result<Vec<(ChunkId, u32, Option<i64>)>> {
        let Plan { ty, mut pieces, .. } = plan;
        for (p, (s, late_sketch)) in pieces.iter_mut().filter(|p| p.new).zip(sealed) {
            // Only sketches computed while sealing come back; planned ones stay.
            if late_sketch.is_some() {
                p.sketch = late_sketch;
            }
            let (s, base) = s?;
            let raw = p.range.len();
            self.stats.new_chunks += 1;
            if ty == ObjectType::Data {
                self.stats.new_raw_bytes += raw as u64;
            }
            self.stats.bytes_added += s.len() as u64;
            self.deltas += u64::from(base.is_some());
            self.healing.stored_again += u64::from(self.untrusted.remove(&p.id));
            self.pack.add(
                ty,
                p.id,
                s,
                u32::try_from(raw).expect("chunks are below 4 GiB"),
                base,
            );
            if self.pack.is_full() {
                self.seal_pack()?;
            }
        }
        self.stats.chunks += pieces.len() as u64;
        Ok(pieces
            .into_iter()
            .map(|p| (p.id, p.len(), p.sketch))
            .collect())
    }
}
