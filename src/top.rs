//! `vortex top`: a live terminal view of a running node, over its control socket.
//!
//! [`Top`] holds what the view shows: every actor's status (state, mailbox depth,
//! handled per second, restarts, dead letters), the launchers' devices (utilisation,
//! memory, data-stall ratio, rotation, read from their status detail) and the resource
//! groups. [`Top::refresh`] asks the server for all of it (`List` and `Groups`);
//! [`Top::draw`] renders it with ratatui; [`Top::on_key`] turns a key into an
//! [`Action`] and [`Top::apply`] sends the command to the selected actor.
//!
//! Keys: `↑`/`↓` (or `k`/`j`) select an actor, `p` pauses it, `r` resumes it, `c`
//! checkpoints it, `q`, `Esc` or `Ctrl-C` quits.
//!
//! [`run`] is the interactive loop `vortex top` starts (raw mode, alternate screen,
//! restored on exit); [`Top::render_text`] draws one frame into a string, which is what
//! `vortex top --once` prints.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState};
use ratatui::{Frame, Terminal};

use crate::actors::control::{ClientError, ControlClient};
use crate::messages::resource::ResourceGroupStatus;
use crate::messages::{ActorState, Control, ControlReply, StatusReport};

/// How long a refresh waits for one actor's `Status` (its detail) before it moves on.
pub const DETAIL_WAIT: Duration = Duration::from_millis(250);

/// One actor as the view shows it.
#[derive(Debug, Clone)]
pub struct ActorRow {
    /// The status the server reported.
    pub status: StatusReport,
    /// Messages handled per second since the previous refresh (`None` on the first).
    pub handled_per_sec: Option<f64>,
}

/// A launcher's device, read from its status detail (`device=… util=…% memory=…B
/// rotation=… stall=…%`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRow {
    /// The launcher's name.
    pub launcher: String,
    /// The device label (`cpu:0`, `cuda:1`).
    pub device: String,
    /// `in`, or `OUT` when the device left the rotation.
    pub rotation: String,
    /// Utilisation, 0.0–1.0.
    pub utilisation: Option<f64>,
    /// Memory in use, bytes.
    pub memory_bytes: Option<u64>,
    /// Fraction of its active time the launcher waited for input, 0.0–1.0.
    pub data_stall_ratio: Option<f64>,
}

impl DeviceRow {
    /// Parses a launcher's status detail; `None` when it is not a launcher's.
    pub fn parse(launcher: &str, detail: &str) -> Option<DeviceRow> {
        let field = |key: &str| {
            detail
                .split_whitespace()
                .find_map(|token| token.strip_prefix(key)?.strip_prefix('='))
        };
        let percent = |key: &str| {
            field(key)
                .and_then(|value| value.trim_end_matches('%').parse::<f64>().ok())
                .map(|value| value / 100.0)
        };
        Some(DeviceRow {
            launcher: launcher.to_owned(),
            device: field("device")?.to_owned(),
            rotation: field("rotation").unwrap_or("?").to_owned(),
            utilisation: percent("util"),
            memory_bytes: field("memory")
                .and_then(|value| value.trim_end_matches('B').parse::<u64>().ok()),
            data_stall_ratio: percent("stall"),
        })
    }
}

/// What a key asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Leave `vortex top`.
    Quit,
    /// Send `command` to the actor `actor`.
    Command {
        /// The selected actor.
        actor: String,
        /// Pause, Resume or Checkpoint.
        command: Control,
    },
}

/// The state of a `vortex top` view.
#[derive(Debug)]
pub struct Top {
    source: String,
    actors: Vec<ActorRow>,
    groups: Vec<ResourceGroupStatus>,
    selected: usize,
    previous: HashMap<String, (u64, Instant)>,
    message: String,
    refreshes: u64,
}

impl Top {
    /// An empty view of the node at `source` (shown in the title: a socket path or an
    /// address).
    pub fn new(source: impl Into<String>) -> Top {
        Top {
            source: source.into(),
            actors: Vec::new(),
            groups: Vec::new(),
            selected: 0,
            previous: HashMap::new(),
            message: "↑/↓ select · p pause · r resume · c checkpoint · q quit".to_owned(),
            refreshes: 0,
        }
    }

    /// The actors, sorted by name, as of the last refresh.
    pub fn actors(&self) -> &[ActorRow] {
        &self.actors
    }

    /// The resource groups as of the last refresh.
    pub fn groups(&self) -> &[ResourceGroupStatus] {
        &self.groups
    }

    /// The launchers' devices as of the last refresh.
    pub fn devices(&self) -> Vec<DeviceRow> {
        self.actors
            .iter()
            .filter_map(|row| DeviceRow::parse(&row.status.name, &row.status.detail))
            .collect()
    }

