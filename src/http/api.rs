//! The admin API: JSON under `/v1/`, built from the shards' published
//! reports. Errors are `{"error": {"code": CODE, "message": …}}` with a
//! stable code (`NOT_FOUND`, `UNKNOWN_TOPIC`, `UNKNOWN_GROUP`,
//! `NOT_READY`, `METHOD_NOT_ALLOWED`).
//!
//! * `GET /v1/health`: 200 once every shard has recovered its partitions,
//!   503 before (both with each shard's state).
//! * `GET /v1/topics`, `GET /v1/topics/{name}`: partitions with their
//!   shard, offsets, size and segments; traffic counters.
//! * `GET /v1/groups`, `GET /v1/groups/{id}`: members, committed offsets
//!   and lag per partition.
//! * `GET /v1/shards`: each shard's connections, requests, hops, CPU.
//! * `GET /v1/cluster`: the brokers (this one, until clusters exist).
//! * `GET /v1/config`: the broker's configuration.

use super::Answer;
use super::prom::high_watermarks;
use crate::metrics::{Board, GroupReport, PartitionReport, ShardReport};
use hyper::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// Each shard's (previous, last) report.
type Pairs = [(Arc<ShardReport>, Arc<ShardReport>)];

pub(super) fn answer(board: &Board, rest: &str) -> Answer {
    let pairs = board.shard_pairs();
    let shards: Vec<Arc<ShardReport>> = pairs.iter().map(|(_, cur)| cur.clone()).collect();
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["health"] => health(board, &shards),
        ["topics"] => Answer::json(StatusCode::OK, &topics(&pairs)),
        ["topics", name] => topic(&pairs, &decode(name)),
        ["groups"] => Answer::json(StatusCode::OK, &groups(&shards)),
        ["groups", id] => group(&shards, &decode(id)),
        ["shards"] => Answer::json(StatusCode::OK, &shards_json(&pairs)),
        ["cluster"] => Answer::json(StatusCode::OK, &cluster(board, &shards)),
        ["config"] => Answer::json(StatusCode::OK, &config(board)),
        _ => Answer::error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!(
                "no such API /v1/{rest}; see /v1/health, /v1/topics, /v1/groups, /v1/shards, /v1/cluster, /v1/config"
            ),
        ),
    }
}

