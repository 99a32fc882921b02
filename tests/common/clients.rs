//! Kafka clients against secured listeners, for the TLS and SASL tests:
//! kcat, tests/kafka/secure_roundtrip.py, and the client and broker
//! settings both suites write.
#![allow(dead_code)]

use super::pki::{Leaf, Pki};
use std::net::SocketAddr;
use std::process::Command;

/// `program ARGS` under `timeout SECS`: (success, stdout + stderr).
pub fn timed(secs: u32, program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("timeout")
        .arg(secs.to_string())
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// kcat with a 60 s ceiling: (success, stdout + stderr).
pub fn kcat(args: &[&str]) -> (bool, String) {
    timed(60, "kcat", args)
}

/// Runs tests/kafka/secure_roundtrip.py: `Ok(json)` on success,
/// `Err("KIND: detail")` when the client was refused, KIND being
/// "authentication", "authorization", "transport" or "other", so that a
/// test can check why.
pub fn roundtrip(
    client: &str,
    bootstrap: SocketAddr,
    topic: &str,
    count: usize,
    config: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let out = Command::new("timeout")
        .args([
            "180",
            "python3",
            &super::script("secure_roundtrip.py"),
            client,
        ])
        .arg(bootstrap.to_string())
        .arg(topic)
        .arg(count.to_string())
        .arg(config.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "{client} printed no result ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    match parsed.get("error") {
        Some(kind) => Err(format!(
            "{}: {}",
            kind.as_str().unwrap(),
            parsed["detail"].as_str().unwrap_or_default()
        )),
        None => Ok(parsed),
    }
}

/// The broker flags that serve `server`'s certificate.
pub fn tls_args(server: &Leaf) -> Vec<&str> {
    vec![
        "--tls-cert",
        server.cert.to_str().unwrap(),
        "--tls-key",
        server.key.to_str().unwrap(),
    ]
}

/// Client settings (librdkafka's names) for an SSL listener whose
/// certificate `pki` signed.
pub fn ssl_config(pki: &Pki) -> serde_json::Value {
    serde_json::json!({
        "security.protocol": "SSL",
        "ssl.ca.location": pki.ca_pem.to_str().unwrap(),
    })
}

/// Client settings for a SASL login over `protocol` (SASL_PLAINTEXT, or
/// SASL_SSL trusting `pki`'s CA).
pub fn sasl_config(
    protocol: &str,
    mechanism: &str,
    user: &str,
    password: &str,
    pki: &Pki,
) -> serde_json::Value {
    let mut c = serde_json::json!({
        "security.protocol": protocol,
        "sasl.mechanisms": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    });
    if protocol == "SASL_SSL" {
        c["ssl.ca.location"] = pki.ca_pem.to_str().unwrap().into();
    }
    c
}
