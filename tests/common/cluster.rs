//! A cluster of real brokers on loopback for tests: each broker's
//! controller listener sits behind a proxy (the `--controllers` addresses
//! are the proxies'), which can cut a broker off from the others.

use super::{Broker, corelog_bin, wait_until};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A TCP proxy in front of one broker's controller listener. It reads the
/// connection's hello (magic and sender node id) to know who is talking,
/// so it can cut a node off from everyone.
pub struct Proxy {
    pub node: u64,
    pub addr: SocketAddr,
    pub target: Arc<Mutex<Option<SocketAddr>>>,
    /// Nodes cut off (shared by every proxy of the cluster).
    pub cut: Arc<Mutex<HashSet<u64>>>,
    /// Open connections: (from node, the two sockets).
    pub open: Arc<Mutex<Vec<(u64, TcpStream, TcpStream)>>>,
}

impl Proxy {
    pub fn start(node: u64, cut: Arc<Mutex<HashSet<u64>>>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Proxy {
            node,
            addr: listener.local_addr().unwrap(),
            target: Arc::default(),
            cut,
            open: Arc::default(),
        };
        let (target, cut, open) = (proxy.target.clone(), proxy.cut.clone(), proxy.open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let (target, cut, open) = (target.clone(), cut.clone(), open.clone());
                std::thread::spawn(move || {
                    client
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    let mut hello = [0u8; 16];
                    if client.read_exact(&mut hello).is_err() {
                        return;
                    }
                    client.set_read_timeout(None).unwrap();
                    let from = u64::from_le_bytes(hello[8..].try_into().unwrap());
                    let blocked = {
                        let cut = cut.lock().unwrap();
                        cut.contains(&from) || cut.contains(&node)
                    };
                    let Some(to) = *target.lock().unwrap() else {
                        return;
                    };
                    if blocked {
                        return;
                    }
                    let Ok(mut upstream) = TcpStream::connect(to) else {
                        return;
                    };
                    if upstream.write_all(&hello).is_err() {
                        return;
                    }
                    open.lock().unwrap().push((
                        from,
                        client.try_clone().unwrap(),
                        upstream.try_clone().unwrap(),
                    ));
                    let (mut c2, mut u2) =
                        (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut u2, &mut c2);
                        let _ = c2.shutdown(Shutdown::Both);
                    });
                    let _ = std::io::copy(&mut client, &mut upstream);
                    let _ = upstream.shutdown(Shutdown::Both);
                });
            }
        });
        proxy
    }

    /// Closes the connections from or to `node`.
    pub fn sever(&self, node: u64) {
        let mut open = self.open.lock().unwrap();
        for (from, a, b) in open.iter() {
            if *from == node || self.node == node {
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
            }
        }
        open.retain(|(from, _, _)| *from != node && self.node != node);
    }
}

/// A TCP proxy in front of one broker's native port (what the others
/// fetch replicas from, when the broker advertises the proxy); cutting it
/// drops every connection through it and refuses new ones.
pub struct DataProxy {
    pub addr: SocketAddr,
    pub target: Arc<Mutex<Option<SocketAddr>>>,
    cut: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<Mutex<Vec<(TcpStream, TcpStream)>>>,
}

impl DataProxy {
    pub fn start() -> DataProxy {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = DataProxy {
            addr: listener.local_addr().unwrap(),
            target: Arc::default(),
            cut: Arc::default(),
            open: Arc::default(),
        };
        let (target, cut, open) = (proxy.target.clone(), proxy.cut.clone(), proxy.open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                if cut.load(Ordering::SeqCst) {
                    continue;
                }
                let Some(to) = *target.lock().unwrap() else {
                    continue;
                };
                let Ok(mut upstream) = TcpStream::connect(to) else {
                    continue;
                };
                open.lock()
                    .unwrap()
                    .push((client.try_clone().unwrap(), upstream.try_clone().unwrap()));
                let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut client, &mut upstream);
                    let _ = upstream.shutdown(Shutdown::Both);
                });
            }
        });
        proxy
    }

    /// Cuts (or restores) the path to the broker.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::SeqCst);
        if cut {
            for (a, b) in self.open.lock().unwrap().drain(..) {
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
            }
        }
    }
}

pub struct Cluster {
    /// Proxies in front of the native ports, advertised to the other
    /// brokers (empty unless started with [`Cluster::start_proxied`]).
    pub data: Vec<DataProxy>,
    pub _dir: tempfile::TempDir,
    pub dirs: Vec<PathBuf>,
    pub proxies: Vec<Proxy>,
    pub cut: Arc<Mutex<HashSet<u64>>>,
    pub brokers: Vec<Option<Broker>>,
    pub controllers: String,
    /// Flags every broker gets besides the cluster's.
    pub extra: Vec<String>,
}

impl Cluster {
    pub fn start(n: u64) -> Cluster {
        Cluster::start_with(n, &[])
    }

