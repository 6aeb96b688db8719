//! The autotuner actor: wiring only. Each `Round` (sent by a scheduler interval) drains
//! the telemetry subscription and the runtime's control notices, reads the preprocessor
//! pool's counters, runs the [`AutotunerCore`], sends the commands it decided (stamped
//! [`Origin::Autotuner`]), and reports every decision to telemetry, the journal and the
//! log.

use std::time::Instant;

use tokio::sync::broadcast::{self, error::TryRecvError};
use vortex_messages::telemetry::{now_micros, AutotunerDecided, Name, TelemetryEvent};
use vortex_messages::{Control, ControlError, ControlNotice, ControlReply, Origin};
use vortex_runtime::{Actor, ActorError, ActorSpec, Addr, Context, Runtime, RuntimeObserver};

use crate::autotuner::config::AutotunerSettings;
use crate::autotuner::core::{AutotunerCore, Decision, Knob};
use crate::autotuner::error::AutotunerError;
use crate::autotuner::observation::Observation;
use crate::journal::{Durability, JournalActor, JournalMessage, PendingRecord};
use crate::scheduler::{Scheduler, TimerHandle};
use crate::telemetry::{Subscription, TelemetryHandle};

/// The journal record kind of an autotuner decision (payload: [`AutotunerDecided`]).
pub const DECISION_RECORD_KIND: u16 = 0x4154; // "AT"

/// What the autotuner handles: one round per message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutotunerMessage {
    /// Observe, decide, act (sent by the scheduler every `interval`).
    Round,
}

/// What the autotuner watches and turns.
#[derive(Clone)]
pub struct AutotunerConfig {
    /// Its registered name (`vortex ctl <name> status`).
    pub name: String,
    /// Its settings.
    pub settings: AutotunerSettings,
    /// The preprocessor pool it scales.
    pub preprocessor: String,
    /// The actor whose batch size it sets (the source).
    pub source: String,
    /// The launchers whose out-of-memory faults count.
    pub launchers: Vec<String>,
    /// The batch size the source starts at.
    pub initial_batch: u32,
    /// Cores of the preprocessor's resource group: the most workers it may ask for.
    pub cpu_budget: u32,
    /// Where batch events come from and decisions go.
    pub telemetry: TelemetryHandle,
    /// Where decisions are recorded, if anywhere.
    pub journal: Option<Addr<JournalActor>>,
}

/// Counters of the preprocessor pool at the end of the previous round.
#[derive(Debug, Clone, Copy, Default)]
struct PoolCounters {
    handled: u64,
    handler_micros: u64,
    depth: u64,
}

/// One incarnation of the autotuner.
pub struct Autotuner {
    config: AutotunerConfig,
    observer: RuntimeObserver,
    core: AutotunerCore,
    subscription: Option<Subscription>,
    notices: Option<broadcast::Receiver<ControlNotice>>,
    epoch: Instant,
    last_round: Option<Instant>,
    pool: PoolCounters,
}

/// A running autotuner: its address and its round timer (dropping it stops the rounds).
pub struct AutotunerHandle {
    addr: Addr<Autotuner>,
    timer: TimerHandle,
}

impl AutotunerHandle {
    /// The autotuner's address (send it a `Round` to run one now).
    pub fn addr(&self) -> &Addr<Autotuner> {
        &self.addr
    }

    /// Its registered name.
    pub fn name(&self) -> &str {
        self.addr.name()
    }

    /// The round timer.
    pub fn timer(&self) -> &TimerHandle {
        &self.timer
    }
}

impl Autotuner {
    /// Spawns the autotuner named `config.name` and arms its round timer on `scheduler`.
    ///
    /// # Errors
    ///
    /// Invalid settings, a taken name, or a timer that could not be armed.
    pub async fn spawn(
        rt: &Runtime,
        scheduler: &Scheduler,
        config: AutotunerConfig,
    ) -> Result<AutotunerHandle, AutotunerError> {
        config.settings.validate()?;
        let start = |reason: String| AutotunerError::Start {
            name: config.name.clone(),
            reason,
        };
        let observer = rt.observer();
        let interval = config.settings.interval();
        let for_factory = config.clone();
        let addr = rt
            .spawn_actor(ActorSpec::new(config.name.clone(), move || Autotuner {
                core: AutotunerCore::new(for_factory.settings.clone(), for_factory.initial_batch),
                config: for_factory.clone(),
                observer: observer.clone(),
                subscription: None,
                notices: None,
                epoch: Instant::now(),
                last_round: None,
                pool: PoolCounters::default(),
            }))
            .await
            .map_err(|error| start(error.to_string()))?;
        let timer = scheduler
            .send_interval(interval, &addr, AutotunerMessage::Round)
            .map_err(|error| start(error.to_string()))?;
        Ok(AutotunerHandle { addr, timer })
    }

