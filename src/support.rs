//! Small process-level helpers shared by the command line and the load
//! generator (which must not depend on each other): running a future on a
//! fresh executor, making a temporary directory; and [`Signal`], which the
//! shards and the cluster controller both wait on.

use std::future::Future;
use std::path::PathBuf;

/// An executor builder with corelog's preemption bound
/// ([`crate::constants::EXECUTOR_PREEMPT_MICROS`]): every executor the broker,
/// the CLI and the load generator start comes from here.
pub fn executor(placement: glommio::Placement) -> glommio::LocalExecutorBuilder {
    glommio::LocalExecutorBuilder::new(placement).preempt_timer(std::time::Duration::from_micros(
        crate::constants::EXECUTOR_PREEMPT_MICROS,
    ))
}

/// Runs a client future on a fresh executor and maps errors to text.
pub fn run_client<F, Fut>(f: F) -> Result<(), String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + 'static,
{
    executor(glommio::Placement::Unbound)
        .name("corelog-client")
        .spawn(f)
        .map_err(|e| format!("starting the client executor: {e}"))?
        .join()
        .map_err(|e| format!("client executor failed: {e}"))?
}

/// A new directory under the system temporary directory.
pub fn tempfile_dir() -> Result<PathBuf, String> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let dir = base.join(format!(
            "corelog-{}-{nanos:x}-{attempt}",
            std::process::id()
        ));
        if std::fs::create_dir(&dir).is_ok() {
            return Ok(dir);
        }
    }
    Err(format!(
        "could not create a temporary directory under {}",
        base.display()
    ))
}

/// CPU time (user + system) the calling thread has used, in microseconds.
pub fn thread_cpu_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// CPU time the whole process (every thread) has used, in microseconds:
/// (user, system).
pub fn process_cpu_us() -> (u64, u64) {
    // SAFETY: an all-zero rusage is a valid value, and getrusage writes one.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage to write to.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return (0, 0);
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(usage.ru_utime), us(usage.ru_stime))
}

/// Lets every other task that is ready run before the caller goes on: the
/// task wakes itself and returns `Pending` once, so the executor queues it
/// behind them. For long loops on a shard (building a metrics report over
/// thousands of partitions) that must not hold up requests.
pub async fn yield_to_ready_tasks() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// Logs through `log` at most once a second per `key` on this thread (a
/// shard), passing how many calls were not logged since: a flood of bad
/// handshakes or failed logins must not flood the log.
pub fn log_limited(key: &'static str, log: impl FnOnce(u64)) {
    use std::cell::RefCell;
    use std::time::Instant;
    thread_local! {
        static LAST: RefCell<Vec<(&'static str, Instant, u64)>> = const { RefCell::new(Vec::new()) };
    }
    let now = Instant::now();
    let due = LAST.with_borrow_mut(|last| match last.iter_mut().find(|(k, _, _)| *k == key) {
        Some((_, at, suppressed)) if now.duration_since(*at).as_secs() < 1 => {
            *suppressed += 1;
            None
        }
        Some((_, at, suppressed)) => {
            *at = now;
            Some(std::mem::take(suppressed))
        }
        None => {
            last.push((key, now, 0));
            Some(0)
        }
    });
    if let Some(suppressed) = due {
        log(suppressed);
    }
}

/// A one-way flag other threads can raise and shard tasks can await.
#[derive(Default)]
pub struct Signal {
    raised: std::sync::atomic::AtomicBool,
    event: event_listener::Event,
}

impl Signal {
    pub fn raise(&self) {
        self.raised.store(true, std::sync::atomic::Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    pub fn is_raised(&self) -> bool {
        self.raised.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Completes once raised (at once if it already is).
    pub async fn wait(&self) {
        loop {
            if self.is_raised() {
                return;
            }
            let listener = self.event.listen();
            if self.is_raised() {
                return;
            }
            listener.await;
        }
    }
}
