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
    /// One line per controller voter — node id, role, address, how far
    /// behind the leader it is — with the leader marked, the Raft term and
    /// the metadata version this broker applied.
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
    outln!("{:<8} {:<10} {:<24} LAG", "NODE", "ROLE", "CONTROLLER");
    for v in c["voters"].as_array().into_iter().flatten() {
        let id = v["id"].as_u64().unwrap_or(0);
        let role = if id == leader {
            "leader"
        } else if leader == 0 {
            "unknown"
        } else {
            "follower"
        };
        let lag = v["lag"]
            .as_u64()
            .map_or_else(|| "-".to_string(), |l| l.to_string());
        outln!(
            "{:<8} {:<10} {:<24} {lag}",
            format!("{id}{}", if id == me { "*" } else { "" }),
            role,
            v["addr"].as_str().unwrap_or("?"),
        );
    }
    Ok(())
}
