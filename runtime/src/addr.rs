//! [`Addr`]: the typed handle producers use, and [`Reply`], the typed answer channel.

use std::{
    fmt,
    future::{poll_fn, Future},
    pin::Pin,
    sync::Arc,
    task::Poll,
    time::Duration,
};

use tokio::{sync::oneshot, time::Instant};

use crate::{
    actor::Actor,
    error::{AskError, SendError, TrySendError},
    shared::Shared,
};

/// The address of an actor or pool: send it messages. Cheap to clone.
///
/// The address owns the data mailbox, so messages queued while the actor restarts are
/// kept and handled by the next incarnation.
pub struct Addr<A: Actor> {
    pub(crate) shared: Arc<Shared<A>>,
}

impl<A: Actor> Clone for Addr<A> {
    fn clone(&self) -> Self {
        Addr {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<A: Actor> fmt::Debug for Addr<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Addr")
            .field("name", &self.name())
            .field("depth", &self.mailbox_len())
            .finish()
    }
}

impl<A: Actor> Addr<A> {
    /// Queues a message, waiting while the mailbox is full (back-pressure).
    /// Fails only when the mailbox is closed, and then hands the message back.
    #[inline]
    pub async fn tell(&self, message: A::Message) -> Result<(), SendError<A::Message>> {
        self.shared.mailbox.send(message).await
    }

    /// Queues a message if there is room now; hands it back in `Full` or `Closed`.
    #[inline]
    pub fn try_tell(&self, message: A::Message) -> Result<(), TrySendError<A::Message>> {
        self.shared.mailbox.try_send(message)
    }

    /// Sends a request built around a [`Reply`] and waits for the answer, within the
    /// runtime's default ask timeout (see `RuntimeBuilder::ask_timeout`).
    ///
    /// ```
    /// # use vortex_runtime::{Actor, ActorError, Context, Reply, Runtime};
    /// # struct Echo;
    /// # impl Actor for Echo {
    /// #     type Message = (u32, Reply<u32>);
    /// #     async fn handle(&mut self, (n, reply): (u32, Reply<u32>), _: &mut Context<Self>) -> Result<(), ActorError> {
    /// #         reply.send(n); Ok(())
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let rt = Runtime::builder().build().unwrap();
    /// let echo = rt.spawn("echo", || Echo).await.unwrap();
    /// assert_eq!(echo.ask(|reply| (7, reply)).await.unwrap(), 7);
    /// # rt.shutdown().await;
    /// # }
    /// ```
    pub async fn ask<R>(&self, make: impl FnOnce(Reply<R>) -> A::Message) -> Result<R, AskError> {
        self.ask_timeout(make, self.shared.config.ask_timeout).await
    }

    /// [`ask`](Addr::ask) with an explicit deadline (covering the wait for mailbox space
    /// and the wait for the answer). The deadline is kept to within 2 ms, never early; it
    /// costs no timer registration per ask (see the runtime's deadline wheel).
    pub async fn ask_timeout<R>(
        &self,
        make: impl FnOnce(Reply<R>) -> A::Message,
        timeout: Duration,
    ) -> Result<R, AskError> {
        let deadline = Instant::now() + timeout;
        let (sender, mut receiver) = oneshot::channel();
        let message = make(Reply(sender));
        match self.shared.mailbox.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Closed(_)) => return Err(AskError::Closed),
            Err(TrySendError::Full(message)) => {
                // Waiting for space is the slow path: an ordinary timer is fine here.
                match tokio::time::timeout_at(deadline, self.tell(message)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(AskError::Closed),
                    Err(_) => return Err(AskError::Timeout),
                }
            }
        }
        // The answer: no timer entry per ask. The deadline is registered in the runtime's
        // deadline wheel only if the answer is not there at the first look.
        let mut armed = None;
        poll_fn(|cx| {
            if let Poll::Ready(answer) = Pin::new(&mut receiver).poll(cx) {
                return Poll::Ready(answer.map_err(|_| AskError::Stopped));
            }
            let armed = armed.get_or_insert_with(|| self.shared.deadlines.arm(deadline));
            if armed.poll_expired(cx) {
                return Poll::Ready(Err(AskError::Timeout));
            }
            if self.shared.is_retired() {
                // Never handled now (it lies in the dead-letter sink, if anywhere).
                return Poll::Ready(Err(AskError::Stopped));
            }
            Poll::Pending
        })
        .await
    }

    /// The registered name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Messages queued now.
    pub fn mailbox_len(&self) -> usize {
        self.shared.mailbox.len()
    }

    /// The mailbox's capacity.
    pub fn mailbox_capacity(&self) -> usize {
        self.shared.mailbox.capacity()
    }

    /// Whether the mailbox refuses new messages (the actor stopped or the runtime shut down).
    pub fn is_closed(&self) -> bool {
        self.shared.mailbox.is_closed()
    }

    /// Messages handled successfully so far (all workers of a pool together).
    pub fn handled(&self) -> u64 {
        self.shared.stats.handled()
    }
}

/// The answer half of an ask: send exactly one value back.
pub struct Reply<T>(oneshot::Sender<T>);

impl<T> Reply<T> {
    /// A reply channel and the receiver its answer arrives on; for building requests
    /// by hand (normally [`Addr::ask`] does this).
    pub fn channel() -> (Reply<T>, oneshot::Receiver<T>) {
        let (sender, receiver) = oneshot::channel();
        (Reply(sender), receiver)
    }

    /// Sends the answer. If the asker gave up (timeout), the value is dropped.
    pub fn send(self, value: T) {
        let _ = self.0.send(value);
    }

    /// Whether the asker stopped waiting.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

impl<T> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply(..)")
    }
}
