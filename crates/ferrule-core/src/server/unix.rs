//! Unix-domain stream sockets for `--bind unix:PATH` (`unix(7)`): creating the socket file,
//! its permission bits, a file already at the path, and removing the file at the end.
//!
//! - **A file already at PATH.** `bind(2)` fails with `EADDRINUSE` when PATH exists, even when
//!   the socket behind it died with its process ("a stale socket"). Before binding, PATH is
//!   examined without following a symlink: nothing there → bind; a socket file → a
//!   non-blocking `connect(2)` tells whether someone accepts on it: `ECONNREFUSED` means nobody
//!   does, and only then is the file removed; a connection (or `EAGAIN`, a full backlog) means
//!   a live server, and the bind is refused; anything else (`EACCES`: we cannot tell) is
//!   refused too. Anything that is not a socket (a regular file, a directory, a symlink) is
//!   never removed: the bind is refused with what it is.
//! - **Permission bits** (`--unix-socket-mode`, default
//!   [`crate::config::DEFAULT_UNIX_SOCKET_MODE`]). Connecting needs write permission on the
//!   socket file. Linux creates the file with the socket's own inode mode minus the umask, so
//!   the bits are set on the socket before `bind(2)` (the file is never more open than asked,
//!   even for an instant) and then exactly on the file with `chmod(2)` (the umask may have
//!   removed some). The directory's permissions matter too, and are the operator's.
//! - **Owner** (`--user`/`--group`, [`SocketOptions`]). When the workers switch to another
//!   user or group, the file is given to them with `lchown(2)` right after the `chmod` (as
//!   gunicorn does), so the file's owner and group are the ones the workers run as and the
//!   mode's owner/group bits mean them (a front server in that group can connect with the
//!   default 0o660). The names are resolved as the workers' switch resolves them
//!   (`python/ferrule/process.py`): a number is an id (a user number with a passwd entry also
//!   gives its primary group), a name is looked up (`getpwnam_r(3)`, `getgrnam_r(3)`), and
//!   `--user` alone means that user's primary group. An unknown name, or a `chown` refused
//!   (not root, and not a group of ours), fails the bind: the workers could not switch either.
//!   An adopted `fd://N` socket is not ours: it is left as it is.
//! - **Removing the file.** The process that created the file removes it when the listener is
//!   dropped: a lone process once it stops accepting, a master when it exits. It removes only
//!   the file it created (same device and inode), so a file another server has put there
//!   since is left alone. A forked worker never removes it (the guard remembers its creator's
//!   pid), nor does a process that adopted the socket with `fd://N` (systemd owns the socket
//!   files it passes), nor a master that handed its sockets to a new master on USR2
//!   ([`SocketFile::keep`]).

use std::ffi::CString;
use std::fs::Permissions;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

/// The prefix of a Unix socket bind: `unix:PATH`.
pub const UNIX_PREFIX: &str = "unix:";

/// The path of a `unix:PATH` bind, `None` for any other kind of address.
pub fn unix_spec(spec: &str) -> Option<&Path> {
    spec.strip_prefix(UNIX_PREFIX).map(Path::new)
}

/// What is at a socket path before binding.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Existing {
    Nothing,
    /// A socket file nobody accepts on.
    Stale,
    /// A socket file a live server accepts on.
    Live,
    /// Something else (its kind, for the message).
    NotASocket(&'static str),
}

fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_file() {
        "regular file"
    } else if file_type.is_dir() {
        "directory"
    } else if file_type.is_symlink() {
        "symbolic link"
    } else if file_type.is_fifo() {
        "named pipe"
    } else {
        "device file"
    }
}

/// Examines `path` (see the module docs); an error means we cannot tell.
fn probe(path: &Path) -> io::Result<Existing> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Nothing),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Ok(Existing::NotASocket(kind_of(meta.file_type())));
    }
    // Non-blocking, so a live server with a full backlog answers EAGAIN instead of making us
    // wait for it.
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    match socket.connect(&SockAddr::unix(path)?) {
        Ok(()) => Ok(Existing::Live),
        Err(e) => match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => Ok(Existing::Stale),
            Some(libc::EAGAIN) | Some(libc::EINPROGRESS) => Ok(Existing::Live),
            Some(libc::ENOENT) => Ok(Existing::Nothing), // removed in the meantime
            _ => Err(io::Error::new(
                e.kind(),
                format!("a socket file is there and cannot be checked for a live server ({e})"),
            )),
        },
    }
}

