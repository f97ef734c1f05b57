//! Where an actor instance lives: lock-free when every handler takes `&self`, behind a fair
//! read/write lock when some take `&mut self` (those then run one at a time, the classic actor).

use std::ops::Deref;

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::HandlerError;

/// The state of one actor instance.
#[doc(hidden)]
pub enum Cell<A> {
    /// Only `&self` handlers: shared without a lock.
    Free(A),
    /// Some `&mut self` handlers: they take the write lock, the others the read lock.
    Locked(RwLock<A>),
}

/// Shared access to the actor for a `&self` handler.
#[doc(hidden)]
pub enum ReadGuard<'a, A> {
    Free(&'a A),
    Locked(RwLockReadGuard<'a, A>),
}

impl<A> Cell<A> {
    pub(crate) fn new(actor: A, exclusive: bool) -> Self {
        if exclusive {
            Cell::Locked(RwLock::new(actor))
        } else {
            Cell::Free(actor)
        }
    }

    /// Access for a `&self` handler without a lock, when the actor has none (no future to
    /// poll); `None` for a locked actor, which takes [`Cell::read`].
    #[inline(always)]
    pub fn free(&self) -> Option<ReadGuard<'_, A>> {
        match self {
            Cell::Free(a) => Some(ReadGuard::Free(a)),
            Cell::Locked(_) => None,
        }
    }

    /// Access for a `&self` handler.
    pub async fn read(&self) -> ReadGuard<'_, A> {
        match self {
            Cell::Free(a) => ReadGuard::Free(a),
            Cell::Locked(l) => ReadGuard::Locked(l.read().await),
        }
    }

    /// Exclusive access for a `&mut self` handler; the runtime makes the cell `Locked` whenever
    /// an actor has one, so the error is never seen in practice.
    pub async fn write(&self) -> Result<RwLockWriteGuard<'_, A>, HandlerError> {
        match self {
            Cell::Locked(l) => Ok(l.write().await),
            Cell::Free(_) => Err(HandlerError::new(
                "a &mut self handler on an actor without a lock",
            )),
        }
    }
}

impl<A> Cell<A> {
    /// Puts `fresh` in place of the state, once no handler holds it (a locked cell; a free
    /// one has no state to reset, the runtime locks every actor that may be reset).
    pub(crate) async fn replace(&self, fresh: A) {
        if let Cell::Locked(l) = self {
            *l.write().await = fresh;
        }
    }
}

impl<A> Deref for ReadGuard<'_, A> {
    type Target = A;
    fn deref(&self) -> &A {
        match self {
            ReadGuard::Free(a) => a,
            ReadGuard::Locked(g) => g,
        }
    }
}
