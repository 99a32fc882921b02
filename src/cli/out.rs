//! Standard output for commands, fit for pipes: `corelog consume … | head -1`
//! ends quietly with status 0 once the reader has gone.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with EPIPE, and
//! `println!` panics on it ("failed printing to stdout: Broken pipe").
//! Commands print through [`outln!`], or through [`Stdout`]
//! where they print many lines; a failed write ends the process at once
//! ([`fail`]): with status 0 and no message when the reader has gone (what
//! the shell's own commands do under SIGPIPE), otherwise with
//! `error: writing to stdout: …` and status 1. Nothing most commands do
//! after printing needs to happen once nobody reads them. Those with more
//! to do check for themselves: a consumer group's member leaves its group
//! ([`Stdout::error`]); `corelog demo` removes its temporary directory
//! ([`try_outln!`], whose error `cli::main` turns into a quiet status 0).

use std::io::{self, BufWriter, ErrorKind, IsTerminal, StdoutLock, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Ends the process after `e`, a failed write to stdout: status 0 and no
/// message if the reader has gone (EPIPE), else a message and status 1.
pub fn fail(e: io::Error) -> ! {
    if e.kind() == ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    // Not eprintln!: it panics if stderr is gone too.
    let _ = writeln!(io::stderr(), "error: writing to stdout: {e}");
    std::process::exit(1);
}

/// Writes formatted text to stdout, ending the process on failure
/// ([`fail`]). Used through [`outln!`].
pub fn print(args: std::fmt::Arguments<'_>) {
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args) {
        fail(e);
    }
}

/// `println!` that ends the process quietly when stdout's reader has gone.
macro_rules! outln {
    () => {
        $crate::cli::out::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::out::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Set once a [`try_print`] found stdout's reader gone.
static GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes formatted text to stdout, returning a failure as the command's
/// error instead of ending the process: for commands that must clean up
/// (remove a temporary directory) before they end. After EPIPE [`gone`]
/// is true, and `cli::main` ends with status 0 and no message.
pub fn try_print(args: std::fmt::Arguments<'_>) -> Result<(), String> {
    let mut stdout = io::stdout().lock();
    stdout.write_fmt(args).map_err(|e| {
        if e.kind() == ErrorKind::BrokenPipe {
            GONE.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        format!("writing to stdout: {e}")
    })
}

/// Whether a [`try_print`] found stdout's reader gone.
pub fn gone() -> bool {
    GONE.load(std::sync::atomic::Ordering::Relaxed)
}

/// [`outln!`] for commands that must clean up: a `Result` for `?` (see
/// [`try_print`]).
macro_rules! try_outln {
    ($($arg:tt)*) => {
        $crate::cli::out::try_print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {outln, try_outln};

/// Locked, buffered stdout for commands that print many lines. Writes fail
/// as usual (so `?` and [`fail`] work); the first failure is kept for
/// [`Stdout::error`]. Flush after each batch of lines so a reader sees them
/// promptly.
pub struct Stdout {
    inner: BufWriter<StdoutLock<'static>>,
    error: Option<(ErrorKind, String)>,
}

impl Stdout {
    pub fn new() -> Stdout {
        Stdout {
            inner: BufWriter::with_capacity(64 << 10, io::stdout().lock()),
            error: None,
        }
    }

    /// The first write or flush that failed, if any.
    pub fn error(&self) -> Option<io::Error> {
        self.error
            .as_ref()
            .map(|(kind, text)| io::Error::new(*kind, text.clone()))
    }

    /// Flushes, ending the process if that fails ([`fail`]).
    pub fn flush_or_exit(&mut self) {
        if let Err(e) = self.flush() {
            fail(e);
        }
    }

    fn keep<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result
            && self.error.is_none()
        {
            self.error = Some((e.kind(), e.to_string()));
        }
        result
    }
}

impl Default for Stdout {
    fn default() -> Self {
        Stdout::new()
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.inner.write(buf);
        self.keep(result)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let result = self.inner.write_all(buf);
        self.keep(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.inner.flush();
        self.keep(result)
    }
}

/// Whether stdout is a pipe whose reader has gone. A consumer that waits
/// for records writes nothing while none come, so it would only learn of
/// a closed pipe at its next record; this asks the kernel instead (a pipe's
/// write end polls POLLERR once no reader is left), as `tail -f` does.
/// False for anything but a pipe or socket.
pub fn reader_gone() -> bool {
    let fd = io::stdout().as_raw_fd();
    // SAFETY: fstat on our own stdout descriptor, into a zeroed struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return false;
    }
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFIFO && kind != libc::S_IFSOCK {
        return false;
    }
    let mut pfd = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: one pollfd we own; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// A transient progress line on stderr (`\r`, rewritten in place), shown
/// only when stderr is a terminal: in a log file or a pipe it would be
/// noise. At most one update a second.
pub struct Progress {
    enabled: bool,
    next: Instant,
    shown: bool,
}

impl Progress {
    pub const EVERY: Duration = Duration::from_secs(1);

    /// A progress line if `enabled` and stderr is a terminal.
    pub fn on_terminal(enabled: bool) -> Progress {
        Progress {
            enabled: enabled && io::stderr().is_terminal(),
            next: Instant::now() + Self::EVERY,
            shown: false,
        }
    }

    /// Whether an update is due (cheap enough to ask per record).
    pub fn due(&self) -> bool {
        self.enabled && Instant::now() >= self.next
    }

    /// Replaces the line with `text`.
    pub fn show(&mut self, text: &str) {
        if !self.enabled {
            return;
        }
        self.next = Instant::now() + Self::EVERY;
        self.shown = true;
        // \x1b[K clears what a longer earlier text left (a terminal only).
        let _ = write!(io::stderr(), "\r{text}\x1b[K");
    }

    /// Removes the line, so what is printed next starts on a clean one.
    pub fn clear(&mut self) {
        if self.shown {
            self.shown = false;
            let _ = write!(io::stderr(), "\r\x1b[K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}