/// Makes `path` free for `bind(2)`: removes a stale socket file, refuses anything else (see
/// the module docs). The error says what is at the path.
pub fn clear_stale(path: &Path) -> io::Result<()> {
    match probe(path)? {
        Existing::Nothing => Ok(()),
        Existing::Stale => match std::fs::remove_file(path) {
            Ok(()) => {
                log::info!("Removed stale socket file {}", path.display());
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("cannot remove the stale socket file ({e})"),
            )),
        },
        Existing::Live => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another server is accepting connections on this socket",
        )),
        Existing::NotASocket(kind) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("the path is a {kind}, not a socket (left as it is)"),
        )),
    }
}

/// Largest buffer handed to `getpwnam_r(3)`/`getgrnam_r(3)` (a group with many members needs
/// a large one); the lookup starts at [`LOOKUP_BUFFER_START`] and doubles on `ERANGE`.
const LOOKUP_BUFFER_MAX: usize = 1 << 20;
const LOOKUP_BUFFER_START: usize = 1024;

/// How the socket files of `unix:PATH` binds are made (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOptions<'a> {
    /// Permission bits (`--unix-socket-mode`).
    pub mode: u32,
    /// The workers' user (`--user`), a name or a number.
    pub user: Option<&'a str>,
    /// The workers' group (`--group`), a name or a number.
    pub group: Option<&'a str>,
}

impl<'a> SocketOptions<'a> {
    /// The options a server's configuration asks for.
    pub fn from_config(config: &'a crate::config::ServerConfig) -> SocketOptions<'a> {
        SocketOptions {
            mode: config.unix_socket_mode,
            user: config.user.as_deref(),
            group: config.group.as_deref(),
        }
    }

    /// Only permission bits, no change of owner.
    pub fn mode(mode: u32) -> SocketOptions<'static> {
        SocketOptions {
            mode,
            user: None,
            group: None,
        }
    }
}

/// Whom a socket file is given to: a user id, a group id, or both (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.uid, self.gid) {
            (Some(u), Some(g)) => write!(f, "uid {u}, gid {g}"),
            (Some(u), None) => write!(f, "uid {u}"),
            (None, Some(g)) => write!(f, "gid {g}"),
            (None, None) => f.write_str("nobody in particular"),
        }
    }
}

impl Owner {
    /// Resolves `--user`/`--group` (see the module docs); `None` when neither is given.
    pub fn resolve(user: Option<&str>, group: Option<&str>) -> io::Result<Option<Owner>> {
        if user.is_none() && group.is_none() {
            return Ok(None);
        }
        let (mut uid, mut gid) = (None, None);
        if let Some(user) = user {
            // A user number without a passwd entry is still a uid, with no group of its own.
            let (u, g) = match user.parse::<u32>() {
                Ok(n) if is_number(user) => passwd_by_uid(n)?.unwrap_or((n, None)),
                _ => passwd_by_name(user)?.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("--user {user}: no such user"),
                    )
                })?,
            };
            uid = Some(u);
            gid = g;
        }
        if let Some(group) = group {
            gid = Some(match group.parse::<u32>() {
                Ok(n) if is_number(group) => n,
                _ => group_by_name(group)?.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("--group {group}: no such group"),
                    )
                })?,
            });
        }
        Ok(Some(Owner { uid, gid }))
    }
}

/// All ASCII digits, as Python's `str.isdigit` for the names people use (no sign, no space).
fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

