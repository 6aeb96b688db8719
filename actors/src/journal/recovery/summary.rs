//! What an owner does with a [`RecoveryReport`]: a one-line summary for logs and
//! `Status` detail, a log line (a warning when something was cut), and the
//! [`JournalRecovered`] telemetry event.

use vortex_messages::telemetry::{now_micros, JournalRecovered};

use super::RecoveryReport;

impl RecoveryReport {
    /// Bytes cut from the log (torn tail and corruption cut together).
    pub fn bytes_cut(&self) -> u64 {
        self.cuts().map(|cut| cut.bytes_cut).sum()
    }

    /// Well-formed frames that lay in the cut bytes.
    pub fn frames_cut(&self) -> u64 {
        self.cuts().map(|cut| cut.frames_after).sum()
    }

    /// Whether recovery changed anything on disk (a cut, a quarantined segment).
    pub fn is_clean(&self) -> bool {
        self.torn_tail.is_none()
            && self.corruption_cut.is_none()
            && self.removed_segments.is_empty()
    }

    fn cuts(&self) -> impl Iterator<Item = &super::Cut> {
        self.torn_tail.iter().chain(self.corruption_cut.iter())
    }

    /// `segments=… records=… last_seq=… bytes_cut=… frames_cut=… quarantined=…
    /// abandoned=…`, for logs and `Status` detail.
    pub fn summary(&self) -> String {
        format!(
            "segments={} records={} last_seq={} bytes_cut={} frames_cut={} \
             quarantined={} abandoned={}",
            self.segments,
            self.records,
            self.last_seq,
            self.bytes_cut(),
            self.frames_cut(),
            self.removed_segments.len(),
            self.abandoned_segments.len(),
        )
    }

    /// Logs the report for `journal` (a name or directory): `info` when clean, `warn`
    /// with every cut and quarantine file when not.
    pub fn log(&self, journal: &str, opens: u64) {
        if self.is_clean() {
            tracing::info!(journal, opens, recovery = %self.summary(), "journal opened");
            return;
        }
        for cut in self.cuts() {
            tracing::warn!(
                journal,
                segment = %cut.segment.display(),
                offset = cut.offset,
                bytes_cut = cut.bytes_cut,
                frames_after = cut.frames_after,
                reason = cut.reason,
                quarantine = %cut.quarantine.display(),
                "journal recovery cut the log"
            );
        }
        for segment in &self.removed_segments {
            tracing::warn!(journal, segment = %segment.display(), "journal segment quarantined");
        }
        tracing::warn!(journal, opens, recovery = %self.summary(), "journal recovered with cuts");
    }

    /// The telemetry event for this report.
    pub fn to_event(&self, journal: &str, opens: u64) -> JournalRecovered {
        JournalRecovered {
            at_micros: now_micros(),
            journal: journal.into(),
            opens,
            segments: self.segments as u64,
            records: self.records,
            last_seq: self.last_seq,
            bytes_cut: self.bytes_cut(),
            frames_cut: self.frames_cut(),
            segments_quarantined: self.removed_segments.len() as u64,
        }
    }
}