    /// The selected actor's name, if there is any actor.
    pub fn selected(&self) -> Option<&str> {
        self.actors
            .get(self.selected)
            .map(|row| row.status.name.as_str())
    }

    /// The status line: the outcome of the last command, or the key help.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Takes a new set of statuses and groups, measured at `now` (handled per second is
    /// the change since the previous update). The selection stays on the same actor.
    pub fn update(
        &mut self,
        mut statuses: Vec<StatusReport>,
        groups: Vec<ResourceGroupStatus>,
        now: Instant,
    ) {
        let selected = self.selected().map(str::to_owned);
        statuses.sort_by(|a, b| a.name.cmp(&b.name));
        self.actors = statuses
            .into_iter()
            .map(|status| {
                let handled_per_sec =
                    self.previous
                        .get(&status.name)
                        .and_then(|&(handled, then)| {
                            let secs = now.saturating_duration_since(then).as_secs_f64();
                            (secs > 0.0)
                                .then(|| status.handled.saturating_sub(handled) as f64 / secs)
                        });
                ActorRow {
                    status,
                    handled_per_sec,
                }
            })
            .collect();
        self.previous = self
            .actors
            .iter()
            .map(|row| (row.status.name.clone(), (row.status.handled, now)))
            .collect();
        self.groups = groups;
        self.selected = selected
            .and_then(|name| self.actors.iter().position(|row| row.status.name == name))
            .unwrap_or(0)
            .min(self.actors.len().saturating_sub(1));
        self.refreshes += 1;
    }

    /// Asks the server for every actor's status and every resource group.
    ///
    /// # Errors
    ///
    /// The connection failed or the server refused.
    pub async fn refresh(&mut self, client: &mut ControlClient) -> Result<(), ClientError> {
        let mut statuses = client.list().await?;
        // The list carries no detail; each actor's own `Status` does (a launcher's
        // device, rotation and stall ratio). A busy actor that does not answer quickly
        // keeps its row without detail rather than stall the view.
        for status in &mut statuses {
            if let Ok(reply) =
                tokio::time::timeout(DETAIL_WAIT, client.control(&status.name, Control::Status))
                    .await
            {
                if let Ok(ControlReply::Status(report)) = reply? {
                    status.detail = report.detail;
                }
            }
        }
        let groups = client.groups().await?;
        self.update(statuses, groups, Instant::now());
        Ok(())
    }

