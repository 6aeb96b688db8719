//! Hysteresis: act up quickly, down slowly; a flip of direction resets the count.

use crate::autotuner::config::HysteresisSettings;

/// Which way a controller's evidence points this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The knob should grow.
    Up,
    /// The knob should shrink.
    Down,
    /// The knob is where it should be.
    Hold,
}

/// Counts consecutive rounds of evidence in one direction (Ray Serve's autoscaling rule):
/// a controller acts when the count reaches the direction's delay; a round pointing the
/// other way, or holding, starts the count again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hysteresis {
    settings: HysteresisSettings,
    direction: Direction,
    count: u32,
}

impl Hysteresis {
    /// A counter with `settings`' delays and no evidence yet.
    pub fn new(settings: HysteresisSettings) -> Self {
        Hysteresis {
            settings,
            direction: Direction::Hold,
            count: 0,
        }
    }

    /// Records one round of evidence; `true` when the controller should act now (the
    /// count then starts again).
    pub fn observe(&mut self, direction: Direction) -> bool {
        if direction != self.direction {
            self.direction = direction;
            self.count = 0;
        }
        let needed = match direction {
            Direction::Hold => return false,
            Direction::Up => self.settings.up_rounds.max(1),
            Direction::Down => self.settings.down_rounds.max(1),
        };
        self.count += 1;
        if self.count >= needed {
            self.count = 0;
            true
        } else {
            false
        }
    }

    /// Rounds of evidence so far in the current direction, and how many are needed.
    pub fn progress(&self) -> (u32, u32) {
        let needed = match self.direction {
            Direction::Hold => 0,
            Direction::Up => self.settings.up_rounds.max(1),
            Direction::Down => self.settings.down_rounds.max(1),
        };
        (self.count, needed)
    }

    /// Forgets the evidence (after an action someone else took).
    pub fn reset(&mut self) {
        self.direction = Direction::Hold;
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Down, Hold, Up};

    #[test]
    fn up_fast_down_slow_and_a_flip_resets() {
        let settings = HysteresisSettings {
            up_rounds: 1,
            down_rounds: 3,
        };
        // (evidence, acts?)
        let table = [
            (Up, true),
            (Down, false),
            (Down, false),
            (Up, true), // flip: the two downs are forgotten
            (Down, false),
            (Down, false),
            (Hold, false), // a hold resets too
            (Down, false),
            (Down, false),
            (Down, true),
            (Down, false), // counting starts again after acting
        ];
        let mut hysteresis = Hysteresis::new(settings);
        for (round, (direction, acts)) in table.into_iter().enumerate() {
            assert_eq!(
                hysteresis.observe(direction),
                acts,
                "round {round}: {direction:?}"
            );
        }
        assert_eq!(hysteresis.progress(), (1, 3));
    }
}