/// Runs one reentrant lookup (`get{pw,gr}{nam,uid}_r`) with a buffer that grows on `ERANGE`;
/// `read` takes what is needed from the entry while the buffer lives. `None`: no such entry.
fn lookup<T, R>(
    mut call: impl FnMut(*mut T, *mut libc::c_char, usize, *mut *mut T) -> libc::c_int,
    read: impl Fn(&T) -> R,
) -> io::Result<Option<R>> {
    let mut buf: Vec<libc::c_char> = vec![0; LOOKUP_BUFFER_START];
    loop {
        let mut entry = std::mem::MaybeUninit::<T>::uninit();
        let mut result: *mut T = std::ptr::null_mut();
        let rc = call(entry.as_mut_ptr(), buf.as_mut_ptr(), buf.len(), &mut result);
        match rc {
            0 if result.is_null() => return Ok(None),
            // SAFETY: on success `result` points to `entry`, filled in by the call.
            0 => return Ok(Some(read(unsafe { &*result }))),
            libc::ERANGE if buf.len() < LOOKUP_BUFFER_MAX => buf.resize(buf.len() * 2, 0),
            // getpwnam_r(3): "0 or ENOENT or ESRCH or EBADF or EPERM or ...: The given name
            // or uid was not found."
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// The uid and primary gid of user `name`.
fn passwd_by_name(name: &str) -> io::Result<Option<(u32, Option<u32>)>> {
    let name = c_name(name)?;
    lookup(
        // SAFETY: a NUL-terminated name, and a buffer of the length given, both live for the call.
        |pw, buf, len, result| unsafe { libc::getpwnam_r(name.as_ptr(), pw, buf, len, result) },
        |pw: &libc::passwd| (pw.pw_uid, Some(pw.pw_gid)),
    )
}

/// The uid and primary gid of user number `uid`, when it has a passwd entry.
fn passwd_by_uid(uid: u32) -> io::Result<Option<(u32, Option<u32>)>> {
    lookup(
        // SAFETY: a buffer of the length given, live for the call.
        |pw, buf, len, result| unsafe { libc::getpwuid_r(uid, pw, buf, len, result) },
        |pw: &libc::passwd| (pw.pw_uid, Some(pw.pw_gid)),
    )
}

/// The gid of group `name`.
fn group_by_name(name: &str) -> io::Result<Option<u32>> {
    let name = c_name(name)?;
    lookup(
        // SAFETY: a NUL-terminated name, and a buffer of the length given, both live for the call.
        |gr, buf, len, result| unsafe { libc::getgrnam_r(name.as_ptr(), gr, buf, len, result) },
        |gr: &libc::group| gr.gr_gid,
    )
}

/// Binds and listens on a Unix stream socket at `path` with permission bits `mode` (see the
/// module docs); the listener is non-blocking and close-on-exec.
pub fn bind(path: &Path, backlog: u32, mode: u32) -> io::Result<(UnixListener, SocketFile)> {
    bind_with(path, backlog, &SocketOptions::mode(mode))
}

/// [`bind`] with the socket file's owner too (see the module docs).
pub fn bind_with(
    path: &Path,
    backlog: u32,
    options: &SocketOptions<'_>,
) -> io::Result<(UnixListener, SocketFile)> {
    let mode = options.mode;
    // Resolved first: a bad name leaves no file behind.
    let owner = Owner::resolve(options.user, options.group)?;
    let addr = SockAddr::unix(path)?;
    clear_stale(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    // SAFETY: fchmod on a descriptor we own; it changes the socket inode's mode only.
    if unsafe { libc::fchmod(socket.as_raw_fd(), mode) } != 0 {
        return Err(io::Error::last_os_error());
    }
    socket.bind(&addr)?;
    // From here on the guard removes the file if a later step fails.
    let file = SocketFile::created(path)?;
    std::fs::set_permissions(path, Permissions::from_mode(mode))?;
    if let Some(owner) = owner {
        std::os::unix::fs::lchown(path, owner.uid, owner.gid).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot give the socket file to {owner} ({e})"),
            )
        })?;
    }
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    Ok((socket.into(), file))
}

/// The socket file a `unix:PATH` bind created, removed when this is dropped in the process that
/// created it, unless [`SocketFile::keep`] was called (see the module docs).
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// Device, inode and modification time of the file created, so only that file is ever
    /// removed (the time guards against a freed inode number given to a new file).
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    /// The creating process: a forked child holding a copy never removes the file.
    owner: u32,
    keep: bool,
}

