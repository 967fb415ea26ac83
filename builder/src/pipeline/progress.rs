//! Stage timing: one `tracing` line per stage, and a spinner when stderr is a terminal.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    start: Instant,
}

impl Progress {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
                    .expect("valid template"),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        Progress {
            bar,
            start: Instant::now(),
        }
    }

    /// Runs one stage, timed, with its name on the spinner; errors get the stage as context.
    pub fn stage<T>(&self, name: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        if let Some(b) = &self.bar {
            b.set_message(name.to_string());
        }
        let t = Instant::now();
        let span = tracing::info_span!("stage", name);
        let r = span.in_scope(f);
        tracing::info!(
            stage = name,
            seconds = t.elapsed().as_secs_f64(),
            ok = r.is_ok(),
            "stage done"
        );
        anyhow::Context::with_context(r, || format!("stage {name}"))
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        tracing::info!(seconds = self.start.elapsed().as_secs_f64(), "build done");
    }
}
