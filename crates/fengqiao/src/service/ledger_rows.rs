//! The keeper of the store's ledger rows (the 台账 export's per-case facts,
//! `fengqiao_store::Store::keep_ledger_rows`), run beside serving until the node stops.
//!
//! It follows the change feed in batches on a blocking thread. While behind (a store an earlier
//! build wrote, a restored one, an import in progress) it rests as long as each batch took, so
//! it takes at most about half a core from the node's own work; once caught up it looks again
//! every [`IDLE_PAUSE`]. An export never waits for it: a case without a current row is read from
//! its document.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Node;

/// Feed entries per step: small enough that a stop is seen promptly.
const BATCH: usize = 256;

/// How long the keeper rests once it has reached the feed's head.
const IDLE_PAUSE: Duration = Duration::from_secs(2);

/// How long it rests after a failed step (a full disk, say) before trying again.
const FAILURE_PAUSE: Duration = Duration::from_secs(30);

pub async fn keep_periodically(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let started = Instant::now();
    let mut written_total = 0usize;
    let mut was_behind = false;
    loop {
        if *stop.borrow() {
            break;
        }
        let worker = Arc::clone(&node);
        let step_started = Instant::now();
        let pause = match tokio::task::spawn_blocking(move || {
            worker.store().keep_ledger_rows(BATCH)
        })
        .await
        {
            Ok(Ok(step)) => {
                written_total += step.written;
                if step.caught_up {
                    if was_behind {
                        tracing::info!(
                            rows = written_total,
                            seconds = started.elapsed().as_secs_f64(),
                            "ledger rows up to date: exports read them instead of the documents"
                        );
                        was_behind = false;
                    }
                    IDLE_PAUSE
                } else {
                    if !was_behind && written_total == step.written {
                        tracing::info!("bringing the ledger rows up to date beside serving");
                    }
                    was_behind = true;
                    step_started.elapsed()
                }
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot keep the ledger rows; exports read the documents meanwhile");
                FAILURE_PAUSE
            }
            Err(error) => {
                tracing::error!(%error, "the ledger rows' keeper stopped abnormally");
                break;
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
    }
    tracing::debug!("ledger rows' keeper stopped");
}