impl SocketFile {
    fn created(path: &Path) -> io::Result<SocketFile> {
        let meta = std::fs::symlink_metadata(path)?;
        Ok(SocketFile {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            owner: std::process::id(),
            keep: false,
        })
    }

    /// The file stays when this is dropped (a new master took the socket over).
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Removes the file if it is still the one created. `Ok(false)`: it was gone or replaced.
    fn remove(&self) -> io::Result<bool> {
        let meta = match std::fs::symlink_metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let same = meta.file_type().is_socket()
            && (meta.dev(), meta.ino(), (meta.mtime(), meta.mtime_nsec()))
                == (self.dev, self.ino, self.mtime);
        if !same {
            return Ok(false);
        }
        std::fs::remove_file(&self.path)?;
        Ok(true)
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if self.keep || std::process::id() != self.owner {
            return;
        }
        match self.remove() {
            Ok(true) => log::debug!("Removed socket file {}", self.path.display()),
            Ok(false) => log::debug!(
                "Socket file {} was removed or replaced by someone else: left alone",
                self.path.display()
            ),
            Err(e) => log::warn!("cannot remove the socket file {}: {e}", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ferrule-unix-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn specs() {
        assert_eq!(
            unix_spec("unix:/run/a.sock"),
            Some(Path::new("/run/a.sock"))
        );
        assert_eq!(unix_spec("127.0.0.1:80"), None);
        assert_eq!(unix_spec("fd://3"), None);
    }

    #[test]
    fn binds_with_the_mode_and_removes_the_file_on_drop() {
        let dir = temp_dir("mode");
        let path = dir.join("s.sock");
        let (listener, file) = bind(&path, 8, 0o640).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        drop(file);
        assert!(!path.exists());
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stale_socket_is_replaced() {
        let dir = temp_dir("stale");
        let path = dir.join("s.sock");
        // A socket file whose listener is closed: connect is refused.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        assert_eq!(probe(&path).unwrap(), Existing::Stale);
        let (_listener, _file) = bind(&path, 8, 0o600).unwrap();
        assert_eq!(probe(&path).unwrap(), Existing::Live);
        drop(_file);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_live_socket_is_refused_and_kept() {
        let dir = temp_dir("live");
        let path = dir.join("s.sock");
        let other = UnixListener::bind(&path).unwrap();
        let e = bind(&path, 8, 0o600).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        assert!(e.to_string().contains("another server"), "{e}");
        // Still served by its owner.
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        drop(other);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_live_socket_with_a_full_backlog_is_refused() {
        let dir = temp_dir("full");
        let path = dir.join("s.sock");
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        socket.bind(&SockAddr::unix(&path).unwrap()).unwrap();
        socket.listen(0).unwrap();
        // Fill the backlog with connections nobody accepts.
        let mut held = Vec::new();
        for _ in 0..4 {
            let c = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
            c.set_nonblocking(true).unwrap();
            let _ = c.connect(&SockAddr::unix(&path).unwrap());
            held.push(c);
        }
        assert_eq!(probe(&path).unwrap(), Existing::Live);
        drop(socket);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn other_files_are_refused_and_left_intact() {
        let dir = temp_dir("file");
        let path = dir.join("s.sock");
        std::fs::write(&path, b"precious").unwrap();
        let e = bind(&path, 8, 0o600).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("regular file"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");

        let sub = dir.join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(bind(&sub, 8, 0o600)
            .unwrap_err()
            .to_string()
            .contains("directory"));
        assert!(sub.is_dir());

        // A symlink to a stale socket is not followed: refused, both left.
        let target = dir.join("target.sock");
        drop(UnixListener::bind(&target).unwrap());
        let link = dir.join("link.sock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = bind(&link, 8, 0o600).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(target.exists() && std::fs::symlink_metadata(&link).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_replaced_file_and_a_kept_one_are_not_removed() {
        let dir = temp_dir("replaced");
        let path = dir.join("s.sock");
        let (listener, file) = bind(&path, 8, 0o600).unwrap();
        drop(listener);
        // Someone else's socket now lives at the path: ours is gone (a hard link keeps its
        // inode in use, so the new file cannot get the same inode number).
        std::fs::hard_link(&path, dir.join("ours")).unwrap();
        std::fs::remove_file(&path).unwrap();
        let theirs = UnixListener::bind(&path).unwrap();
        drop(file);
        assert!(path.exists());
        drop(theirs);
        std::fs::remove_file(&path).unwrap();

        let (_listener, mut file) = bind(&path, 8, 0o600).unwrap();
        file.keep();
        drop(file);
        assert!(path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn owners_are_resolved_as_the_workers_switch() {
        let owner = |uid, gid| -> io::Result<Option<Owner>> { Ok(Some(Owner { uid, gid })) };
        assert_eq!(Owner::resolve(None, None).unwrap(), None);
        // A user brings its primary group; --group overrides it.
        assert_eq!(
            Owner::resolve(Some("root"), None).unwrap(),
            owner(Some(0), Some(0)).unwrap()
        );
        assert_eq!(
            Owner::resolve(Some("0"), None).unwrap(),
            owner(Some(0), Some(0)).unwrap()
        );
        assert_eq!(
            Owner::resolve(Some("root"), Some("123")).unwrap(),
            owner(Some(0), Some(123)).unwrap()
        );
        assert_eq!(
            Owner::resolve(None, Some("root")).unwrap(),
            owner(None, Some(0)).unwrap()
        );
        // A user number without a passwd entry: a uid without a group.
        assert_eq!(
            Owner::resolve(Some("3999999999"), None).unwrap(),
            owner(Some(3_999_999_999), None).unwrap()
        );
        let e = Owner::resolve(Some("no-such-user-here"), None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(e.to_string(), "--user no-such-user-here: no such user");
        let e = Owner::resolve(Some("root"), Some("no-such-group-here")).unwrap_err();
        assert_eq!(e.to_string(), "--group no-such-group-here: no such group");
        // Not a number: looked up as a name.
        assert!(Owner::resolve(Some("+0"), None).is_err());
        assert_eq!(
            Owner {
                uid: Some(1),
                gid: None
            }
            .to_string(),
            "uid 1"
        );
    }

    #[test]
    fn the_socket_file_is_given_to_the_workers_user_and_group() {
        let dir = temp_dir("owner");
        let path = dir.join("s.sock");
        // SAFETY: getegid/geteuid only read the process's ids.
        let (egid, euid) = unsafe { (libc::getegid(), libc::geteuid()) };
        // Our own group: allowed without privileges.
        let gid = egid.to_string();
        let options = SocketOptions {
            mode: 0o660,
            user: None,
            group: Some(&gid),
        };
        let (listener, file) = bind_with(&path, 8, &options).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (euid, egid));
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        drop((listener, file));
        assert!(!path.exists());
        let other = SocketOptions {
            mode: 0o660,
            user: Some("65534"),
            group: Some("65533"),
        };
        if euid == 0 {
            let (_listener, _file) = bind_with(&path, 8, &other).unwrap();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (65534, 65533));
            assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        } else {
            // Someone else's user needs root: the bind fails and leaves no file.
            let e = bind_with(&path, 8, &other).unwrap_err();
            assert!(
                e.to_string()
                    .contains("cannot give the socket file to uid 65534"),
                "{e}"
            );
            assert!(!path.exists());
        }
        // An unknown name fails before anything is created.
        let bad = SocketOptions {
            mode: 0o660,
            user: Some("no-such-user-here"),
            group: None,
        };
        assert!(bind_with(&dir.join("t.sock"), 8, &bad).is_err());
        assert!(!dir.join("t.sock").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_path_too_long_is_an_error() {
        let long = format!("/tmp/{}.sock", "x".repeat(200));
        assert!(bind(Path::new(&long), 8, 0o600).is_err());
    }
}
