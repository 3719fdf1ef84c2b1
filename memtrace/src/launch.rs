//! Starting a command with the probes in place before its first instruction.
//!
//! The command is forked and held before `exec` until the probes are
//! attached to its pid; a uprobe attached for a process follows it through
//! `exec`, so its first allocation is traced. The libraries the command will
//! load are resolved beforehand by asking its own dynamic loader
//! (`ld.so --list`), which applies the same search rules it will use.
//!
//! The launcher thread also holds the command with `PTRACE_O_TRACEEXIT`, so
//! that when it exits, its memory map can still be read (to place late-loaded
//! libraries) before the kernel tears it down. Signals pass through untouched.

use std::{
    ffi::{CString, OsStr, OsString},
    fs,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    process::Command,
    sync::mpsc::{self, Receiver, Sender},
    thread,
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use object::read::elf::ProgramHeader as _;

use crate::{
    allocator::{self, Plan},
    procfs::MapEntry,
    report::ExitStatus,
};

/// The longest the command is held at exit while memtrace reads it.
const EXIT_HOLD_LIMIT: Duration = Duration::from_secs(10);

/// A command ready to be started.
#[derive(Debug)]
pub struct Prepared {
    pub program: PathBuf,
    pub argv: Vec<OsString>,
    pub plan: Plan,
}

/// Finds the program of `argv[0]` and plans the probes for the libraries it will load.
pub fn prepare(argv: &[OsString]) -> anyhow::Result<Prepared> {
    let Some(name) = argv.first() else {
        bail!("no command given: write it after `--`, as in `memtrace run -- ./server`");
    };
    let program = find_program(name)?;
    let image = executed_image(&program)?;
    let libraries = loaded_libraries(&image)?;
    let main = image.to_string_lossy().into_owned();
    let maps: Vec<MapEntry> = std::iter::once(main.clone())
        .chain(libraries)
        .map(|path| MapEntry {
            start: 0,
            end: 0,
            executable: true,
            offset: 0,
            path,
        })
        .collect();
    let plan = allocator::plan(&maps, Some(&main), &|path| PathBuf::from(path))
        .with_context(|| format!("cannot trace `{}`", program.display()))?;
    Ok(Prepared {
        program,
        argv: argv.to_vec(),
        plan,
    })
}

/// Resolves a command name the way `execvp` does.
fn find_program(name: &OsStr) -> anyhow::Result<PathBuf> {
    let shown = name.to_string_lossy();
    let candidate = if name.as_bytes().contains(&b'/') {
        Some(PathBuf::from(name))
    } else {
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| is_executable_file(p))
    };
    match candidate {
        Some(path) if is_executable_file(&path) => Ok(path),
        Some(path) if path.exists() => bail!("`{}` is not an executable file", path.display()),
        _ => bail!("command `{shown}` not found: check the name, or give its path"),
    }
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The ELF file the kernel will run for `program`: the program itself, or
/// the interpreter named on a script's `#!` line.
fn executed_image(program: &Path) -> anyhow::Result<PathBuf> {
    let head =
        fs::read(program).with_context(|| format!("failed to read `{}`", program.display()))?;
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        let interpreter = line
            .split(u8::is_ascii_whitespace)
            .find(|w| !w.is_empty())
            .ok_or_else(|| anyhow!("`{}` has an empty `#!` line", program.display()))?;
        return Ok(PathBuf::from(OsStr::from_bytes(interpreter)));
    }
    Ok(program.to_owned())
}