    fn now_micros(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The pool's counters and worker count now (`None` when it is not registered).
    fn pool_counters(&self) -> Option<(PoolCounters, u32)> {
        let status = self.observer.status(&self.config.preprocessor).ok()?;
        let counters = PoolCounters {
            handled: status.handled,
            handler_micros: status.handler_micros,
            depth: status.mailbox_depth,
        };
        Some((counters, status.workers))
    }

    /// Starts a fresh measurement: what piled up before now is not this round's.
    fn resync(&mut self) {
        if let Some(subscription) = &mut self.subscription {
            while subscription.try_recv().is_ok() {}
        }
        if let Some((counters, _)) = self.pool_counters() {
            self.pool = counters;
        }
        self.last_round = Some(Instant::now());
    }

    /// Commands someone else sent to one of the knobs: hold those knobs.
    fn take_notices(&mut self) {
        let now = self.now_micros();
        let Some(notices) = &mut self.notices else {
            return;
        };
        let mut manual = Vec::new();
        loop {
            match notices.try_recv() {
                Ok(notice) => manual.push(notice),
                Err(TryRecvError::Lagged(lost)) => {
                    tracing::warn!(autotuner = %self.config.name, lost, "missed control notices");
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        for notice in manual {
            let Some((knob, value)) = Knob::of(&notice.command) else {
                continue;
            };
            if !notice.succeeded || notice.origin.is_autotuner() || !self.owns(knob, &notice.actor)
            {
                continue;
            }
            tracing::info!(
                autotuner = %self.config.name,
                knob = knob.name(),
                value,
                origin = %notice.origin,
                hold_ms = self.config.settings.hold_ms,
                "someone else turned a knob: leaving it alone"
            );
            self.core.manual(now, knob, value, notice.origin);
        }
    }

    /// Whether `actor` is where this autotuner turns `knob`.
    fn owns(&self, knob: Knob, actor: &str) -> bool {
        match knob {
            Knob::Workers => actor == self.config.preprocessor,
            Knob::BatchSize => actor == self.config.source,
            Knob::PrefetchDepth => self.config.launchers.iter().any(|name| name == actor),
        }
    }

    /// The actor a decision about `knob` goes to.
    fn target(&self, knob: Knob) -> &str {
        match knob {
            Knob::Workers => &self.config.preprocessor,
            Knob::BatchSize => &self.config.source,
            Knob::PrefetchDepth => self.config.launchers.first().map_or("", String::as_str),
        }
    }

    /// Drains this round's telemetry and reads the pool: the round's observation.
    fn observe(&mut self, round_secs: f64) -> Observation {
        let batch = self.core.batch_size();
        let mut observation = Observation {
            round_secs,
            cpu_budget: self.config.cpu_budget,
            batch_size: batch,
            ..Observation::default()
        };
        let mut latencies = Vec::new();
        let mut other_size = None;
        if let Some(subscription) = &mut self.subscription {
            while let Ok(event) = subscription.try_recv() {
                match event {
                    TelemetryEvent::BatchFinished(finished) => {
                        observation.items += u64::from(finished.items);
                        if finished.items == batch {
                            observation.batches += 1;
                            latencies.push(
                                finished.queue_wait_micros
                                    + finished.copy_micros
                                    + finished.execute_micros,
                            );
                        } else {
                            other_size = Some(finished.items);
                        }
                    }
                    TelemetryEvent::DeadLettered(letter)
                        if letter.reason.contains("out of memory")
                            && self.config.launchers.iter().any(|l| **l == *letter.actor) =>
                    {
                        observation.out_of_memory = Some(batch);
                    }
                    _ => {}
                }
            }
        }
        if observation.batches == 0 {
            if let Some(size) = other_size {
                observation.batch_size = size;
            }
        }
        observation.p99_micros = p99(&mut latencies);
        if let Some((counters, workers)) = self.pool_counters() {
            let handled = counters.handled.saturating_sub(self.pool.handled);
            let micros = counters
                .handler_micros
                .saturating_sub(self.pool.handler_micros);
            observation.workers = workers;
            observation.backlog = counters.depth;
            observation.preprocessed = handled;
            observation.arrived = (handled + counters.depth).saturating_sub(self.pool.depth);
            if handled > 0 {
                observation.preprocess_micros = micros as f64 / handled as f64;
            }
            self.pool = counters;
        }
        observation
    }

    /// Sends the command a decision asks for; `Err` with the refusal.
    async fn apply(&mut self, decision: &Decision) -> Result<bool, ControlError> {
        let Some(command) = decision.command() else {
            return Ok(false);
        };
        let target = self.target(decision.knob).to_owned();
        if decision.knob == Knob::Workers {
            // Someone may have scaled the pool since the round's reading: not over them.
            let now = self.pool_counters().map(|(_, workers)| workers);
            if now.is_some_and(|workers| workers != decision.from) {
                return Err(ControlError::Rejected {
                    actor: target,
                    reason: format!(
                        "the pool changed to {} workers meanwhile; not sent",
                        now.unwrap_or(0)
                    ),
                });
            }
        }
        let origin = Origin::autotuner(self.config.name.clone());
        match self.observer.control_from(&target, command, origin).await {
            Ok(_) => Ok(true),
            Err(error) => {
                if decision.knob == Knob::BatchSize {
                    self.core.refused(decision.knob, decision.from);
                }
                Err(error)
            }
        }
    }

    /// Telemetry, journal and log for one decision.
    async fn report(&self, decision: &Decision, applied: bool, reason: String) {
        let event = AutotunerDecided {
            at_micros: now_micros(),
            autotuner: Name::from(self.config.name.as_str()),
            round: decision.round,
            knob: Name::from(decision.knob.name()),
            target: Name::from(self.target(decision.knob)),
            from: decision.from,
            to: decision.to,
            reason: Name::from(reason.as_str()),
            applied,
        };
        if decision.changes() || decision.held {
            tracing::info!(
                autotuner = %self.config.name,
                round = decision.round,
                knob = decision.knob.name(),
                from = decision.from,
                to = decision.to,
                applied,
                reason = %reason,
                "autotuner decision"
            );
        }
        if let Some(journal) = &self.config.journal {
            match PendingRecord::encode(DECISION_RECORD_KIND, &event) {
                Ok(record) => {
                    let record = record.with_durability(Durability::None);
                    let appended = journal
                        .ask(|reply| JournalMessage::Append { record, reply })
                        .await;
                    if !matches!(appended, Ok(Ok(_))) {
                        tracing::warn!(autotuner = %self.config.name, "journal refused a decision record");
                    }
                }
                Err(error) => {
                    tracing::warn!(autotuner = %self.config.name, %error, "decision record")
                }
            }
        }
        // Best effort: a full publisher drops the event rather than stall the loop.
        let _ = self.config.telemetry.try_publish(event.into());
    }

    async fn round(&mut self) {
        let now = Instant::now();
        let interval = self.config.settings.interval();
        let Some(last) = self.last_round else {
            self.resync();
            return;
        };
        let elapsed = now.duration_since(last);
        // Ticks that queued up (a busy runtime, a `Resume`) collapse into one round.
        if elapsed < interval / 2 {
            return;
        }
        self.take_notices();
        if self.core.is_paused() {
            self.resync();
            return;
        }
        self.last_round = Some(now);
        let observation = self.observe(elapsed.as_secs_f64());
        let decisions = self.core.round(self.now_micros(), &observation);
        // A command someone sent while this round was observing wins over its decision.
        self.take_notices();
        for decision in decisions {
            if decision.changes() && self.core.is_held(self.now_micros(), decision.knob) {
                let reason = format!(
                    "{} (not sent: someone else set it meanwhile)",
                    decision.reason
                );
                self.report(&decision, false, reason).await;
                continue;
            }
            let (applied, reason) = match self.apply(&decision).await {
                Ok(applied) => (applied, decision.reason.clone()),
                Err(error) => (false, format!("{} (refused: {error})", decision.reason)),
            };
            self.report(&decision, applied, reason).await;
        }
    }
}

/// The 99th percentile of `values` (0 when empty).
fn p99(values: &mut [u64]) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let index = ((values.len() as f64) * 0.99).ceil() as usize;
    let index = index.clamp(1, values.len()) - 1;
    *values.select_nth_unstable(index).1
}

impl Actor for Autotuner {
    type Message = AutotunerMessage;

    async fn on_start(&mut self, _: &mut Context<Self>) -> Result<(), ActorError> {
        self.subscription = Some(self.config.telemetry.subscribe());
        self.notices = Some(self.observer.control_notices());
        Ok(())
    }

    async fn handle(
        &mut self,
        message: AutotunerMessage,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        match message {
            AutotunerMessage::Round => self.round().await,
        }
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        Some(self.core.describe(self.now_micros()))
    }

    async fn on_control(
        &mut self,
        command: &Control,
        _: &mut Context<Self>,
    ) -> Option<Result<ControlReply, ControlError>> {
        match command {
            // The default `Pause` holds the mailbox too; the core freezes with it, so the
            // rounds that queued up during the pause collapse into one after `Resume`.
            Control::Pause => self.core.set_paused(true),
            Control::Resume => {
                self.core.set_paused(false);
                self.resync();
            }
            _ => {}
        }
        None
    }
}
