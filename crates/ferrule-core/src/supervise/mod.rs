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

use crate::config::ServerConfig;
use crate::server::Listener;

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
    /// Something happened in the master (gunicorn's master-side server hooks, see
    /// [`MasterEvent`]). Called on the master's thread, never between `before_fork` and
    /// `after_fork_*`; the default does nothing.
    fn event(&mut self, _event: &MasterEvent) {}
}

/// What the master tells [`ForkHooks::event`]; the names are gunicorn's hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterEvent {
    /// The master runs and is about to fork its first workers (`when_ready`).
    Ready,
    /// Worker `id` is about to be forked (`pre_fork`).
    PreFork { id: u32 },
    /// Worker `id` was forked as `pid` (in the master; no gunicorn hook, it keeps the
    /// embedder's worker table current).
    Forked { id: u32, pid: libc::pid_t },
    /// Worker `id` (`pid`) ended with wait status `status` and was reaped (`child_exit`).
    ChildExit {
        id: u32,
        pid: libc::pid_t,
        status: libc::c_int,
    },
    /// The worker target changed, TTIN/TTOU (`nworkers_changed`).
    WorkersChanged { new: usize, old: usize },
    /// HUP: a reload starts (`on_reload`).
    Reload,
    /// USR2: a new master is about to be started (`pre_exec`).
    PreExec,
}

impl MasterEvent {
    /// The gunicorn hook name (`forked` for [`MasterEvent::Forked`]).
    pub fn name(&self) -> &'static str {
        match self {
            MasterEvent::Ready => "when_ready",
            MasterEvent::PreFork { .. } => "pre_fork",
            MasterEvent::Forked { .. } => "forked",
            MasterEvent::ChildExit { .. } => "child_exit",
            MasterEvent::WorkersChanged { .. } => "nworkers_changed",
            MasterEvent::Reload => "on_reload",
            MasterEvent::PreExec => "pre_exec",
        }
    }
}

/// What a freshly forked worker gets from its master.
#[derive(Debug)]
pub struct WorkerContext {
    /// 1, 2, 3, … in fork order; a replacement gets a new id.
    pub id: u32,
    /// The master's listeners, inherited (same sockets, shared accept queue).
    pub listeners: Vec<Listener>,
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
    listeners: Vec<Listener>,
    hooks: &mut dyn ForkHooks,
) -> Result<Role, SuperviseError> {
    supervise_with(config, listeners, hooks, MasterOptions::default())
}

/// [`supervise`] with [`MasterOptions`].
pub fn supervise_with(
    config: &ServerConfig,
    listeners: Vec<Listener>,
    hooks: &mut dyn ForkHooks,
    options: MasterOptions,
) -> Result<Role, SuperviseError> {
    master::Master::new(config, listeners, hooks, options)?.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_gunicorns_hook_names() {
        assert_eq!(MasterEvent::Ready.name(), "when_ready");
        assert_eq!(MasterEvent::PreFork { id: 1 }.name(), "pre_fork");
        let exit = MasterEvent::ChildExit {
            id: 1,
            pid: 2,
            status: 0,
        };
        assert_eq!(exit.name(), "child_exit");
        let changed = MasterEvent::WorkersChanged { new: 3, old: 2 };
        assert_eq!(changed.name(), "nworkers_changed");
        assert_eq!(MasterEvent::Reload.name(), "on_reload");
        assert_eq!(MasterEvent::PreExec.name(), "pre_exec");
    }
}