/// The shared libraries `image` will load, as its dynamic loader resolves them.
fn loaded_libraries(image: &Path) -> anyhow::Result<Vec<String>> {
    let data = fs::read(image).with_context(|| format!("failed to read `{}`", image.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("`{}` is not an ELF executable", image.display()))?;
    let interpreter = interpreter_of(&file)?.ok_or_else(|| {
        anyhow!(
            "`{}` is statically linked: not supported, because uprobes need the allocator \
             in a shared C library",
            image.display()
        )
    })?;

    let output = Command::new(&interpreter)
        .arg("--list")
        .arg(image)
        .output()
        .with_context(|| format!("failed to run the dynamic loader `{interpreter}`"))?;
    if !output.status.success() {
        bail!(
            "the dynamic loader cannot resolve the libraries of `{}`: {}",
            image.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let mut libraries = vec![interpreter];
    libraries.extend(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                // `\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`
                let (_, rest) = line.split_once("=> ")?;
                let path = rest.rsplit_once(" (").map_or(rest, |(p, _)| p).trim();
                path.starts_with('/').then(|| path.to_owned())
            }),
    );
    Ok(libraries)
}

fn interpreter_of(file: &object::File<'_>) -> anyhow::Result<Option<String>> {
    let object::File::Elf64(elf) = file else {
        bail!("only 64-bit ELF programs are supported");
    };
    let endian = elf.endian();
    for header in elf.elf_program_headers() {
        if header.p_type(endian) == object::elf::PT_INTERP {
            let bytes = header
                .data(endian, elf.data())
                .map_err(|()| anyhow!("unreadable `PT_INTERP` header"))?;
            let path = bytes.split(|&b| b == 0).next().unwrap_or_default();
            return Ok(Some(String::from_utf8_lossy(path).into_owned()));
        }
    }
    Ok(None)
}

/// News from the launcher thread.
#[derive(Debug)]
pub enum Launched {
    /// The command is about to exit and is held until acknowledged.
    Exiting,
    /// The command has ended.
    Exited(ExitStatus),
}

/// A command started under the launcher.
#[derive(Debug)]
pub struct Launch {
    pub pid: u32,
    news: Receiver<Launched>,
    ack: Sender<()>,
    thread: Option<thread::JoinHandle<()>>,
}

enum Go {
    Run,
    Abort,
}

/// Forks the command, holds it before `exec`, and calls `attach` with its
/// pid; starts it only when `attach` succeeds, and kills it otherwise.
pub fn start(
    prepared: &Prepared,
    attach: impl FnOnce(u32) -> anyhow::Result<()>,
) -> anyhow::Result<Launch> {
    let program = CString::new(prepared.program.as_os_str().as_bytes())
        .context("the command's path contains a NUL byte")?;
    let argv = prepared
        .argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .context("an argument contains a NUL byte")?;

    let (pid_tx, pid_rx) = mpsc::channel::<anyhow::Result<u32>>();
    let (go_tx, go_rx) = mpsc::channel::<Go>();
    let (started_tx, started_rx) = mpsc::channel::<anyhow::Result<()>>();
    let (news_tx, news_rx) = mpsc::channel::<Launched>();
    let (ack_tx, ack_rx) = mpsc::channel::<()>();

    // Every ptrace request must come from the thread that seized the child,
    // so one thread forks, waits and resumes.
    let shown = prepared.program.display().to_string();
    let thread = thread::Builder::new()
        .name("launcher".into())
        .spawn(move || {
            let child = match fork_held(&program, &argv) {
                Ok(child) => child,
                Err(err) => {
                    let _ = pid_tx.send(Err(err));
                    return;
                }
            };
            let traced = seize(child.pid);
            let _ = pid_tx.send(Ok(child.pid));

            match go_rx.recv() {
                Ok(Go::Run) => {}
                Ok(Go::Abort) | Err(_) => {
                    child.kill();
                    return;
                }
            }
            match child.release() {
                Ok(()) => {
                    let _ = started_tx.send(Ok(()));
                }
                Err(errno) => {
                    let error = std::io::Error::from_raw_os_error(errno);
                    let _ = started_tx.send(Err(
                        anyhow!(error).context(format!("failed to execute `{shown}`"))
                    ));
                    child.reap();
                    return;
                }
            }
            let status = child.wait(traced, &news_tx, &ack_rx);
            let _ = news_tx.send(Launched::Exited(status));
        })
        .context("failed to start the launcher thread")?;

    let pid = pid_rx.recv().context("the launcher thread died")??;
    if let Err(err) = attach(pid) {
        let _ = go_tx.send(Go::Abort);
        let _ = thread.join();
        return Err(err);
    }
    go_tx.send(Go::Run).context("the launcher thread died")?;
    started_rx.recv().context("the launcher thread died")??;
    Ok(Launch {
        pid,
        news: news_rx,
        ack: ack_tx,
        thread: Some(thread),
    })
}

impl Launch {
    /// The launcher's latest news, without waiting.
    pub fn poll(&self) -> Option<Launched> {
        self.news.try_recv().ok()
    }

    /// Lets a command held at exit go on exiting.
    pub fn release_exit(&self) {
        let _ = self.ack.send(());
    }

    /// Sends `signal` to the command.
    pub fn signal(&self, signal: i32) {
        // SAFETY: `kill` has no memory-safety preconditions.
        unsafe { libc::kill(self.pid as libc::pid_t, signal) };
    }

    /// Waits for the command to end (after the session's loop saw it exit).
    pub fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A forked child blocked before `exec`.
struct HeldChild {
    pid: u32,
    go: libc::c_int,
    exec_error: libc::c_int,
}

fn pipe() -> anyhow::Result<[libc::c_int; 2]> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("failed to create a pipe");
    }
    Ok(fds)
}