    /// A cluster whose brokers reach each other's native ports (replica
    /// fetches) through proxies too, so a broker can be cut off from the
    /// others entirely ([`Cluster::isolate_fully`]).
    pub fn start_proxied(n: u64) -> Cluster {
        Cluster::build(n, &[], true, None)
    }

    pub fn start_with(n: u64, extra: &[&str]) -> Cluster {
        Cluster::build(n, extra, false, None)
    }

    /// A cluster of `n` brokers on copies of `fixture/node<id>` (data
    /// directories an earlier version wrote).
    pub fn start_on(n: u64, fixture: &std::path::Path) -> Cluster {
        Cluster::build(n, &[], false, Some(fixture))
    }

    fn build(n: u64, extra: &[&str], proxied: bool, fixture: Option<&std::path::Path>) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let cut = Arc::new(Mutex::new(HashSet::new()));
        let proxies: Vec<Proxy> = (1..=n).map(|id| Proxy::start(id, cut.clone())).collect();
        let controllers = proxies
            .iter()
            .map(|p| format!("{}@{}", p.node, p.addr))
            .collect::<Vec<_>>()
            .join(",");
        let dirs: Vec<PathBuf> = (1..=n)
            .map(|id| dir.path().join(format!("node{id}")))
            .collect();
        if let Some(fixture) = fixture {
            for (i, d) in dirs.iter().enumerate() {
                super::copy_tree(&fixture.join(format!("node{}", i + 1)), d);
            }
        }
        let mut cluster = Cluster {
            data: if proxied {
                (1..=n).map(|_| DataProxy::start()).collect()
            } else {
                Vec::new()
            },
            _dir: dir,
            dirs,
            proxies,
            cut,
            brokers: Vec::new(),
            controllers,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for id in 1..=n {
            let broker = cluster.launch(id);
            cluster.brokers.push(Some(broker));
        }
        cluster
    }

    pub fn launch(&self, id: u64) -> Broker {
        let node = id.to_string();
        let mut args: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        args.extend([
            "--kafka-listen",
            "127.0.0.1:0",
            "--node-id",
            &node,
            "--controllers",
            &self.controllers,
            "--controller-listen",
            "127.0.0.1:0",
            // Small, so a broker away for a few changes catches up
            // from a snapshot.
            "--raft-snapshot-entries",
            "4",
        ]);
        let advertise;
        if let Some(data) = self.data.get(id as usize - 1) {
            advertise = data.addr.to_string();
            args.extend(["--advertise", &advertise]);
        }
        let broker = Broker::start(&self.dirs[id as usize - 1], 1, &args);
        *self.proxies[id as usize - 1].target.lock().unwrap() = broker.controller;
        if let Some(data) = self.data.get(id as usize - 1) {
            *data.target.lock().unwrap() = Some(broker.addr);
        }
        broker
    }

    /// Cuts broker `id` off from the others: controller traffic and (with
    /// [`Cluster::start_proxied`]) the replica fetches of its followers.
    /// Clients still reach it.
    pub fn isolate_fully(&self, id: u64) {
        self.isolate(id);
        if let Some(data) = self.data.get(id as usize - 1) {
            data.set_cut(true);
        }
    }

    /// Ends every cut.
    pub fn heal_fully(&self) {
        self.heal();
        for d in &self.data {
            d.set_cut(false);
        }
    }

    pub fn broker(&self, id: u64) -> &Broker {
        self.brokers[id as usize - 1].as_ref().expect("running")
    }

    pub fn status(&self, id: u64) -> serde_json::Value {
        let http = self.broker(id).http.expect("an HTTP listener");
        let body: serde_json::Value = ureq::get(&format!("http://{http}/v1/cluster"))
            .timeout(Duration::from_secs(5))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        body["controller"].clone()
    }

    /// The leader every running broker (of `among`) agrees on.
    pub fn leader(&self, among: &[u64]) -> u64 {
        let mut leader = 0;
        wait_until(Duration::from_secs(15), "a controller leader", || {
            let seen: HashSet<u64> = among
                .iter()
                .map(|id| self.status(*id)["leader_id"].as_u64().unwrap())
                .collect();
            leader = *seen.iter().next().unwrap();
            seen.len() == 1 && leader != 0 && among.contains(&leader)
        });
        leader
    }

    /// Waits (bounded) until each of `on` has every broker registered.
    pub fn wait_registered(&self, on: &[u64]) {
        let n = self.brokers.len();
        wait_until(Duration::from_secs(15), "every broker registered", || {
            on.iter()
                .all(|id| self.status(*id)["brokers"].as_array().unwrap().len() == n)
        });
    }

    pub fn isolate(&self, id: u64) {
        self.cut.lock().unwrap().insert(id);
        for p in &self.proxies {
            p.sever(id);
        }
    }

    pub fn heal(&self) {
        self.cut.lock().unwrap().clear();
    }
}

pub fn corelog(args: &[&str]) -> (bool, String) {
    let out = Command::new(corelog_bin()).args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Runs a Python script (the Kafka clients' side of a test); its stdout.
pub fn python(script: &str) -> Vec<u8> {
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
