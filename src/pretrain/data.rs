//! Training batches rendered ahead on a background thread, so the CPU ray caster of the
//! procedural world overlaps with the network's forward and backward passes.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::error::{PretrainError, Result};

/// Batches `first, first + 1, …` of a deterministic stream, produced `depth` ahead of use.
/// Dropping it stops the producer after the batch it is working on.
pub struct Prefetcher<T> {
    receiver: Receiver<crate::world::Result<T>>,
    producer: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Prefetcher<T> {
    /// Starts producing batch `first` and on with `make` (a pure function of the batch index,
    /// so what a run sees does not depend on the prefetching).
    pub fn start(
        first: u64,
        depth: usize,
        make: impl Fn(u64) -> crate::world::Result<T> + Send + 'static,
    ) -> Self {
        let (sender, receiver) = sync_channel(depth.max(1));
        let producer = std::thread::Builder::new()
            .name("mvcustom-batches".into())
            .spawn(move || produce(first, &sender, make))
            .ok();
        Self { receiver, producer }
    }

    /// The next batch of the stream.
    pub fn next_batch(&mut self) -> Result<T> {
        match self.receiver.recv() {
            Ok(batch) => Ok(batch?),
            Err(_) => Err(PretrainError::setting(
                "batches",
                "the batch producer thread stopped (it could not start or it panicked)",
            )),
        }
    }
}

impl<T> Drop for Prefetcher<T> {
    fn drop(&mut self) {
        // Unblock the producer (its next send fails), then wait for it.
        let (_, empty) = sync_channel(1);
        drop(std::mem::replace(&mut self.receiver, empty));
        if let Some(producer) = self.producer.take() {
            // A panicked producer has already been reported through `next_batch`.
            let _ = producer.join();
        }
    }
}

/// Sends batches until the receiver is gone; an error is sent once and ends the stream.
fn produce<T>(
    first: u64,
    sender: &SyncSender<crate::world::Result<T>>,
    make: impl Fn(u64) -> crate::world::Result<T>,
) {
    for index in first.. {
        let batch = make(index);
        let failed = batch.is_err();
        if sender.send(batch).is_err() || failed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yields_the_stream_in_order_and_stops_at_an_error() {
        let mut batches = Prefetcher::start(3, 2, |i| {
            if i < 6 {
                Ok(i * 10)
            } else {
                Err(crate::world::WorldError::InvalidValue {
                    field: "index".into(),
                    value: i.to_string(),
                    reason: "is past the end",
                })
            }
        });
        for expected in [30, 40, 50] {
            assert_eq!(batches.next_batch().unwrap(), expected);
        }
        let error = batches.next_batch().unwrap_err().to_string();
        assert!(error.contains("`index` = 6"), "{error}");
        // The stream ended with the error: the producer is gone.
        assert!(batches.next_batch().is_err());
    }
}