fn fork_held(program: &CString, argv: &[CString]) -> anyhow::Result<HeldChild> {
    let [go_read, go_write] = pipe()?;
    let [error_read, error_write] = pipe()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());

    // SAFETY: the child calls only async-signal-safe functions (read, execv,
    // write, _exit) on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("failed to fork");
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            libc::close(go_write);
            libc::close(error_read);
            let mut byte = 0u8;
            if libc::read(go_read, (&raw mut byte).cast(), 1) != 1 {
                libc::_exit(127);
            }
            libc::execv(program.as_ptr(), argv_ptrs.as_ptr());
            let errno = *libc::__errno_location();
            libc::write(
                error_write,
                (&raw const errno).cast(),
                size_of::<libc::c_int>(),
            );
            libc::_exit(127);
        }
    }
    // SAFETY: closing the child's ends in the parent.
    unsafe {
        libc::close(go_read);
        libc::close(error_write);
    }
    Ok(HeldChild {
        pid: pid as u32,
        go: go_write,
        exec_error: error_read,
    })
}

/// Holds the child at its exit from now on; false when ptrace is not allowed.
fn seize(pid: u32) -> bool {
    // SAFETY: plain ptrace request on our own child.
    let done = unsafe {
        libc::ptrace(
            libc::PTRACE_SEIZE,
            pid as libc::pid_t,
            std::ptr::null_mut::<libc::c_void>(),
            libc::PTRACE_O_TRACEEXIT as usize as *mut libc::c_void,
        )
    } == 0;
    if !done {
        log::warn!(
            "cannot hold the command at its exit ({}): libraries it loads late may show as `[unknown]`",
            std::io::Error::last_os_error()
        );
    }
    done
}

impl HeldChild {
    /// Lets the child `exec`; returns its errno if `exec` failed.
    fn release(&self) -> Result<(), i32> {
        let byte = 1u8;
        // SAFETY: writing one byte from a local to our pipe.
        unsafe {
            libc::write(self.go, (&raw const byte).cast(), 1);
            libc::close(self.go);
        }
        let mut errno: libc::c_int = 0;
        // SAFETY: reading at most one int into a local; EOF means `exec` succeeded.
        let n = unsafe {
            libc::read(
                self.exec_error,
                (&raw mut errno).cast(),
                size_of::<libc::c_int>(),
            )
        };
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(self.exec_error) };
        if n == size_of::<libc::c_int>() as isize {
            Err(errno)
        } else {
            Ok(())
        }
    }

    fn kill(&self) {
        // SAFETY: signalling and closing our own child and descriptors.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
            libc::close(self.go);
            libc::close(self.exec_error);
        }
        self.reap();
    }

    fn reap(&self) {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(self.pid as libc::pid_t, &raw mut status, libc::__WALL) };
    }

    /// Waits for the child to end, passing signals through and holding it at
    /// its exit until `ack` says memtrace has read it.
    fn wait(&self, traced: bool, news: &Sender<Launched>, ack: &Receiver<()>) -> ExitStatus {
        let pid = self.pid as libc::pid_t;
        loop {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(pid, &raw mut status, libc::__WALL) };
            if r < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return ExitStatus {
                    code: None,
                    signal: None,
                };
            }
            if libc::WIFEXITED(status) {
                return ExitStatus {
                    code: Some(libc::WEXITSTATUS(status)),
                    signal: None,
                };
            }
            if libc::WIFSIGNALED(status) {
                return ExitStatus {
                    code: None,
                    signal: Some(libc::WTERMSIG(status)),
                };
            }
            if !traced || !libc::WIFSTOPPED(status) {
                continue;
            }
            let event = status >> 16;
            let signal = libc::WSTOPSIG(status);
            let (request, inject) = if event == libc::PTRACE_EVENT_EXIT {
                if news.send(Launched::Exiting).is_ok() {
                    let _ = ack.recv_timeout(EXIT_HOLD_LIMIT);
                }
                (libc::PTRACE_CONT, 0)
            } else if event == libc::PTRACE_EVENT_STOP {
                // A group stop (SIGSTOP, SIGTSTP, ...): stay stopped, as without memtrace.
                let group_stop = matches!(
                    signal,
                    libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
                );
                if group_stop {
                    (libc::PTRACE_LISTEN, 0)
                } else {
                    (libc::PTRACE_CONT, 0)
                }
            } else {
                // A signal on its way to the command: deliver it.
                (libc::PTRACE_CONT, signal)
            };
            // SAFETY: resuming our own tracee.
            unsafe {
                libc::ptrace(
                    request,
                    pid,
                    std::ptr::null_mut::<libc::c_void>(),
                    inject as usize as *mut libc::c_void,
                );
            }
        }
    }
}

impl ExitStatus {
    /// The shell's convention: the exit code, or 128 plus the signal.
    pub fn shell_code(&self) -> i32 {
        match (self.code, self.signal) {
            (_, Some(signal)) => 128 + signal,
            (Some(code), None) => code,
            (None, None) => 1,
        }
    }
}