/// A path segment with `%XX` escapes decoded (topic and group names may
/// hold characters a browser escapes).
fn decode(segment: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn seconds(t: Option<std::time::SystemTime>) -> Value {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(Value::Null, |d| json!(d.as_secs_f64()))
}

fn health(board: &Board, shards: &[Arc<ShardReport>]) -> Answer {
    let ready = board.ready();
    let body = json!({
        "status": if ready { "ready" } else { "recovering" },
        "shards": shards.iter().map(|s| json!({
            "shard": s.shard,
            "recovered": s.recovered,
            "published_at": seconds(s.at),
        })).collect::<Vec<_>>(),
    });
    if ready {
        Answer::json(StatusCode::OK, &body)
    } else {
        let mut body = body;
        body["error"] = json!({
            "code": "NOT_READY",
            "message": "shards are still recovering their partitions",
        });
        Answer::json(StatusCode::SERVICE_UNAVAILABLE, &body)
    }
}

/// Every topic's partitions, by topic name, in partition order.
fn by_topic(shards: &[Arc<ShardReport>]) -> BTreeMap<&str, Vec<(u32, &PartitionReport)>> {
    let mut out: BTreeMap<&str, Vec<(u32, &PartitionReport)>> = BTreeMap::new();
    for s in shards {
        for p in &s.partitions {
            out.entry(&p.topic).or_default().push((s.shard, p));
        }
    }
    for parts in out.values_mut() {
        parts.sort_by_key(|(_, p)| p.partition);
    }
    out
}

/// A topic's traffic over every shard: (bytes in, bytes out, records in).
fn traffic(shards: &[Arc<ShardReport>], topic: &str) -> (u64, u64, u64) {
    shards
        .iter()
        .flat_map(|s| s.topics.iter())
        .filter(|t| &*t.topic == topic)
        .fold((0, 0, 0), |a, t| {
            (a.0 + t.bytes_in, a.1 + t.bytes_out, a.2 + t.records_in)
        })
}

/// A topic's traffic per second over each shard's last publication
/// interval: (bytes in, bytes out, records in).
fn topic_rates(pairs: &Pairs, topic: &str) -> (f64, f64, f64) {
    let mut rates = (0.0, 0.0, 0.0);
    for (prev, cur) in pairs {
        let Some(dt) = cur.seconds_since(prev) else {
            continue;
        };
        let find = |r: &ShardReport| {
            r.topics
                .iter()
                .find(|t| &*t.topic == topic)
                .map_or((0, 0, 0), |t| (t.bytes_in, t.bytes_out, t.records_in))
        };
        let (a, b) = (find(prev), find(cur));
        rates.0 += b.0.saturating_sub(a.0) as f64 / dt;
        rates.1 += b.1.saturating_sub(a.1) as f64 / dt;
        rates.2 += b.2.saturating_sub(a.2) as f64 / dt;
    }
    rates
}

fn topic_summary(pairs: &Pairs, name: &str, parts: &[(u32, &PartitionReport)]) -> Value {
    let shards: Vec<Arc<ShardReport>> = pairs.iter().map(|(_, cur)| cur.clone()).collect();
    let (bytes_in, bytes_out, records_in) = traffic(&shards, name);
    let (in_rate, out_rate, records_rate) = topic_rates(pairs, name);
    json!({
        "name": name,
        "internal": crate::group::is_internal(name),
        "partitions": parts.len(),
        "size_bytes": parts.iter().map(|(_, p)| p.bytes).sum::<u64>(),
        "records": parts.iter().map(|(_, p)| p.high_watermark.saturating_sub(p.start)).sum::<u64>(),
        "end_offsets_sum": parts.iter().map(|(_, p)| p.end).sum::<u64>(),
        "bytes_in_total": bytes_in,
        "bytes_out_total": bytes_out,
        "records_in_total": records_in,
        "bytes_in_per_sec": in_rate,
        "bytes_out_per_sec": out_rate,
        "records_in_per_sec": records_rate,
        "failed_partitions": parts.iter().filter(|(_, p)| p.error.is_some()).count(),
    })
}

fn topics(pairs: &Pairs) -> Value {
    let shards: Vec<Arc<ShardReport>> = pairs.iter().map(|(_, cur)| cur.clone()).collect();
    let topics: Vec<Value> = by_topic(&shards)
        .iter()
        .map(|(name, parts)| topic_summary(pairs, name, parts))
        .collect();
    json!({ "topics": topics })
}

fn topic(pairs: &Pairs, name: &str) -> Answer {
    let shards: Vec<Arc<ShardReport>> = pairs.iter().map(|(_, cur)| cur.clone()).collect();
    let all = by_topic(&shards);
    let Some(parts) = all.get(name) else {
        return Answer::error(
            StatusCode::NOT_FOUND,
            "UNKNOWN_TOPIC",
            format!("topic {name:?} does not exist"),
        );
    };
    let mut body = topic_summary(pairs, name, parts);
    body["partition_list"] = parts
        .iter()
        .map(|(shard, p)| {
            json!({
                "partition": p.partition,
                "shard": shard,
                "log_start_offset": p.start,
                "log_end_offset": p.end,
                "high_watermark": p.high_watermark,
                "size_bytes": p.bytes,
                "segments": p.segments,
                "error": p.error,
            })
        })
        .collect();
    Answer::json(StatusCode::OK, &body)
}

fn all_groups(shards: &[Arc<ShardReport>]) -> Vec<(u32, &GroupReport)> {
    let mut out: Vec<(u32, &GroupReport)> = shards
        .iter()
        .flat_map(|s| s.groups.iter().map(move |g| (s.shard, g)))
        .collect();
    out.sort_by(|a, b| a.1.group.cmp(&b.1.group));
    out
}

/// Every partition's high watermark.
type HighWatermarks<'a> = BTreeMap<(&'a str, u32), u64>;

/// A group's lag per committed partition, and the total.
fn lags(hws: &HighWatermarks, g: &GroupReport) -> (Vec<Value>, u64) {
    let mut total = 0;
    let per: Vec<Value> = g
        .committed
        .iter()
        .map(|c| {
            let hw = hws.get(&(c.topic.as_str(), c.partition)).copied();
            let lag = hw.map(|hw| hw.saturating_sub(c.offset.max(0) as u64));
            total += lag.unwrap_or(0);
            json!({
                "topic": c.topic,
                "partition": c.partition,
                "committed_offset": c.offset,
                "high_watermark": hw,
                "lag": lag,
            })
        })
        .collect();
    (per, total)
}

