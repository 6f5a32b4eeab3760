//! The planner: what of a read batch to store, and how. On the writer's thread, before
//! sealing: chunk ids, deduplication against the index and against the chunks in flight,
//! the walk beside the parent snapshot (cutting glued chunks apart again) and the delta
//! base candidates of each new chunk.
//!
//! A chunk counts as stored from the moment a plan decides to store it (it joins the
//! in-flight set), so a later batch planned before it is sealed refers to it instead of
//! storing it twice. It leaves the set once its pack is indexed.

use super::seal::SealJob;
use crate::chunking::delta::{BaseChain, candidate_chains};
use crate::chunking::parent::Parent;
use crate::chunking::resemble::sketch;
use crate::disk::chunker::Batch;
use crate::disk::crypto::Keys;
use crate::disk::format::ObjectType;
use crate::disk::id::ChunkId;
use crate::error::Result;
use crate::repository::repo::Repo;
use rayon::prelude::*;
use std::collections::HashSet;
use std::ops::Range;

/// A glued chunk is cut at the length of the parent chunk it starts like only when both
/// pieces are at least this long: a piece costs a chunk record (~290 bytes of envelope,
/// trailer entry, index row and tree reference), more than a shorter stretch costs as
/// literals in its neighbour's delta.
const GLUED_MIN: usize = 2048;

/// A stretch of a read batch on its way to the repository.
pub(crate) struct Piece {
    pub(crate) range: Range<usize>,
    pub(crate) id: ChunkId,
    pub(crate) new: bool,
    pub(crate) sketch: Option<i64>,
}

impl Piece {
    pub(crate) fn len(&self) -> u32 {
        u32::try_from(self.range.len()).expect("chunks are below 4 GiB")
    }
}

/// What a batch's plan decided: the pieces to list, in order, and for each new one the
/// base chains to try.
pub(crate) struct Plan {
    pub(crate) ty: ObjectType,
    pub(crate) pieces: Vec<Piece>,
    bases: Vec<Vec<BaseChain>>,
    /// Sketches of new chunks are computed while sealing (no parent asked for them).
    late_sketch: bool,
}

impl Plan {
    /// The sealing jobs of the new pieces, in order (their results go back with the plan,
    /// in the same order).
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

/// Which chunks of a batch neither the index nor the in-flight set has.
struct Lookup<'a> {
    ids: &'a [ChunkId],
    is_new: Vec<bool>,
}

/// The keyed id of every chunk of `batch`, on all cores or (`parallel` false) on the
/// calling thread. A reader thread that is ahead of the writer hashes its batches itself:
/// the writer then plans a batch the moment it arrives, instead of waiting for the hashing
/// behind the sealing jobs already queued on the pool, which left the pool idle between
/// batches.
pub(crate) fn chunk_ids(keys: &Keys, batch: &Batch, parallel: bool) -> Vec<ChunkId> {
    let id = |r: &Range<usize>| keys.chunk_id(&batch.data[r.clone()]);
    if parallel {
        batch.chunks.par_iter().map(id).collect()
    } else {
        batch.chunks.iter().map(id).collect()
    }
}

/// Decides what to store; remembers what it decided until it is indexed.
pub(crate) struct Planner<'r> {
    repo: &'r Repo,
    /// Chunks decided for storing but not indexed yet (being sealed, in the open pack or
    /// in one being written): deduplication must see them as stored.
    in_flight: HashSet<ChunkId>,
    /// The snapshot this backup walks beside, if any.
    parent: Option<Parent<'r>>,
}

impl<'r> Planner<'r> {
    pub(crate) fn new(repo: &'r Repo) -> Self {
        Self {
            repo,
            in_flight: HashSet::new(),
            parent: None,
        }
    }

    /// Walk beside `parent` from now on.
    pub(crate) fn set_parent(&mut self, parent: Option<Parent<'r>>) {
        self.parent = parent;
    }

