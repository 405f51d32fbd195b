//! The tokio runtime, Ctrl-C, and the bridge from synchronous Rhai calls to async sqlx.
//!
//! Rhai host functions are synchronous. Each one converts its arguments to owned values, then
//! blocks its thread on a future with `Runtime::block_on`. That is only sound on a thread that is
//! not a runtime worker (tokio panics otherwise), so script engines always run on plain threads:
//! the main thread for `run`/`eval`/the REPL, and one thread per `bench` worker.
//!
//! Engine threads also `enter()` the runtime so that pooled connections, whose drop spawns a
//! task, may be dropped there.
//!
//! Ctrl-C and SIGTERM set a process-wide flag and wake every `block_on`, which then drops its
//! future; Rhai's progress callback sees the flag and stops the script.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::OnceLock;

use tokio::sync::Notify;

use crate::error::{Error, Result};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static SIGNALS: AtomicU32 = AtomicU32::new(0);
/// The last signal received (SIGINT 2 or SIGTERM 15), for the exit status 128 + n.
static LAST_SIGNAL: AtomicU32 = AtomicU32::new(2);

/// The exit status for an interrupted run: 130 for Ctrl-C, 143 for SIGTERM.
pub fn interrupted_status() -> i32 {
    128 + LAST_SIGNAL.load(Ordering::SeqCst) as i32
}

fn notify() -> &'static Notify {
    static N: OnceLock<Notify> = OnceLock::new();
    N.get_or_init(Notify::new)
}

/// Has Ctrl-C (or SIGTERM) been pressed since the last `reset_interrupt`?
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Mark the process interrupted and wake everything waiting in `block_on`.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    notify().notify_waiters();
}

/// The REPL clears the flag before each entry.
pub fn reset_interrupt() {
    INTERRUPTED.store(false, Ordering::SeqCst);
    SIGNALS.store(0, Ordering::SeqCst);
}

/// A load run that stopped early on Ctrl-C clears the flag so the script can print its report;
/// the signal count is kept, so pressing Ctrl-C twice more still ends the process.
pub fn clear_interrupt_for_report() {
    INTERRUPTED.store(false, Ordering::SeqCst);
}

/// Resolves once `interrupt()` has been called.
pub async fn until_interrupted() {
    loop {
        let notified = notify().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if interrupted() {
            return;
        }
        notified.await;
    }
}

pub struct Runtime {
    rt: tokio::runtime::Runtime,
}

impl Runtime {
    pub fn new() -> Result<Runtime> {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("dsqlsh-rt")
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start the async runtime: {e}")))?;
        rt.spawn(listen_for_signals());
        Ok(Runtime { rt })
    }

    /// A single-threaded runtime for one engine thread (a bench worker): its connections are
    /// driven by the thread that waits on them, so a round trip costs no hand-off between a
    /// reactor thread and the engine thread. Ctrl-C reaches it through the process-wide flag.
    pub fn current_thread() -> Result<Runtime> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start the async runtime: {e}")))?;
        Ok(Runtime { rt })
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.rt.handle()
    }

    /// Run `f` to completion on the runtime; `Err(Interrupted)` when Ctrl-C comes first (the
    /// future is dropped, which cancels it).
    pub fn block_on<F: Future>(&self, f: F) -> Result<F::Output> {
        self.rt.block_on(async {
            tokio::select! {
                biased;
                out = f => Ok(out),
                _ = until_interrupted() => Err(Error::Interrupted),
            }
        })
    }

    /// Like `block_on`, but not cancelled by Ctrl-C (cleanup: ROLLBACK, closing pools).
    pub fn block_on_uninterruptible<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Make this thread's runtime context current, so that values which spawn cleanup tasks
    /// when dropped (sqlx's pooled connections) can be dropped on it. Engine threads hold this
    /// for their whole life; it does not make them runtime workers, so `block_on` stays legal.
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.rt.enter()
    }
}

async fn listen_for_signals() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        // A closed terminal or dropped ssh session: end as cleanly as for Ctrl-C.
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    loop {
        let signo = tokio::select! {
            _ = int.recv() => libc::SIGINT,
            _ = term.recv() => libc::SIGTERM,
            _ = hup.recv() => libc::SIGHUP,
        };
        LAST_SIGNAL.store(signo as u32, Ordering::SeqCst);
        // A third signal while cleanup still runs means the user really wants out.
        if SIGNALS.fetch_add(1, Ordering::SeqCst) >= 2 {
            std::process::exit(interrupted_status());
        }
        interrupt();
    }
}
