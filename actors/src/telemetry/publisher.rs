//! The telemetry publisher actor: any actor (or the runtime sampler) sends it
//! [`TelemetryEvent`]s; it fans them out through a [`TelemetryHub`] to every subscriber
//! (autotuner, exporter, journal, user code). A slow or stuck subscriber loses only its
//! own oldest events, counted; it never blocks the publisher or the others.

use vortex_runtime::{
    Actor, ActorError, ActorSpec, Addr, Context, Runtime, RuntimeError, SendError, TrySendError,
};

use crate::telemetry::{Subscription, TelemetryEvent, TelemetryHub};

/// The publisher actor; spawn it with [`TelemetryPublisher::spawn`].
pub struct TelemetryPublisher {
    hub: TelemetryHub,
}

impl Actor for TelemetryPublisher {
    type Message = TelemetryEvent;

    async fn handle(
        &mut self,
        event: TelemetryEvent,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        self.hub.publish(event);
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        Some(format!(
            "subscribers={} capacity={}",
            self.hub.subscriber_count(),
            self.hub.capacity()
        ))
    }
}

impl TelemetryPublisher {
    /// Spawns the publisher named `name`; each subscriber's queue holds `capacity` events.
    pub async fn spawn(
        rt: &Runtime,
        name: &str,
        capacity: usize,
    ) -> Result<TelemetryHandle, RuntimeError> {
        let hub = TelemetryHub::new(capacity);
        let for_actor = hub.clone();
        let addr = rt
            .spawn_actor(ActorSpec::new(name, move || TelemetryPublisher {
                hub: for_actor.clone(),
            }))
            .await?;
        Ok(TelemetryHandle { addr, hub })
    }
}

/// Publish to and subscribe from a running [`TelemetryPublisher`].
#[derive(Clone)]
pub struct TelemetryHandle {
    addr: Addr<TelemetryPublisher>,
    hub: TelemetryHub,
}

impl TelemetryHandle {
    /// A new subscriber; it sees every event published from now on.
    pub fn subscribe(&self) -> Subscription {
        self.hub.subscribe()
    }

    /// A new subscriber whose queue holds `capacity` events.
    pub fn subscribe_with_capacity(&self, capacity: usize) -> Subscription {
        self.hub.subscribe_with_capacity(capacity)
    }

    /// Sends an event to the publisher, waiting while its mailbox is full.
    pub async fn publish(&self, event: TelemetryEvent) -> Result<(), SendError<TelemetryEvent>> {
        self.addr.tell(event).await
    }

    /// Sends an event if the publisher's mailbox has room now.
    pub fn try_publish(&self, event: TelemetryEvent) -> Result<(), TrySendError<TelemetryEvent>> {
        self.addr.try_tell(event)
    }

    /// The publisher's address.
    pub fn addr(&self) -> &Addr<TelemetryPublisher> {
        &self.addr
    }
}
