//! Test harness: real `corelog serve` processes on 127.0.0.1 with ephemeral
//! ports, stopped by the test (or killed when the handle drops).
#![allow(dead_code)]

pub mod clients;
pub mod cluster;
pub mod pki;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub shard_ports: Vec<u16>,
    /// The Kafka listener, when the broker was started with one.
    pub kafka: Option<SocketAddr>,
    /// Each shard's own Kafka port, in the shard-aware Kafka mode
    /// (`--kafka-shard-brokers`); empty otherwise.
    pub kafka_shard_ports: Vec<u16>,
    /// Every Kafka listener, `(PROTOCOL, address)`, in configuration order.
    pub kafka_listeners: Vec<(String, SocketAddr)>,
    /// The HTTP listener (metrics, admin API, console), unless started
    /// with `--http-listen none`.
    #[allow(dead_code)]
    pub http: Option<SocketAddr>,
    /// The controller listener (cluster brokers, `--controller-listen`).
    pub controller: Option<SocketAddr>,
    pub data_dir: PathBuf,
    stderr_path: PathBuf,
}

/// The path of a client script in tests/kafka.
pub fn script(name: &str) -> String {
    format!("{}/tests/kafka/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn corelog_bin() -> &'static str {
    env!("CARGO_BIN_EXE_corelog")
}

impl Broker {
    /// The address of the Kafka listener speaking `protocol`.
    pub fn kafka_listener(&self, protocol: &str) -> SocketAddr {
        self.kafka_listeners
            .iter()
            .find(|(p, _)| p == protocol)
            .unwrap_or_else(|| panic!("no {protocol} listener in {:?}", self.kafka_listeners))
            .1
    }

    /// Starts a broker with `cores` shards on `data_dir`, plus `extra` flags,
    /// and waits (at most 30 s) for its "listening" line. Without a
    /// `--kafka-listen` in `extra` the broker has no Kafka listener (never
    /// the fixed 9092).
    pub fn start(data_dir: &Path, cores: usize, extra: &[&str]) -> Broker {
        Broker::start_limited(data_dir, cores, extra, &[], None)
    }

    /// [`Broker::start`] with extra environment variables (test hooks).
    pub fn start_with_env(
        data_dir: &Path,
        cores: usize,
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> Broker {
        Broker::start_limited(data_dir, cores, extra, env, None)
    }

    /// [`Broker::start`] with the process's open-file limit (soft and hard)
    /// set to `fd_limit` before it runs, as `prlimit` or a unit file's
    /// `LimitNOFILE` would.
    pub fn start_with_fd_limit(
        data_dir: &Path,
        cores: usize,
        extra: &[&str],
        fd_limit: u64,
    ) -> Broker {
        Broker::start_limited(data_dir, cores, extra, &[], Some(fd_limit))
    }

    fn start_limited(
        data_dir: &Path,
        cores: usize,
        extra: &[&str],
        env: &[(&str, &Path)],
        fd_limit: Option<u64>,
    ) -> Broker {
        let stderr_path = data_dir.with_extension(format!("stderr-{}", std::process::id()));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .unwrap();
        let mut command = Command::new(corelog_bin());
        if let Some(limit) = fd_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; the closure touches
            // nothing else between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let rl = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--cores",
                &cores.to_string(),
                "--data-dir",
            ])
            .arg(data_dir)
            .args(if extra.contains(&"--kafka-listen") {
                &[][..]
            } else {
                &["--kafka-listen", "none"][..]
            })
            // Never the default port: tests run side by side.
            .args(if extra.contains(&"--http-listen") {
                &[][..]
            } else {
                &["--http-listen", "127.0.0.1:0"][..]
            })
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("CORELOG_TEST_LOG").unwrap_or_else(|_| "corelog=info".into()),
            )
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start corelog serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            // The HTTP line (if any) comes first, then the listening line.
            let mut http = None;
            let mut line = String::new();
            for _ in 0..4 {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(addr) = line.trim().strip_prefix("corelog http listening on ") {
                    http = addr.parse::<SocketAddr>().ok();
                    continue;
                }
                break;
            }
            let _ = tx.send((line, http));
            // Keep draining so the broker never blocks on stdout.
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let (line, http) = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((line, http)) if line.starts_with("corelog listening on ") => (line, http),
            other => {
                let _ = child.kill();
                panic!(
                    "broker did not start: {other:?}\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let addr: SocketAddr = fields[3].parse().unwrap();
        let ports = fields
            .iter()
            .find_map(|f| f.strip_prefix("shard_ports="))
            .unwrap();
        let shard_ports = ports.split(',').map(|p| p.parse().unwrap()).collect();
        let kafka = fields
            .iter()
            .find_map(|f| f.strip_prefix("kafka="))
            .and_then(|a| a.parse().ok());
        let kafka_shard_ports = fields
            .iter()
            .find_map(|f| f.strip_prefix("kafka_shard_ports="))
            .map(|ports| ports.split(',').map(|p| p.parse().unwrap()).collect())
            .unwrap_or_default();
        let kafka_listeners = fields
            .iter()
            .find_map(|f| f.strip_prefix("kafka_listeners="))
            .map(|all| {
                all.split(',')
                    .map(|l| {
                        let (p, a) = l.split_once("://").unwrap();
                        (p.to_string(), a.parse().unwrap())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let controller = fields
            .iter()
            .find_map(|f| f.strip_prefix("controller="))
            .and_then(|a| a.parse().ok());
        Broker {
            child: Some(child),
            addr,
            shard_ports,
            kafka,
            kafka_shard_ports,
            kafka_listeners,
            http,
            controller,
            data_dir: data_dir.to_path_buf(),
            stderr_path,
        }
    }

    /// The broker process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Descriptors the broker process has open now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|entries| entries.count())
            .unwrap_or(0)
    }

    /// Peak resident memory of the broker process so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// Resident memory of the broker process now (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// What the broker logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn signal(&mut self, sig: i32) {
        let pid = self.child.as_ref().expect("running").id() as i32;
        // SAFETY: kill(2) with a pid we spawned.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
    }

    /// SIGTERM, then waits (at most `within`) for the exit; returns the
    /// exit code.
    pub fn terminate(&mut self, within: Duration) -> i32 {
        self.signal(libc::SIGTERM);
        self.wait(within)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait(Duration::from_secs(30));
        // The kernel may close a killed process's listening sockets a
        // little after the process is reaped (io_uring releases its files
        // asynchronously); a restart on the same ports would find them
        // taken. Wait until they refuse connections.
        let mut ports = vec![self.addr];
        ports.extend(self.kafka);
        ports.extend(self.kafka_listeners.iter().map(|(_, a)| *a));
        ports.extend(self.controller);
        wait_until(
            Duration::from_secs(10),
            "the killed broker's ports to close",
            || {
                ports.iter().all(|a| {
                    std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err()
                })
            },
        );
    }

    fn wait(&mut self, within: Duration) -> i32 {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("broker did not exit within {within:?}\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// Copies a directory tree (a fixture data directory into a test's own).
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Runs `f` on a fresh glommio executor.
pub fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor")
        .run(f)
}

/// Polls `check` until it returns true or `within` passes.
pub fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Busy processes (`yes > /dev/null`) that load the CPUs while a test runs,
/// so timing-dependent interleavings (a kill during a roll, a seal, a
/// carry rewrite) show up as they do on a busy server. Killed on drop.
pub struct CpuHogs(Vec<Child>);

impl CpuHogs {
    pub fn start(n: usize) -> CpuHogs {
        let hogs = (0..n)
            .map(|_| {
                Command::new("yes")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start a CPU hog (yes)")
            })
            .collect();
        CpuHogs(hogs)
    }
}

impl Drop for CpuHogs {
    fn drop(&mut self) {
        for hog in &mut self.0 {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}

/// Starts a broker with a Kafka listener on a port the OS picks.
pub fn start_with_kafka(data_dir: &Path, cores: usize, extra: &[&str]) -> Broker {
    let mut args = vec!["--kafka-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let broker = Broker::start(data_dir, cores, &args);
    assert!(
        broker.kafka.is_some(),
        "the broker reported no Kafka address"
    );
    broker
}

/// Fails the test with a message saying how to install a missing tool
/// (CI installs them: see .ci/run), unless CORELOG_SKIP_KAFKA_CLIENTS=1.
/// Returns false when the test should be skipped.
pub fn kafka_clients_available() -> bool {
    if std::env::var("CORELOG_SKIP_KAFKA_CLIENTS").is_ok_and(|v| v == "1") {
        eprintln!("skipping: CORELOG_SKIP_KAFKA_CLIENTS=1");
        return false;
    }
    let kcat = Command::new("kcat").arg("-V").output();
    assert!(
        kcat.is_ok_and(|o| o.status.success()),
        "kcat is not installed: apt-get install kcat (or set CORELOG_SKIP_KAFKA_CLIENTS=1)"
    );
    let python = Command::new("python3")
        .args(["-c", "import confluent_kafka, kafka"])
        .output();
    assert!(
        python.is_ok_and(|o| o.status.success()),
        "the Python Kafka clients are missing: pip install confluent-kafka kafka-python==3.0.12 (or set CORELOG_SKIP_KAFKA_CLIENTS=1)"
    );
    true
}
