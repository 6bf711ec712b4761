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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
