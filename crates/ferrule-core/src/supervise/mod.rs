//! The master process: pre-forked workers, supervised (docs/architecture.md, "Processes").
//!
//! [`supervise`] takes the bound listeners and forks `workers` children. Like `fork()` it
//! returns in both processes: in a worker it returns [`Role::Worker`] at once (the caller then
//! loads the app and serves on the inherited listeners, telling the master `READY` over
//! [`WorkerContext::link`]); in the master it returns [`Role::Exit`] with the exit code once
//! every worker is gone.
//!
//! The master is single-threaded and runs no async runtime: `fork()` copies only the calling
//! thread, so a process with other threads (a tokio pool, a logger thread) could fork while one
//! of them holds a lock the child then waits on forever. Files: `master` (the loop), `signals`
//! (the self-pipe), `pipe` (worker → master messages), `recycle` (a worker asking to be
//! replaced: max requests, memory), `notify` (systemd's `sd_notify`), `reexec` (USR2: a new
//! master over the same sockets), `title` (what `ps` shows).

mod master;
pub mod notify;
pub mod pipe;
pub mod recycle;
pub mod reexec;
pub mod signals;
pub mod title;

use std::net::TcpListener;

use crate::config::ServerConfig;

pub use pipe::{MasterLink, Message};
pub use recycle::Recycler;

/// Exit code of a worker whose app could not be loaded (gunicorn uses the same value).
/// The master treats it, like a `BOOT_FAILED` message, as "stop everything, do not respawn".
pub const EXIT_BOOT_FAILED: i32 = 3;
/// Exit code of the master after a worker failed to boot (the CLI's "cannot load the app").
pub const EXIT_MASTER_BOOT_FAILED: i32 = 1;

/// Called around `fork()`, so an embedding runtime (CPython) can prepare: take its locks
/// before, release them in the parent, reinitialise them in the child.
pub trait ForkHooks {
    fn before_fork(&mut self);
    fn after_fork_parent(&mut self);
    fn after_fork_child(&mut self);
}

/// What a freshly forked worker gets from its master.
#[derive(Debug)]
pub struct WorkerContext {
    /// 1, 2, 3, … in fork order; a replacement gets a new id.
    pub id: u32,
    /// The master's listeners, inherited (same sockets, shared accept queue).
    pub listeners: Vec<TcpListener>,
    /// The write end of this worker's pipe to the master.
    pub link: MasterLink,
}

/// Which process [`supervise`] returned in.
#[derive(Debug)]
pub enum Role {
    /// A forked worker: serve.
    Worker(WorkerContext),
    /// The master, done: exit with this code.
    Exit(i32),
}

/// The master could not start or keep running (e.g. `fork` or `pipe` failed).
#[derive(Debug)]
pub struct SuperviseError {
    pub message: String,
}

impl std::fmt::Display for SuperviseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SuperviseError {}

impl SuperviseError {
    fn io(what: &str, e: std::io::Error) -> SuperviseError {
        SuperviseError {
            message: format!("{what}: {e}"),
        }
    }
}

/// What the master needs besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct MasterOptions {
    /// How to start a new master on USR2; `None`: USR2 is logged and ignored.
    pub reexec: Option<reexec::Reexec>,
    /// The master this one replaces (started by its USR2): sent TERM once every initial
    /// worker of this master is ready.
    pub old_master: Option<libc::pid_t>,
}

/// Runs the master over `listeners` (see the module docs). Call from a single-threaded
/// process; `hooks` run around every fork.
pub fn supervise(
    config: &ServerConfig,
    listeners: Vec<TcpListener>,
    hooks: &mut dyn ForkHooks,
) -> Result<Role, SuperviseError> {
    supervise_with(config, listeners, hooks, MasterOptions::default())
}

/// [`supervise`] with [`MasterOptions`].
pub fn supervise_with(
    config: &ServerConfig,
    listeners: Vec<TcpListener>,
    hooks: &mut dyn ForkHooks,
    options: MasterOptions,
) -> Result<Role, SuperviseError> {
    master::Master::new(config, listeners, hooks, options)?.run()
}
