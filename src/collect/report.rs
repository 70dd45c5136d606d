//! What collect tells the user: Django's log lines and summary, a JSON summary, a progress bar.
use super::missing::{Action, MissingReference, Policy, Unresolved};
use super::CollectOptions;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Django's `log(msg, level)`: a line is written when `verbosity >= level`.
pub struct Log {
    verbosity: u8,
    /// Lines go to stderr when stdout carries the JSON summary.
    to_stderr: bool,
    lock: Mutex<()>,
}

impl Log {
    pub fn new(verbosity: u8, to_stderr: bool) -> Self {
        Log {
            verbosity,
            to_stderr,
            lock: Mutex::new(()),
        }
    }

    pub fn line(&self, level: u8, msg: impl AsRef<str>) {
        if self.verbosity < level {
            return;
        }
        let _g = self.lock.lock();
        if self.to_stderr {
            let _ = writeln!(std::io::stderr(), "{}", msg.as_ref());
        } else {
            let _ = writeln!(std::io::stdout(), "{}", msg.as_ref());
        }
    }

    /// Warnings always go to stderr, unless `-v 0`.
    pub fn warn(&self, msg: impl AsRef<str>) {
        if self.verbosity > 0 {
            let _g = self.lock.lock();
            let _ = writeln!(std::io::stderr(), "{}", msg.as_ref());
        }
    }
}

/// Counts of one run; serialised for `--format json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub static_root: PathBuf,
    pub dry_run: bool,
    pub symlinked: bool,
    /// Files of the old tree removed by `--clear`.
    pub deleted: usize,
    /// Originals written (or linked) this run.
    pub copied: usize,
    /// Originals already present with identical bytes.
    pub unmodified: usize,
    /// Files that lost to an earlier finder source.
    pub skipped: usize,
    /// Outputs post-processed by this run: hashed copies written and, under WhiteNoise's
    /// storage, variants written.
    pub post_processed: usize,
    /// The "post-processed" count Django's collectstatic prints for the same run (every CSS/JS
    /// file each time, another file when its hashed copy is new, every WhiteNoise variant
    /// each time): the text summary's. Not in `--format json`, whose `post_processed` is the
    /// work this run did.
    #[serde(skip)]
    pub post_processed_django: usize,
    /// Files given a hashed name.
    pub hashed: usize,
    /// CSS/JS files whose references were rewritten.
    pub rewritten: usize,
    /// Compressed variant files written (`.br`, `.gz`, `.zst`).
    pub compressed: usize,
    /// Distinct contents run through the encoders this time (cache misses).
    pub compressions: usize,
    /// Distinct contents whose variants came from the cache.
    pub cache_hits: usize,
    /// Damaged cache entries found (and recomputed).
    pub cache_corrupt: usize,
    /// Delta deploys: deltas made, found in the cache, written, dropped.
    pub deltas: super::deltas::Counts,
    /// Bytes read from sources.
    pub bytes_in: u64,
    /// New bytes written into STATIC_ROOT (files linked from the previous tree excluded).
    pub bytes_out: u64,
    pub duration_ms: u128,
    /// Missing references left unchanged by a `warn` rule (each is in `warnings`).
    pub missing_warned: usize,
    /// Missing references left unchanged by an `ignore` rule.
    pub missing_ignored: usize,
    /// The `warn` ones: file, line, reference, target, rule. Callers print them.
    pub warnings: Vec<Unresolved>,
}

impl Summary {
    pub fn new(root: &Path, opts: &CollectOptions) -> Self {
        Summary {
            static_root: root.to_path_buf(),
            dry_run: opts.dry_run,
            symlinked: opts.link,
            ..Default::default()
        }
    }

    /// Counts the missing references the policy let through; keeps the warned ones.
    pub fn record_missing(
        &mut self,
        refs: impl Iterator<Item = MissingReference>,
        policy: &Policy,
    ) {
        for r in refs {
            let u = Unresolved::new(r, policy);
            match u.action {
                Action::Ignore => self.missing_ignored += 1,
                // An `error` here would have failed the run; count it as a warning regardless.
                Action::Warn | Action::Error => {
                    self.missing_warned += 1;
                    self.warnings.push(u);
                }
            }
        }
        self.warnings.sort_by(|a, b| {
            let key = |u: &Unresolved| (u.reference.path.clone(), u.reference.line);
            key(a).cmp(&key(b))
        });
    }