fn groups(shards: &[Arc<ShardReport>]) -> Value {
    let hws = high_watermarks(shards);
    let groups: Vec<Value> = all_groups(shards)
        .into_iter()
        .map(|(shard, g)| {
            let (_, lag) = lags(&hws, g);
            json!({
                "group": g.group,
                "state": g.state,
                "type": g.group_type,
                "protocol_type": g.protocol_type,
                "coordinator_shard": shard,
                "members": g.members.len(),
                "lag": lag,
            })
        })
        .collect();
    json!({ "groups": groups })
}

fn group(shards: &[Arc<ShardReport>], id: &str) -> Answer {
    let Some((shard, g)) = all_groups(shards).into_iter().find(|(_, g)| g.group == id) else {
        return Answer::error(
            StatusCode::NOT_FOUND,
            "UNKNOWN_GROUP",
            format!("group {id:?} does not exist"),
        );
    };
    let (partitions, lag) = lags(&high_watermarks(shards), g);
    Answer::json(
        StatusCode::OK,
        &json!({
            "group": g.group,
            "state": g.state,
            "type": g.group_type,
            "protocol_type": g.protocol_type,
            "coordinator_shard": shard,
            "members": g.members.iter().map(|m| json!({
                "member_id": m.member_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
            })).collect::<Vec<_>>(),
            "partitions": partitions,
            "lag": lag,
        }),
    )
}

fn shards_json(pairs: &Pairs) -> Value {
    let list: Vec<Value> = pairs
        .iter()
        .map(|(prev, s)| {
            let requests = |r: &ShardReport| r.requests.iter().map(|r| r.count).sum::<u64>();
            let per_sec = |now: f64, before: f64| {
                s.seconds_since(prev)
                    .map_or(0.0, |dt| (now - before).max(0.0) / dt)
            };
            json!({
                "requests_per_sec": per_sec(requests(s) as f64, requests(prev) as f64),
                "hops_per_sec": per_sec(s.hops as f64, prev.hops as f64),
                "cpu_percent": per_sec(s.cpu_seconds, prev.cpu_seconds) * 100.0,
                "shard": s.shard,
                "port": s.port,
                "recovered": s.recovered,
                "published_at": seconds(s.at),
                "connections": s.connections.iter().map(|c| json!({
                    "protocol": c.protocol,
                    "open": c.open,
                    "accepted": c.accepted,
                    "closed": c.closed,
                })).collect::<Vec<_>>(),
                "requests_total": s.requests.iter().map(|r| r.count).sum::<u64>(),
                "errors_total": s.errors.iter().map(|e| e.count).sum::<u64>(),
                "hops_total": s.hops,
                "bytes_in_total": s.bytes_in,
                "bytes_out_total": s.bytes_out,
                "cpu_seconds_total": s.cpu_seconds,
                "fsyncs_total": s.fsync_latency.count,
                "partitions": s.partitions.len(),
                "produce_latency_p99_seconds": s.produce_latency.quantile(0.99),
                "fetch_latency_p99_seconds": s.fetch_latency.quantile(0.99),
            })
        })
        .collect();
    json!({ "shards": list })
}

fn cluster(board: &Board, shards: &[Arc<ShardReport>]) -> Value {
    let broker = board.broker();
    json!({
        "controller": board.controller().map(|c| serde_json::to_value(&*c).unwrap_or(Value::Null)),
        "brokers": [{
            "node_id": broker.node_id,
            "native": broker.native_addr,
            "kafka": broker.kafka_addr,
            "shards": shards.len(),
            "version": broker.version,
            "started_at": seconds(broker.started),
            "ready": board.ready(),
        }],
    })
}

fn config(board: &Board) -> Value {
    let broker = board.broker();
    let settings: serde_json::Map<String, Value> = broker
        .config
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "version": broker.version,
        "data_dir": broker.data_dir,
        "cores": broker.cores,
        "settings": settings,
    })
}
