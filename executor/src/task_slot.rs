//! A task's claim on one of the executor's task slots.
//!
//! Slots bound the CPU work running at once (one per core by default). A task that waits on
//! storage or on another executor computes nothing meanwhile, so it gives its slot back for the
//! wait and takes one again afterwards: with 100 state partitions of a stage on a two-slot
//! executor, the partitions' state loads, shuffle fetches and state commits are all in flight
//! together instead of two at a time, and the file system (or object store) overlaps them — a
//! journal commits a hundred concurrent `fsync`s in a few group commits, where a hundred in a
//! row cost a hundred.

use std::future::Future;
use std::sync::{Arc, Mutex};

use sluice_common::error::{Result, SluiceError};
use sluice_plan::TaskKind;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The executor's task slots, in two pools of the same size: map tasks (read a source split and
/// shuffle it; they hold no state) take theirs from one pool, every other task from the other.
///
/// Why two: the driver runs the next batch's map stage ahead, while the current batch's reduce
/// stages run (`sluice_driver::query::map_ahead`). From a single pool, a map task running ahead
/// would hold the slot the current batch's reduce tasks wait for, and delay the batch by a whole
/// map task; from its own pool it computes beside them, the OS sharing the cores. The cores are
/// oversubscribed (up to twice) only while a map stage runs beside other tasks, which is the
/// point: it fills the cores a batch leaves idle at the tails of its stages.
#[derive(Debug, Clone)]
pub struct SlotPools {
    map: Arc<Semaphore>,
    other: Arc<Semaphore>,
    per_pool: usize,
}

impl SlotPools {
    /// Two pools of `slots` slots each (at least one).
    pub fn new(slots: usize) -> Self {
        let per_pool = slots.max(1);
        Self { map: Arc::new(Semaphore::new(per_pool)), other: Arc::new(Semaphore::new(per_pool)), per_pool }
    }

    /// The pool a task of this kind takes its slot from.
    pub fn for_kind(&self, kind: &TaskKind) -> Arc<Semaphore> {
        match kind {
            TaskKind::Map { .. } => Arc::clone(&self.map),
            _ => Arc::clone(&self.other),
        }
    }

    /// Waits until no task holds a slot (a draining executor's running tasks have ended).
    pub async fn idle(&self) {
        let n = u32::try_from(self.per_pool).unwrap_or(u32::MAX);
        let _ = tokio::join!(self.map.acquire_many(n), self.other.acquire_many(n));
    }
}

/// One task's slot; held while the task computes, lent back while it waits (see the module docs).
pub struct TaskSlot {
    slots: Arc<Semaphore>,
    /// `None` only during [`TaskSlot::waiting`] (or after a failed re-acquire).
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl TaskSlot {
    /// Waits for a free slot.
    pub async fn acquire(slots: Arc<Semaphore>) -> Result<Self> {
        let permit = Self::take(&slots).await?;
        Ok(Self { slots, permit: Mutex::new(Some(permit)) })
    }

    /// Runs `wait` — I/O, no computation to speak of — without holding the slot, then takes a
    /// slot again before returning its output.
    pub async fn waiting<T>(&self, wait: impl Future<Output = T>) -> Result<T> {
        let lent = self.lock()?.take();
        drop(lent);
        let out = wait.await;
        let permit = Self::take(&self.slots).await?;
        *self.lock()? = Some(permit);
        Ok(out)
    }

    async fn take(slots: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit> {
        Arc::clone(slots).acquire_owned().await.map_err(|_| SluiceError::external("executor is shutting down"))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Option<OwnedSemaphorePermit>>> {
        self.permit.lock().map_err(|_| SluiceError::internal("task slot poisoned"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_task_lends_its_slot_and_takes_one_back() {
        let slots = Arc::new(Semaphore::new(1));
        let first = TaskSlot::acquire(Arc::clone(&slots)).await.unwrap();
        assert_eq!(slots.available_permits(), 0);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let slots2 = Arc::clone(&slots);
        let second = tokio::spawn(async move {
            // Only gets the slot while `first` waits.
            let second = TaskSlot::acquire(slots2).await.unwrap();
            tx.send(()).unwrap();
            drop(second);
        });
        let available_during_wait = first.waiting(async { rx.await.is_ok() }).await.unwrap();
        assert!(available_during_wait, "the other task ran while the first waited");
        second.await.unwrap();
        assert_eq!(slots.available_permits(), 0, "the first task holds its slot again");
        drop(first);
        assert_eq!(slots.available_permits(), 1);
    }
}
