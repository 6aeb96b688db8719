//! [`Downstream`]: where the preprocessor sends what it produced — the next stage.
//!
//! One small trait with three ready-made implementations, so the preprocessor does not
//! care what comes next:
//!
//! - [`Addr<A>`] of any actor or pool whose message type converts from the item
//!   (`A::Message: From<T>`; for an actor whose message *is* the item this always holds);
//! - a tokio [`mpsc::Sender<T>`](tokio::sync::mpsc::Sender);
//! - a closure returning a boxed future, wrapped in [`FnDownstream`] (a wrapper, not a
//!   blanket impl over closures, because that would collide with the impl for `Addr`).
//!
//! Every implementation applies back-pressure the same way: `send` completes only once
//! the next stage accepted the item, so a full next stage holds the preprocessor's
//! workers, the preprocessor's mailbox fills, and its producers wait in turn.

use std::{future::Future, pin::Pin};

use tokio::sync::mpsc;
use vortex_runtime::{Actor, Addr};

use crate::preprocessor::error::DownstreamError;

/// A boxed, `Send` future, as [`Downstream::send`] returns it.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DownstreamError>> + Send + 'a>>;

/// The next stage of a pipeline: takes items of type `T`, waiting while it is full.
///
/// ```
/// use vortex_actors::preprocessor::{Downstream, DownstreamError, FnDownstream};
///
/// // Any async closure can be a stage; this one only counts.
/// let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
/// let seen = counted.clone();
/// let stage = FnDownstream::new("counter", move |_: u64| {
///     let seen = seen.clone();
///     Box::pin(async move {
///         seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         Ok::<(), DownstreamError>(())
///     }) as vortex_actors::preprocessor::SendFuture<'static>
/// });
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// stage.send(7).await.unwrap();
/// # });
/// assert_eq!(stage.name(), "counter");
/// assert_eq!(counted.load(std::sync::atomic::Ordering::Relaxed), 1);
/// ```
pub trait Downstream<T>: Send + Sync + 'static {
    /// Hands `item` to the stage; completes once the stage accepted it. A closed stage
    /// is [`DownstreamError::Closed`].
    fn send(&self, item: T) -> SendFuture<'_>;

    /// The stage's name, for errors and logs.
    fn name(&self) -> &str;
}

impl<A, T> Downstream<T> for Addr<A>
where
    A: Actor,
    A::Message: From<T>,
    T: Send + 'static,
{
    fn send(&self, item: T) -> SendFuture<'_> {
        Box::pin(async move {
            self.tell(A::Message::from(item))
                .await
                .map_err(|_closed| DownstreamError::Closed {
                    stage: self.name().to_owned(),
                })
        })
    }

    fn name(&self) -> &str {
        Addr::name(self)
    }
}

impl<T: Send + 'static> Downstream<T> for mpsc::Sender<T> {
    fn send(&self, item: T) -> SendFuture<'_> {
        Box::pin(async move {
            mpsc::Sender::send(self, item)
                .await
                .map_err(|_closed| DownstreamError::Closed {
                    stage: "channel".to_owned(),
                })
        })
    }

    fn name(&self) -> &str {
        "channel"
    }
}

/// A shared stage is a stage: an `Arc` of one forwards to it (so one router or sink can
/// be the next stage of several producers and still be inspected by its owner).
impl<T, D> Downstream<T> for std::sync::Arc<D>
where
    D: Downstream<T> + ?Sized,
{
    fn send(&self, item: T) -> SendFuture<'_> {
        (**self).send(item)
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}

/// A closure as a [`Downstream`]: `Fn(T) -> SendFuture<'static>`.
pub struct FnDownstream<F> {
    name: String,
    send: F,
}

impl<F> FnDownstream<F> {
    /// A stage named `name` that hands every item to `send`.
    pub fn new(name: impl Into<String>, send: F) -> Self {
        FnDownstream {
            name: name.into(),
            send,
        }
    }
}

impl<F> std::fmt::Debug for FnDownstream<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnDownstream")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<T, F> Downstream<T> for FnDownstream<F>
where
    F: Fn(T) -> SendFuture<'static> + Send + Sync + 'static,
{
    fn send(&self, item: T) -> SendFuture<'_> {
        (self.send)(item)
    }

    fn name(&self) -> &str {
        &self.name
    }
}