    /// What `key` asks for: moves the selection (and returns `None`), or returns the
    /// command for the selected actor, or [`Action::Quit`].
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let command = match key.code {
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                return Some(Action::Quit)
            }
            KeyCode::Char('q') | KeyCode::Esc => return Some(Action::Quit),
            KeyCode::Up | KeyCode::Char('k') => {
                self.selected = self.selected.saturating_sub(1);
                return None;
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(self.actors.len().saturating_sub(1));
                return None;
            }
            KeyCode::Char('p') => Control::Pause,
            KeyCode::Char('r') => Control::Resume,
            KeyCode::Char('c') => Control::Checkpoint,
            _ => return None,
        };
        Some(Action::Command {
            actor: self.selected()?.to_owned(),
            command,
        })
    }

    /// Sends a command (from [`on_key`](Self::on_key)) and puts its outcome on the
    /// status line. Returns `false` for [`Action::Quit`].
    ///
    /// # Errors
    ///
    /// The connection failed (an actor refusing the command is not an error: its answer
    /// goes on the status line).
    pub async fn apply(
        &mut self,
        client: &mut ControlClient,
        action: Action,
    ) -> Result<bool, ClientError> {
        let Action::Command { actor, command } = action else {
            return Ok(false);
        };
        let name = command.name();
        self.message = match client.control(&actor, command).await? {
            Ok(ControlReply::Checkpointed(checkpoint)) => format!(
                "{actor}: checkpoint epoch {} ({} bytes)",
                checkpoint.epoch,
                checkpoint.bytes.len()
            ),
            Ok(reply) => format!("{actor}: {name} → {reply:?}"),
            Err(error) => format!("{actor}: {name} refused: {error}"),
        };
        Ok(true)
    }

    /// Draws the view into `frame`.
    pub fn draw(&self, frame: &mut Frame<'_>) {
        let devices = self.devices();
        let [title, actors, devices_area, groups_area, _, status] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(self.actors.len().max(1) as u16 + 3),
            Constraint::Length(devices.len().max(1) as u16 + 3),
            Constraint::Length(self.groups.len().max(1) as u16 + 3),
            Constraint::Min(0),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        let name_width = self
            .actors
            .iter()
            .map(|row| row.status.name.len())
            .chain(self.groups.iter().map(|group| group.name.len()))
            .max()
            .unwrap_or(0)
            .max(8) as u16
            + 2;
        frame.render_widget(
            Paragraph::new(Line::from(format!(
                "vortex top · {} · {} actors · {} devices · {} resource groups",
                self.source,
                self.actors.len(),
                devices.len(),
                self.groups.len()
            )))
            .style(Style::new().add_modifier(Modifier::BOLD)),
            title,
        );

        let header = Row::new([
            "NAME",
            "KIND",
            "STATE",
            "DEPTH",
            "HANDLED/S",
            "HANDLED",
            "RESTARTS",
            "DEAD",
            "WORKERS",
        ])
        .style(Style::new().add_modifier(Modifier::BOLD));
        let rows = self.actors.iter().map(|row| {
            let status = &row.status;
            let style = match status.state {
                ActorState::Paused => Style::new().add_modifier(Modifier::DIM),
                ActorState::Failed | ActorState::Restarting => {
                    Style::new().add_modifier(Modifier::UNDERLINED)
                }
                _ => Style::new(),
            };
            Row::new([
                status.name.clone(),
                status.kind.to_string(),
                status.state.to_string(),
                format!("{}/{}", status.mailbox_depth, status.mailbox_capacity),
                row.handled_per_sec
                    .map_or_else(|| "-".to_owned(), |rate| format!("{rate:.0}")),
                status.handled.to_string(),
                status.restarts.to_string(),
                status.dead_letters.to_string(),
                status.workers.to_string(),
            ])
            .style(style)
        });
        let table = Table::new(
            rows,
            [
                Constraint::Length(name_width),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(11),
                Constraint::Length(9),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(6),
                Constraint::Length(7),
            ],
        )
        .header(header)
        .block(Block::bordered().title(" actors "))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ");
        let mut state = TableState::default().with_selected(Some(self.selected));
        frame.render_stateful_widget(table, actors, &mut state);

        let header = Row::new(["LAUNCHER", "DEVICE", "ROTATION", "UTIL", "MEMORY", "STALL"])
            .style(Style::new().add_modifier(Modifier::BOLD));
        let percent = |value: Option<f64>| {
            value.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0))
        };
        let rows = devices.iter().map(|device| {
            Row::new([
                device.launcher.clone(),
                device.device.clone(),
                device.rotation.clone(),
                percent(device.utilisation),
                device.memory_bytes.map_or_else(
                    || "-".to_owned(),
                    |bytes| format!("{:.1} MiB", bytes as f64 / 1048576.0),
                ),
                percent(device.data_stall_ratio),
            ])
        });
        frame.render_widget(
            Table::new(
                rows,
                [
                    Constraint::Length(name_width),
                    Constraint::Length(8),
                    Constraint::Length(9),
                    Constraint::Length(7),
                    Constraint::Length(11),
                    Constraint::Length(7),
                ],
            )
            .header(header)
            .block(Block::bordered().title(" devices (launchers) ")),
            devices_area,
        );

        let header = Row::new(["GROUP", "THREADS", "CORES", "ACTIVE", "DONE", "PANICKED"])
            .style(Style::new().add_modifier(Modifier::BOLD));
        let rows = self.groups.iter().map(|group| {
            Row::new([
                group.name.clone(),
                group.threads.to_string(),
                group
                    .cores
                    .as_ref()
                    .map_or_else(|| "not pinned".to_owned(), |cores| format!("{cores:?}")),
                group.active_tasks.to_string(),
                group.completed.to_string(),
                group.panicked.to_string(),
            ])
        });
        frame.render_widget(
            Table::new(
                rows,
                [
                    Constraint::Length(name_width),
                    Constraint::Length(8),
                    Constraint::Length(16),
                    Constraint::Length(7),
                    Constraint::Length(10),
                    Constraint::Length(9),
                ],
            )
            .header(header)
            .block(Block::bordered().title(" resource groups ")),
            groups_area,
        );
        frame.render_widget(Paragraph::new(Line::from(self.message.clone())), status);
    }

    /// The rows a frame needs to show everything without blank space.
    pub fn height(&self) -> u16 {
        let tables = [self.actors.len(), self.devices().len(), self.groups.len()];
        2 + tables.iter().map(|rows| rows.max(&1) + 3).sum::<usize>() as u16
    }

    /// Draws one frame of `width × height` cells and returns it as text, one line per
    /// row (trailing spaces trimmed).
    pub fn render_text(&self, width: u16, height: u16) -> String {
        let mut terminal =
            Terminal::new(TestBackend::new(width, height)).expect("a test backend cannot fail");
        terminal
            .draw(|frame| self.draw(frame))
            .expect("a test backend cannot fail");
        buffer_text(terminal.backend().buffer())
    }
}

