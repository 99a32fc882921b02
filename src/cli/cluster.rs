//! `corelog cluster status`: the controller quorum as a broker sees it,
//! read from its HTTP admin API (`GET /v1/cluster`).

use crate::cli::out::outln;
use serde_json::Value;

#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ClusterCommand {
    /// One line per broker — node id, state (active or fenced), its
    /// controller role and address, how far behind the leader's log it
    /// is, its listeners — after the Raft term, the leader and the
    /// metadata version the asked broker applied.
    Status {
        /// The HTTP listener of any broker of the cluster (plain HTTP).
        #[arg(long, default_value = "127.0.0.1:9644")]
        http: String,
        /// Print the broker's answer as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: ClusterArgs) -> Result<(), String> {
    match args.command {
        ClusterCommand::Status { http, json } => status(&http, json),
    }
}

fn status(http: &str, json: bool) -> Result<(), String> {
    let url = format!("http://{http}/v1/cluster");
    let body: Value = ureq::get(&url)
        .timeout(std::time::Duration::from_secs(5))
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?
        .into_json()
        .map_err(|e| format!("GET {url}: the answer is not JSON: {e}"))?;
    if json {
        outln!("{body}");
        return Ok(());
    }
    let Some(c) = body.get("controller").filter(|c| !c.is_null()) else {
        outln!(
            "one-broker cluster (no --controllers): node {}",
            body["brokers"][0]["node_id"]
        );
        return Ok(());
    };
    let leader = c["leader_id"].as_u64().unwrap_or(0);
    let me = c["node_id"].as_u64().unwrap_or(0);
    outln!(
        "term {}  leader {}  commit {}  applied {}  metadata version {}  (as seen by node {me})",
        c["term"],
        if leader == 0 {
            "none".to_string()
        } else {
            leader.to_string()
        },
        c["commit_index"],
        c["applied_index"],
        c["metadata_version"]
    );
    outln!(
        "{:<6} {:<9} {:<10} {:<22} {:<6} {:<22} KAFKA",
        "NODE",
        "STATE",
        "ROLE",
        "CONTROLLER",
        "LAG",
        "NATIVE"
    );
    let brokers: Vec<&Value> = c["brokers"].as_array().into_iter().flatten().collect();
    for v in c["voters"].as_array().into_iter().flatten() {
        outln!("{}", voter_line(v, &brokers, leader, me));
    }
    outln!(
        "(* the broker answering; LAG, entries behind the leader's log, is known on the leader)"
    );
    let under: Vec<&Value> = c["under_replicated"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if under.is_empty() {
        outln!("every replicated partition has all its replicas in sync");
        return Ok(());
    }
    let offline = under
        .iter()
        .filter(|u| u["offline"].as_bool() == Some(true))
        .count();
    outln!(
        "{} under-replicated partition(s), {offline} offline:",
        under.len()
    );
    outln!(
        "  {:<30} {:>9} {:>6} {:<12} {:<12}",
        "TOPIC",
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR"
    );
    let list = |v: &Value| {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    for u in under.iter().take(50) {
        outln!(
            "  {:<30} {:>9} {:>6} {:<12} {:<12}{}",
            u["topic"].as_str().unwrap_or("?"),
            u["partition"],
            u["leader"],
            list(&u["replicas"]),
            list(&u["isr"]),
            if u["offline"].as_bool() == Some(true) {
                "  offline"
            } else {
                ""
            }
        );
    }
    if under.len() > 50 {
        outln!("  … and {} more (--json lists all)", under.len() - 50);
    }
    Ok(())
}

/// One voter's line: node id (`*`: the broker answering), state, role,
/// controller address, lag, native and Kafka listeners.
fn voter_line(v: &Value, brokers: &[&Value], leader: u64, me: u64) -> String {
    let id = v["id"].as_u64().unwrap_or(0);
    let role = match leader {
        0 => "unknown",
        l if l == id => "leader",
        _ => "follower",
    };
    let lag = v["lag"]
        .as_u64()
        .map_or_else(|| "-".to_string(), |l| l.to_string());
    let broker = brokers.iter().find(|b| b["node_id"].as_u64() == Some(id));
    let state = match broker {
        None => "unregistered",
        Some(b) if b["fenced"].as_bool() == Some(true) => "fenced",
        Some(_) => "active",
    };
    let native = broker.and_then(|b| b["native"].as_str()).unwrap_or("-");
    let kafka = broker
        .and_then(|b| b["kafka"].as_array())
        .map(|k| {
            k.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "-".to_string());
    format!(
        "{:<6} {:<9} {:<10} {:<22} {:<6} {:<22} {kafka}",
        format!("{id}{}", if id == me { "*" } else { "" }),
        state,
        role,
        v["addr"].as_str().unwrap_or("?"),
        lag,
        native,
    )
}