    pub fn finish(&mut self, started: std::time::Instant) {
        self.duration_ms = started.elapsed().as_millis();
    }

    /// Django 6.x's summary line (without the leading blank line).
    pub fn django_line(&self) -> String {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let mut s = String::new();
        if self.deleted > 0 {
            s += &format!(
                "{} static file{} deleted, ",
                self.deleted,
                plural(self.deleted)
            );
        }
        let n = self.copied;
        let action = if self.symlinked {
            "symlinked"
        } else {
            "copied"
        };
        s += &format!(
            "{n} static file{} {action} to '{}'",
            plural(n),
            self.static_root.display()
        );
        if self.unmodified > 0 {
            s += &format!(", {} unmodified", self.unmodified);
        }
        if self.post_processed_django > 0 {
            s += &format!(", {} post-processed", self.post_processed_django);
        }
        if self.skipped > 0 {
            s += &format!(", {} skipped due to conflict", self.skipped);
        }
        s.push('.');
        s
    }
}

/// `-v 3`: where a run's time goes, one line per phase as it ends
/// (`timing: PHASE: MS ms (WHAT)`).
pub struct Phases<'a> {
    log: &'a Log,
    last: std::time::Instant,
}

impl<'a> Phases<'a> {
    pub fn new(log: &'a Log) -> Self {
        Phases {
            log,
            last: std::time::Instant::now(),
        }
    }

    /// Ends the phase that began at the previous lap (or at `new`).
    pub fn lap(&mut self, phase: &str, what: impl std::fmt::Display) {
        let now = std::time::Instant::now();
        if self.log.verbosity >= 3 {
            self.log.line(3, timing_line(phase, now - self.last, what));
        }
        self.last = now;
    }
}

/// One `-v 3` timing line.
pub fn timing_line(
    phase: &str,
    elapsed: std::time::Duration,
    what: impl std::fmt::Display,
) -> String {
    format!(
        "timing: {phase}: {:.1} ms ({what})",
        elapsed.as_secs_f64() * 1000.0
    )
}

/// A progress bar on a terminal; nothing otherwise. Clones show the same bar.
#[derive(Clone)]
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub fn new(enabled: bool) -> Self {
        use std::io::IsTerminal;
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template("{msg:>22} [{bar:30}] {pos}/{len}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b
        });
        Progress { bar }
    }

    pub fn stage(&self, name: &'static str, len: usize) {
        if let Some(b) = &self.bar {
            b.set_message(name);
            b.set_length(len as u64);
            b.set_position(0);
        }
    }

    /// Moves the bar to `pos` (set from several threads, it may lag by a step or two).
    pub fn set(&self, pos: usize) {
        if let Some(b) = &self.bar {
            b.set_position(pos as u64);
        }
    }

    pub fn inc(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_summary_lines() {
        let mut s = Summary {
            static_root: "/srv/static".into(),
            copied: 47,
            post_processed_django: 47,
            skipped: 1,
            ..Default::default()
        };
        assert_eq!(
            s.django_line(),
            "47 static files copied to '/srv/static', 47 post-processed, 1 skipped due to conflict."
        );
        s.deleted = 95;
        assert!(s
            .django_line()
            .starts_with("95 static files deleted, 47 static files copied"));
        let one = Summary {
            static_root: "/s".into(),
            copied: 1,
            post_processed_django: 1,
            ..Default::default()
        };
        assert_eq!(
            one.django_line(),
            "1 static file copied to '/s', 1 post-processed."
        );
        let again = Summary {
            static_root: "/s".into(),
            unmodified: 47,
            post_processed_django: 29,
            symlinked: true,
            ..Default::default()
        };
        assert_eq!(
            again.django_line(),
            "0 static files symlinked to '/s', 47 unmodified, 29 post-processed."
        );
    }
}