    /// The parent snapshot walked beside, if any.
    pub(crate) fn parent(&mut self) -> Option<&mut Parent<'r>> {
        self.parent.as_mut()
    }

    /// These chunks are indexed now: deduplication finds them there.
    pub(crate) fn indexed<'a>(&mut self, ids: impl IntoIterator<Item = &'a ChunkId>) {
        for id in ids {
            self.in_flight.remove(id);
        }
    }

    /// Decide what of `batch`, whose chunk ids are `ids` ([`chunk_ids`]), to store and how
    /// (see the module's documentation).
    pub(crate) fn plan(&mut self, ty: ObjectType, batch: &Batch, ids: &[ChunkId]) -> Result<Plan> {
        crate::check_interrupt()?;
        // The lookups below (presence, resync, base chains) share one read transaction;
        // it ends before sealing, which may index a pack.
        let read = self.repo.index.read_tx()?;
        let lookup = self.look_up(ids)?;
        // Without a parent nothing asks for sketches before sealing (they only go into the
        // tree, for the next backup): they are then computed by the sealing workers, in the
        // same pass over the chunk.
        let late_sketch = ty == ObjectType::Data && self.parent.is_none();
        let sketches = if late_sketch || ty != ObjectType::Data {
            vec![None; lookup.ids.len()]
        } else {
            new_sketches(batch, &lookup.is_new)
        };
        let (pieces, bases) = self.walk(ty, batch, &lookup, &sketches)?;
        drop(read);
        Ok(Plan {
            ty,
            pieces,
            bases,
            late_sketch,
        })
    }

    /// Whether each chunk is new. Whether a chunk is stored is decided only when the walk
    /// emits it (then it joins the in-flight set): a chunk cut apart there is never stored
    /// itself, so a later copy of it must not count on it.
    fn look_up<'a>(&self, ids: &'a [ChunkId]) -> Result<Lookup<'a>> {
        let present = self.repo.index.contains_many(ids)?;
        let is_new = ids
            .iter()
            .zip(present)
            .map(|(id, present)| !present && !self.in_flight.contains(id))
            .collect();
        Ok(Lookup { ids, is_new })
    }

    /// Walk the chunks in order beside the parent, cutting glued chunks apart again (see
    /// `resync`); the pieces returned are what gets stored and listed from here on, with
    /// the base chains of the new ones.
    fn walk(
        &mut self,
        ty: ObjectType,
        batch: &Batch,
        lookup: &Lookup<'_>,
        sketches: &[Option<i64>],
    ) -> Result<(Vec<Piece>, Vec<Vec<BaseChain>>)> {
        let repo = self.repo;
        let mut pieces: Vec<Piece> = Vec::with_capacity(lookup.ids.len());
        let mut bases = Vec::new();
        for (i, id) in lookup.ids.iter().enumerate() {
            let piece = Piece {
                range: batch.chunks[i].clone(),
                id: *id,
                new: lookup.is_new[i],
                sketch: sketches[i],
            };
            let split = match (&mut self.parent, ty) {
                (Some(p), ObjectType::Data) if piece.new => {
                    Self::resync(repo, &self.in_flight, p, &batch.data, piece)?
                }
                _ => vec![piece],
            };
            for mut piece in split {
                // Stored once, by its first emitted copy; later copies refer to it.
                piece.new = piece.new && self.in_flight.insert(piece.id);
                let hint = self.observe(ty, &mut piece);
                if ty == ObjectType::Data && !piece.new && piece.sketch.is_none() {
                    piece.sketch = sketch(&batch.data[piece.range.clone()]);
                }
                if piece.new {
                    bases.push(candidate_chains(repo, &hint, &piece.id)?);
                }
                pieces.push(piece);
            }
        }
        Ok((pieces, bases))
    }

    /// Tell the parent walk about `piece`; return the delta base hints it gives. A known
    /// file chunk takes the sketch the parent recorded for it.
    fn observe(&mut self, ty: ObjectType, piece: &mut Piece) -> [Option<ChunkId>; 5] {
        match (&mut self.parent, ty) {
            (Some(p), ObjectType::Data) => {
                let (hints, known) = p.observe(&piece.id, piece.len(), piece.new, piece.sketch);
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
        }
    }

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
        in_flight: &HashSet<ChunkId>,
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
            Ok(!repo.index.contains(&id)? && !in_flight.contains(&id))
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
}

/// Sketches of the new chunks of a file batch, on all cores (unchanged chunks inherit the
/// parent's).
fn new_sketches(batch: &Batch, is_new: &[bool]) -> Vec<Option<i64>> {
    batch
        .chunks
        .par_iter()
        .zip(is_new)
        .map(|(r, new)| {
            if *new {
                sketch(&batch.data[r.clone()])
            } else {
                None
            }
        })
        .collect()
}