/// A ratatui buffer as text, one line per row (trailing spaces trimmed).
pub fn buffer_text(buffer: &ratatui::buffer::Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The interactive `vortex top`: refreshes every `interval`, redraws, and handles keys
/// until `q`, `Esc` or `Ctrl-C`. The terminal is restored on the way out (and on a
/// panic).
///
/// # Errors
///
/// The terminal could not be set up, or the connection to the node failed.
pub async fn run(
    mut client: ControlClient,
    source: String,
    interval: Duration,
) -> anyhow::Result<()> {
    let mut terminal = ratatui::init();
    let outcome = interactive(&mut terminal, &mut client, source, interval).await;
    ratatui::restore();
    outcome
}

async fn interactive(
    terminal: &mut ratatui::DefaultTerminal,
    client: &mut ControlClient,
    source: String,
    interval: Duration,
) -> anyhow::Result<()> {
    let mut top = Top::new(source);
    let mut next_refresh = Instant::now();
    loop {
        if Instant::now() >= next_refresh {
            top.refresh(client).await?;
            next_refresh = Instant::now() + interval;
        }
        terminal.draw(|frame| top.draw(frame))?;
        let wait = next_refresh.saturating_duration_since(Instant::now());
        // Waits for a key for at most one refresh interval, off the async threads.
        let key = tokio::task::spawn_blocking(move || -> std::io::Result<Option<KeyEvent>> {
            if event::poll(wait)? {
                if let Event::Key(key) = event::read()? {
                    return Ok(Some(key));
                }
            }
            Ok(None)
        })
        .await??;
        if let Some(action) = key.and_then(|key| top.on_key(key)) {
            if !top.apply(client, action).await? {
                return Ok(());
            }
            next_refresh = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, handled: u64) -> StatusReport {
        StatusReport {
            name: name.to_owned(),
            kind: crate::messages::ActorKind::Actor,
            state: ActorState::Running,
            mailbox_depth: 0,
            mailbox_capacity: 8,
            handled,
            handler_micros: 0,
            restarts: 0,
            dead_letters: 0,
            workers: 1,
            detail: String::new(),
        }
    }

    #[test]
    fn handled_per_second_is_the_change_between_refreshes_and_the_selection_follows_the_name() {
        let mut top = Top::new("t");
        let start = Instant::now();
        top.update(vec![status("b", 10), status("a", 0)], Vec::new(), start);
        assert_eq!(top.actors()[0].status.name, "a", "sorted by name");
        assert!(top.actors().iter().all(|row| row.handled_per_sec.is_none()));
        top.on_key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE));
        assert_eq!(top.selected(), Some("b"));
        // A new actor sorts before b: the selection stays on b.
        let later = start + Duration::from_secs(2);
        top.update(
            vec![status("a", 4), status("b", 30), status("0-new", 0)],
            Vec::new(),
            later,
        );
        assert_eq!(top.selected(), Some("b"));
        let rate = |top: &Top, name: &str| {
            top.actors()
                .iter()
                .find(|row| row.status.name == name)
                .and_then(|row| row.handled_per_sec)
        };
        assert_eq!(rate(&top, "b"), Some(10.0));
        assert_eq!(rate(&top, "a"), Some(2.0));
        assert_eq!(rate(&top, "0-new"), None);
        // The selected actor gone: the selection falls back to the first row.
        top.update(
            vec![status("a", 4)],
            Vec::new(),
            later + Duration::from_secs(1),
        );
        assert_eq!(top.selected(), Some("a"));
        assert_eq!(rate(&top, "a"), Some(0.0));
        // No actor: keys that command something do nothing.
        top.update(Vec::new(), Vec::new(), later + Duration::from_secs(2));
        assert_eq!(
            top.on_key(KeyEvent::new(KeyCode::Char('p'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(
            top.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
    }

    #[test]
    fn a_launcher_detail_parses_into_a_device_row() {
        let detail = "device=cpu:1 kernel=mlp rotation=OUT (fault budget of 3 within 10s spent; `resume` probes the device) util=42% memory=2048B batches=5 items=40 faults=3 dead_lettered=3 probes=0 queued=0 max_queued=2 prefetch=2 compute_ms=1.0 copy_ms=0.1 stall=12.5%";
        let row = DeviceRow::parse("launcher-1", detail).unwrap();
        assert_eq!(row.device, "cpu:1");
        assert_eq!(row.rotation, "OUT");
        assert_eq!(row.utilisation, Some(0.42));
        assert_eq!(row.memory_bytes, Some(2048));
        assert_eq!(row.data_stall_ratio, Some(0.125));
        assert_eq!(DeviceRow::parse("sink", ""), None);
    }
}
