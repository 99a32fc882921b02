//! SASL/SCRAM (RFC 5802; SCRAM-SHA-256 from RFC 7677, and SCRAM-SHA-512,
//! which Kafka defines the same way with SHA-512), composed from ring's
//! PBKDF2, HMAC and SHA-2.
//!
//! Both halves are synchronous state machines with no I/O: the connection
//! code feeds them the SASL payloads and sends back what they return.
//!
//! * [`ScramServer`]: `first` answers client-first with server-first, `last`
//!   checks client-final's proof and answers server-final.
//! * [`ScramClient`]: `first` makes client-first, `last` answers
//!   server-first with client-final, `verify` checks server-final.
//!
//! What is not supported (and rejected): channel binding (`p=` in the GS2
//! header), mandatory extensions (`m=`), delegation tokens
//! (`tokenauth=true`), and an authorization identity other than the user.
//! User names and passwords are not SASLprep-normalised (Kafka's are not).
//!
//! An unknown user is not told apart from a wrong password: the server
//! answers client-first with a made-up salt (stable for the user name while
//! the process lives) and Kafka's minimum iteration count, and fails at the
//! last step with [`ScramError::AuthenticationFailed`], the error a wrong
//! password gets. (A restart changes the made-up salts; a real user whose
//! credential has more iterations than the minimum is told apart by that.)

use super::{ScramCredential, ScramMechanism};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};
use std::fmt;
use std::num::NonZeroU32;
use std::sync::OnceLock;
use subtle::ConstantTimeEq;

/// Length of the salts [`random_salt`] makes.
pub const SALT_LEN: usize = 32;

// The made-up salts are cut from an HMAC-SHA256 tag.
const _: () = assert!(SALT_LEN <= 32);

/// Random bytes in a nonce (base64 makes 32 characters of them).
const NONCE_BYTES: usize = 24;

impl ScramMechanism {
    /// Length of the hash, hence of the salted password, the keys, the
    /// proof and the signatures.
    pub fn hash_len(self) -> usize {
        self.digest_algorithm().output_len()
    }

    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2_algorithm(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }
}

/// Why a SCRAM step failed. The messages are for operators and clients:
/// they never contain a password, a key, a proof or a signature, nor any
/// of the peer's input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScramError {
    /// The message is not the SCRAM message this step expects.
    Malformed(String),
    /// Valid SCRAM asking for something corelog does not do: channel
    /// binding, a mandatory extension, a delegation token, an authorization
    /// identity other than the user, an iteration count out of bounds.
    Unsupported(String),
    /// Server side: a wrong password or an unknown user (deliberately the
    /// same error).
    AuthenticationFailed,
    /// Client side: the server's signature (`v=`) does not verify, so the
    /// server does not hold the user's credential.
    ServerSignatureMismatch,
    /// Client side: the server answered `e=…`; its message.
    ServerError(String),
    /// A step was called out of order, or after the exchange failed or
    /// ended.
    OutOfOrder(&'static str),
}

impl fmt::Display for ScramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScramError::Malformed(what) => write!(f, "malformed SCRAM message: {what}"),
            ScramError::Unsupported(what) => write!(f, "unsupported SCRAM request: {what}"),
            ScramError::AuthenticationFailed => {
                f.write_str("SCRAM authentication failed: invalid user name or password")
            }
            ScramError::ServerSignatureMismatch => f.write_str(
                "SCRAM: the server's signature does not verify (it does not hold this user's credential)",
            ),
            ScramError::ServerError(message) => {
                write!(f, "SCRAM: the server rejected the authentication: {message}")
            }
            ScramError::OutOfOrder(what) => write!(f, "SCRAM step out of order: {what}"),
        }
    }
}

impl std::error::Error for ScramError {}

fn malformed(what: &str) -> ScramError {
    ScramError::Malformed(what.to_string())
}

fn unsupported(what: &str) -> ScramError {
    ScramError::Unsupported(what.to_string())
}

// ---------------------------------------------------------------------------
// Key derivation

fn fill_random(buf: &mut [u8]) {
    // The kernel's generator does not fail once the system is up; if it
    // did, no salt or nonce could be made safely.
    SystemRandom::new()
        .fill(buf)
        .expect("the system random number generator failed");
}

/// A fresh random salt of [`SALT_LEN`] bytes.
pub fn random_salt() -> Vec<u8> {
    let mut salt = vec![0; SALT_LEN];
    fill_random(&mut salt);
    salt
}

/// A fresh random nonce: printable, without `,` (URL-safe base64 of 24
/// random bytes).
pub fn random_nonce() -> String {
    let mut bytes = [0; NONCE_BYTES];
    fill_random(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hmac(mechanism: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(mechanism.hmac_algorithm(), key);
    hmac::sign(&key, data).as_ref().to_vec()
}

fn hash(mechanism: ScramMechanism, data: &[u8]) -> Vec<u8> {
    digest::digest(mechanism.digest_algorithm(), data)
        .as_ref()
        .to_vec()
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// SaltedPassword = PBKDF2-HMAC-H(password, salt, iterations), as long as
/// the hash. What a Kafka client sends in AlterUserScramCredentials.
/// Callers keep `iterations` within Kafka's bounds; 0 is taken as 1.
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    let mut out = vec![0; mechanism.hash_len()];
    pbkdf2::derive(
        mechanism.pbkdf2_algorithm(),
        iterations,
        salt,
        password,
        &mut out,
    );
    out
}

/// The credential stored for `user`: the salt, the iteration count and the
/// keys derived from `password` (RFC 5802 §3).
pub fn derive_credential(
    user: &str,
    mechanism: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> ScramCredential {
    let salted = salted_password(mechanism, password, salt, iterations);
    credential_from_salted_password(user, mechanism, salt, &salted, iterations)
}

/// The credential from a salted password computed elsewhere (Kafka's
/// AlterUserScramCredentials): ClientKey = HMAC(SP, "Client Key"),
/// StoredKey = H(ClientKey), ServerKey = HMAC(SP, "Server Key").
pub fn credential_from_salted_password(
    user: &str,
    mechanism: ScramMechanism,
    salt: &[u8],
    salted_password: &[u8],
    iterations: u32,
) -> ScramCredential {
    let client_key = hmac(mechanism, salted_password, b"Client Key");
    ScramCredential {
        user: user.to_string(),
        mechanism,
        iterations,
        salt: salt.to_vec(),
        stored_key: hash(mechanism, &client_key),
        server_key: hmac(mechanism, salted_password, b"Server Key"),
    }
}

/// The salt an unknown user is answered with: HMAC-SHA256, keyed by a
/// secret drawn once per process, over the mechanism and the user name.
/// As long as [`random_salt`]'s salts, so its length tells nothing. The
/// mechanism is in it so that one user's two made-up salts differ, as two
/// real credentials' salts do.
fn fake_salt(mechanism: ScramMechanism, user: &str) -> Vec<u8> {
    static SECRET: OnceLock<hmac::Key> = OnceLock::new();
    let key = SECRET.get_or_init(|| {
        let mut secret = [0; 32];
        fill_random(&mut secret);
        hmac::Key::new(hmac::HMAC_SHA256, &secret)
    });
    let mut context = hmac::Context::with_key(key);
    context.update(mechanism.name().as_bytes());
    context.update(&[0]);
    context.update(user.as_bytes());
    let tag = context.sign();
    tag.as_ref()[..SALT_LEN].to_vec()
}

/// A credential no proof matches, for an unknown user: its salt is
/// [`fake_salt`], its keys are zeros (no one knows a preimage of them under
/// the hash; the server also refuses it outright).
fn fake_credential(mechanism: ScramMechanism, user: &str) -> ScramCredential {
    ScramCredential {
        user: user.to_string(),
        mechanism,
        iterations: ScramMechanism::MIN_ITERATIONS,
        salt: fake_salt(mechanism, user),
        stored_key: vec![0; mechanism.hash_len()],
        server_key: vec![0; mechanism.hash_len()],
    }
}

// ---------------------------------------------------------------------------
// Message syntax

/// `,` is `=2C` and `=` is `=3D` in a saslname.
fn escape_saslname(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            ',' => out.push_str("=2C"),
            '=' => out.push_str("=3D"),
            c => out.push(c),
        }
    }
    out
}

fn unescape_saslname(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("a user name has an '=' that is not =2C or =3D")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(malformed("the user name is empty"));
    }
    if out.contains('\0') {
        return Err(malformed("a user name has a NUL character"));
    }
    Ok(out)
}

/// RFC 5802's `printable`: ASCII 0x21..=0x7E except `,`.
fn check_nonce(nonce: &str) -> Result<(), ScramError> {
    if nonce.is_empty() {
        return Err(malformed("the nonce (r=) is empty"));
    }
    if !nonce
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(malformed(
            "the nonce (r=) has a character that is not printable ASCII",
        ));
    }
    Ok(())
}

/// An extension attribute `key=value` after the ones a message must have.
/// `m=` (a mandatory extension) is refused wherever it is.
fn parse_extension(attribute: &str) -> Result<(&str, &str), ScramError> {
    let Some((key, value)) = attribute.split_once('=') else {
        return Err(malformed("an attribute is not key=value"));
    };
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(malformed("an attribute's name is not alphanumeric"));
    }
    if key == "m" {
        return Err(unsupported("mandatory extensions (m=) are not supported"));
    }
    Ok((key, value))
}

fn decode_base64(value: &str, what: &str) -> Result<Vec<u8>, ScramError> {
    STANDARD
        .decode(value)
        .map_err(|_| ScramError::Malformed(format!("{what} is not base64")))
}

/// A parsed client-first message.
struct ClientFirst<'a> {
    /// `n,,`, `y,,`, or with `a=` between the commas.
    gs2_header: &'a str,
    /// client-first-bare: the message after the GS2 header.
    bare: &'a str,
    user: String,
    nonce: &'a str,
}

fn parse_client_first(message: &str) -> Result<ClientFirst<'_>, ScramError> {
    let Some((flag, rest)) = message.split_once(',') else {
        return Err(malformed("the client-first message has no GS2 header"));
    };
    match flag {
        "n" | "y" => {}
        _ if flag.starts_with("p=") => {
            return Err(unsupported("channel binding is not supported"));
        }
        _ => {
            return Err(malformed(
                "the GS2 header's channel-binding flag is not n, y or p=",
            ));
        }
    }
    let Some((authzid, bare)) = rest.split_once(',') else {
        return Err(malformed(
            "the client-first message's GS2 header is incomplete",
        ));
    };
    let gs2_header = &message[..flag.len() + authzid.len() + 2];
    let authzid = if authzid.is_empty() {
        None
    } else {
        let Some(name) = authzid.strip_prefix("a=") else {
            return Err(malformed(
                "the GS2 header's authorization identity is not a=<name>",
            ));
        };
        Some(unescape_saslname(name)?)
    };

    let mut attributes = bare.split(',');
    let first = attributes.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(unsupported("mandatory extensions (m=) are not supported"));
    }
    let Some(user) = first.strip_prefix("n=") else {
        return Err(malformed(
            "the client-first message does not start with n=<user>",
        ));
    };
    let user = unescape_saslname(user)?;
    let Some(nonce) = attributes.next().and_then(|a| a.strip_prefix("r=")) else {
        return Err(malformed(
            "the client-first message has no r=<nonce> after the user",
        ));
    };
    check_nonce(nonce)?;
    for attribute in attributes {
        let (key, value) = parse_extension(attribute)?;
        if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
            return Err(unsupported("delegation tokens are not supported"));
        }
    }
    if authzid.is_some_and(|a| a != user) {
        return Err(unsupported(
            "the authorization identity (a=) differs from the user name (n=)",
        ));
    }
    Ok(ClientFirst {
        gs2_header,
        bare,
        user,
        nonce,
    })
}

/// A parsed client-final message.
struct ClientFinal<'a> {
    /// The GS2 header, decoded from `c=`.
    channel_binding: Vec<u8>,
    nonce: &'a str,
    /// client-final-message-without-proof.
    without_proof: &'a str,
    proof: Vec<u8>,
}

fn parse_client_final(message: &str) -> Result<ClientFinal<'_>, ScramError> {
    let attributes: Vec<&str> = message.split(',').collect();
    let Some((last, others)) = attributes.split_last() else {
        return Err(malformed("the client-final message is empty"));
    };
    let Some(proof) = last.strip_prefix("p=") else {
        return Err(malformed(
            "the proof (p=) is not the client-final message's last attribute",
        ));
    };
    if others.iter().any(|a| a.starts_with("p=")) {
        return Err(malformed(
            "the proof (p=) is not the client-final message's last attribute",
        ));
    }
    let [c, r, extensions @ ..] = others else {
        return Err(malformed("the client-final message is not c=…,r=…,p=…"));
    };
    let Some(c) = c.strip_prefix("c=") else {
        return Err(malformed(
            "the client-final message does not start with c=<channel binding>",
        ));
    };
    let Some(nonce) = r.strip_prefix("r=") else {
        return Err(malformed(
            "the client-final message has no r=<nonce> after c=",
        ));
    };
    for attribute in extensions {
        parse_extension(attribute)?;
    }
    Ok(ClientFinal {
        channel_binding: decode_base64(c, "the channel binding (c=)")?,
        nonce,
        without_proof: &message[..message.len() - last.len() - 1],
        proof: decode_base64(proof, "the proof (p=)")?,
    })
}

/// A parsed server-first message.
struct ServerFirst<'a> {
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: u32,
}

fn parse_server_first(message: &str) -> Result<ServerFirst<'_>, ScramError> {
    let mut attributes = message.split(',');
    let first = attributes.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(unsupported("mandatory extensions (m=) are not supported"));
    }
    if let Some(error) = first.strip_prefix("e=") {
        return Err(ScramError::ServerError(error.to_string()));
    }
    let Some(nonce) = first.strip_prefix("r=") else {
        return Err(malformed(
            "the server-first message does not start with r=<nonce>",
        ));
    };
    check_nonce(nonce)?;
    let Some(salt) = attributes.next().and_then(|a| a.strip_prefix("s=")) else {
        return Err(malformed(
            "the server-first message has no s=<salt> after r=",
        ));
    };
    let salt = decode_base64(salt, "the salt (s=)")?;
    if salt.is_empty() {
        return Err(malformed("the salt (s=) is empty"));
    }
    let Some(iterations) = attributes.next().and_then(|a| a.strip_prefix("i=")) else {
        return Err(malformed(
            "the server-first message has no i=<iterations> after s=",
        ));
    };
    if iterations.is_empty() || !iterations.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("the iteration count (i=) is not a number"));
    }
    // All digits: the only parse failure left is overflow, out of bounds
    // anyway.
    let iterations = iterations.parse().unwrap_or(u32::MAX);
    for attribute in attributes {
        parse_extension(attribute)?;
    }
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

fn utf8<'a>(message: &'a [u8], what: &str) -> Result<&'a str, ScramError> {
    std::str::from_utf8(message).map_err(|_| ScramError::Malformed(format!("{what} is not UTF-8")))
}

// ---------------------------------------------------------------------------
// Server

/// What the server keeps between server-first and client-final.
struct Exchange {
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    /// Client nonce + server nonce.
    nonce: String,
    user: String,
    credential: ScramCredential,
    /// False when `credential` is made up for an unknown user.
    known: bool,
}

enum ServerState {
    Initial,
    FirstSent(Box<Exchange>),
    Done,
    Failed,
}

/// The server side of one SCRAM exchange.
pub struct ScramServer {
    mechanism: ScramMechanism,
    server_nonce: String,
    state: ServerState,
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            ServerState::Initial => "initial",
            ServerState::FirstSent(_) => "server-first sent",
            ServerState::Done => "done",
            ServerState::Failed => "failed",
        };
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mechanism)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl ScramServer {
    /// An exchange for `mechanism`, with a fresh random server nonce.
    pub fn new(mechanism: ScramMechanism) -> Self {
        ScramServer {
            mechanism,
            server_nonce: random_nonce(),
            state: ServerState::Initial,
        }
    }

    /// With a given server nonce (the RFC's test vectors).
    #[cfg(test)]
    fn with_nonce(mechanism: ScramMechanism, nonce: &str) -> Self {
        ScramServer {
            server_nonce: nonce.to_string(),
            ..Self::new(mechanism)
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Client-first → server-first. `lookup` finds the user's credential
    /// for this mechanism (one for another mechanism counts as none). An
    /// unknown user is answered like a known one and fails at [`last`].
    ///
    /// [`last`]: ScramServer::last
    pub fn first(
        &mut self,
        client_first: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, ScramError> {
        // Any error ends the exchange.
        let ServerState::Initial = std::mem::replace(&mut self.state, ServerState::Failed) else {
            return Err(ScramError::OutOfOrder(
                "client-first after the exchange began",
            ));
        };
        let message = utf8(client_first, "the client-first message")?;
        let parsed = parse_client_first(message)?;
        let (credential, known) = match lookup(&parsed.user) {
            Some(c) if c.mechanism == self.mechanism => (c, true),
            _ => (fake_credential(self.mechanism, &parsed.user), false),
        };
        let nonce = format!("{}{}", parsed.nonce, self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&credential.salt),
            credential.iterations
        );
        self.state = ServerState::FirstSent(Box::new(Exchange {
            gs2_header: parsed.gs2_header.to_string(),
            client_first_bare: parsed.bare.to_string(),
            server_first: server_first.clone(),
            nonce,
            user: parsed.user,
            credential,
            known,
        }));
        Ok(server_first.into_bytes())
    }

    /// Client-final → server-final (`v=…`) and the authenticated user
    /// name. A wrong password and an unknown user both fail with
    /// [`ScramError::AuthenticationFailed`].
    pub fn last(&mut self, client_final: &[u8]) -> Result<(Vec<u8>, String), ScramError> {
        let exchange = match std::mem::replace(&mut self.state, ServerState::Failed) {
            ServerState::FirstSent(exchange) => exchange,
            ServerState::Initial => {
                return Err(ScramError::OutOfOrder("client-final before client-first"));
            }
            ServerState::Done | ServerState::Failed => {
                return Err(ScramError::OutOfOrder(
                    "client-final after the exchange ended",
                ));
            }
        };
        let message = utf8(client_final, "the client-final message")?;
        let parsed = parse_client_final(message)?;
        if parsed.channel_binding != exchange.gs2_header.as_bytes() {
            return Err(malformed(
                "the channel binding (c=) does not match the GS2 header",
            ));
        }
        // librdkafka 2.0 (Debian's kcat) echoes its own nonce in front of
        // the combined one; Kafka brokers before 3.x accepted that (they
        // checked the end of the nonce only). That one shape is accepted
        // too: the proof still covers the message as sent, so it gains an
        // attacker nothing.
        let client_nonce = &exchange.nonce[..exchange.nonce.len() - self.server_nonce.len()];
        let doubled = parsed.nonce.len() == client_nonce.len() + exchange.nonce.len()
            && parsed.nonce.starts_with(client_nonce)
            && parsed.nonce.ends_with(exchange.nonce.as_str());
        if parsed.nonce != exchange.nonce && !doubled {
            return Err(malformed("the nonce (r=) is not the exchange's"));
        }

        let mechanism = self.mechanism;
        let credential = &exchange.credential;
        let auth_message = format!(
            "{},{},{}",
            exchange.client_first_bare, exchange.server_first, parsed.without_proof
        );
        let client_signature = hmac(mechanism, &credential.stored_key, auth_message.as_bytes());
        // The same work for known and unknown users, and for proofs of the
        // wrong length.
        let client_key = if parsed.proof.len() == client_signature.len() {
            xor(&parsed.proof, &client_signature)
        } else {
            client_signature
        };
        let proof_ok: bool = hash(mechanism, &client_key)
            .ct_eq(&credential.stored_key)
            .into();
        if !(proof_ok && parsed.proof.len() == mechanism.hash_len() && exchange.known) {
            return Err(ScramError::AuthenticationFailed);
        }
        let server_signature = hmac(mechanism, &credential.server_key, auth_message.as_bytes());
        self.state = ServerState::Done;
        Ok((
            format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
            exchange.user,
        ))
    }
}

// ---------------------------------------------------------------------------
// Client

enum ClientState {
    Initial,
    FirstSent,
    FinalSent { server_signature: Vec<u8> },
    Failed,
}

/// The client side of one SCRAM exchange (corelog's own clients).
pub struct ScramClient {
    mechanism: ScramMechanism,
    user: String,
    /// Zeroed once client-final is made, and on drop.
    password: Vec<u8>,
    client_nonce: String,
    state: ClientState,
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Drop for ScramClient {
    fn drop(&mut self) {
        wipe(&mut self.password);
    }
}

/// Overwrites `bytes` with zeros in a way the compiler does not elide.
fn wipe(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        // SAFETY: `b` is a valid, aligned, exclusive reference to a u8.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

impl ScramClient {
    /// An exchange authenticating `user` with `password`, with a fresh
    /// random client nonce.
    pub fn new(mechanism: ScramMechanism, user: &str, password: &[u8]) -> Self {
        ScramClient {
            mechanism,
            user: user.to_string(),
            password: password.to_vec(),
            client_nonce: random_nonce(),
            state: ClientState::Initial,
        }
    }

    /// With a given client nonce (the RFC's test vectors).
    #[cfg(test)]
    fn with_nonce(mechanism: ScramMechanism, user: &str, password: &[u8], nonce: &str) -> Self {
        let mut client = Self::new(mechanism, user, password);
        client.client_nonce = nonce.to_string();
        client
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    fn client_first_bare(&self) -> String {
        format!("n={},r={}", escape_saslname(&self.user), self.client_nonce)
    }

    /// Client-first: `n,,n=<user>,r=<nonce>` (`,` and `=` in the user name
    /// escaped). Calling it again returns the same message.
    pub fn first(&mut self) -> Vec<u8> {
        if let ClientState::Initial = self.state {
            self.state = ClientState::FirstSent;
        }
        format!("n,,{}", self.client_first_bare()).into_bytes()
    }

    /// Server-first → client-final. Checks that the server's nonce extends
    /// ours and that the iteration count is within Kafka's bounds
    /// (4096..=16384: below is weak, above would let a server make the
    /// client spend as long as it likes).
    pub fn last(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        match std::mem::replace(&mut self.state, ClientState::Failed) {
            ClientState::FirstSent => {}
            ClientState::Initial => {
                return Err(ScramError::OutOfOrder("server-first before client-first"));
            }
            ClientState::FinalSent { .. } | ClientState::Failed => {
                return Err(ScramError::OutOfOrder("server-first answered twice"));
            }
        }
        let message = utf8(server_first, "the server-first message")?;
        let parsed = parse_server_first(message)?;
        if parsed.nonce.len() <= self.client_nonce.len()
            || !parsed.nonce.starts_with(&self.client_nonce)
        {
            return Err(malformed(
                "the server's nonce (r=) does not extend the client's",
            ));
        }
        let bounds = ScramMechanism::MIN_ITERATIONS..=ScramMechanism::MAX_ITERATIONS;
        if !bounds.contains(&parsed.iterations) {
            return Err(ScramError::Unsupported(format!(
                "the server asks for {} iterations; {}..={} are accepted",
                parsed.iterations,
                ScramMechanism::MIN_ITERATIONS,
                ScramMechanism::MAX_ITERATIONS
            )));
        }

        let mechanism = self.mechanism;
        let mut salted =
            salted_password(mechanism, &self.password, &parsed.salt, parsed.iterations);
        wipe(&mut self.password);
        self.password.clear();
        let client_key = hmac(mechanism, &salted, b"Client Key");
        let stored_key = hash(mechanism, &client_key);
        let server_key = hmac(mechanism, &salted, b"Server Key");
        wipe(&mut salted);

        // c= is base64("n,,"): no channel binding, no authorization id.
        let without_proof = format!("c=biws,r={}", parsed.nonce);
        let auth_message = format!("{},{message},{without_proof}", self.client_first_bare());
        let client_signature = hmac(mechanism, &stored_key, auth_message.as_bytes());
        let proof = xor(&client_key, &client_signature);
        self.state = ClientState::FinalSent {
            server_signature: hmac(mechanism, &server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks server-final: `v=` must be the server signature (compared in
    /// constant time); `e=…` is the server's error.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let ClientState::FinalSent { server_signature } = &self.state else {
            return Err(ScramError::OutOfOrder(
                "server-final before client-final was made",
            ));
        };
        let message = utf8(server_final, "the server-final message")?;
        let first = message.split(',').next().unwrap_or_default();
        if let Some(error) = first.strip_prefix("e=") {
            return Err(ScramError::ServerError(error.to_string()));
        }
        let Some(verifier) = first.strip_prefix("v=") else {
            return Err(malformed(
                "the server-final message is neither v=<signature> nor e=<error>",
            ));
        };
        let verifier = decode_base64(verifier, "the server signature (v=)")?;
        if bool::from(verifier.ct_eq(server_signature)) {
            Ok(())
        } else {
            Err(ScramError::ServerSignatureMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // RFC 7677 §3.
    const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const RFC_SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_credential() -> ScramCredential {
        // Derived once: PBKDF2 is slow in test builds, and the proptests
        // use it in every case.
        static CREDENTIAL: OnceLock<ScramCredential> = OnceLock::new();
        CREDENTIAL
            .get_or_init(|| {
                let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
                derive_credential("user", ScramMechanism::Sha256, b"pencil", &salt, 4096)
            })
            .clone()
    }

    fn lookup_in(creds: &[ScramCredential]) -> impl FnOnce(&str) -> Option<ScramCredential> + '_ {
        move |user| creds.iter().find(|c| c.user == user).cloned()
    }

    /// The server after the RFC's client-first, for malformed client-finals.
    fn rfc_server_after_first() -> ScramServer {
        let creds = [rfc_credential()];
        let mut server = ScramServer::with_nonce(ScramMechanism::Sha256, RFC_SERVER_NONCE);
        let server_first = server
            .first(RFC_CLIENT_FIRST.as_bytes(), lookup_in(&creds))
            .unwrap();
        assert_eq!(server_first, RFC_SERVER_FIRST.as_bytes());
        server
    }

    /// Whether an error is the one a case expects.
    type Expect = fn(&ScramError) -> bool;

    fn malformed_first(client_first: &str) -> ScramError {
        let creds = [rfc_credential()];
        let mut server = ScramServer::with_nonce(ScramMechanism::Sha256, RFC_SERVER_NONCE);
        let err = server
            .first(client_first.as_bytes(), lookup_in(&creds))
            .unwrap_err();
        // The exchange is over after an error.
        assert!(matches!(
            server.last(RFC_CLIENT_FINAL.as_bytes()),
            Err(ScramError::OutOfOrder(_))
        ));
        err
    }

    fn malformed_final(client_final: &str) -> ScramError {
        rfc_server_after_first()
            .last(client_final.as_bytes())
            .unwrap_err()
    }

    #[test]
    fn rfc7677_server() {
        let mut server = rfc_server_after_first();
        let (server_final, user) = server.last(RFC_CLIENT_FINAL.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(server_final).unwrap(), RFC_SERVER_FINAL);
        assert_eq!(user, "user");
        // Done: no step is taken twice.
        assert!(matches!(
            server.last(RFC_CLIENT_FINAL.as_bytes()),
            Err(ScramError::OutOfOrder(_))
        ));
        assert!(matches!(
            server.first(RFC_CLIENT_FIRST.as_bytes(), |_| None),
            Err(ScramError::OutOfOrder(_))
        ));
    }

    #[test]
    fn rfc7677_client() {
        let mut client =
            ScramClient::with_nonce(ScramMechanism::Sha256, "user", b"pencil", RFC_CLIENT_NONCE);
        assert_eq!(client.first(), RFC_CLIENT_FIRST.as_bytes());
        let client_final = client.last(RFC_SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(client_final).unwrap(), RFC_CLIENT_FINAL);
        client.verify(RFC_SERVER_FINAL.as_bytes()).unwrap();
        assert_eq!(
            client.verify(b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(ScramError::ServerSignatureMismatch)
        );
        assert_eq!(
            client.verify(b"e=invalid-proof"),
            Err(ScramError::ServerError("invalid-proof".to_string()))
        );
        assert!(matches!(
            client.verify(b"x=1"),
            Err(ScramError::Malformed(_))
        ));
        assert!(matches!(
            client.last(RFC_SERVER_FIRST.as_bytes()),
            Err(ScramError::OutOfOrder(_))
        ));
    }

    #[test]
    fn credential_from_salted_password_matches_derive() {
        let salt = random_salt();
        assert_eq!(salt.len(), SALT_LEN);
        for mechanism in ScramMechanism::ALL {
            let direct = derive_credential("alice", mechanism, b"secret", &salt, 8192);
            let salted = salted_password(mechanism, b"secret", &salt, 8192);
            assert_eq!(salted.len(), mechanism.hash_len());
            let via = credential_from_salted_password("alice", mechanism, &salt, &salted, 8192);
            assert_eq!(direct, via);
            assert_eq!(direct.stored_key.len(), mechanism.hash_len());
            assert_eq!(direct.server_key.len(), mechanism.hash_len());
        }
        // The keys stay out of Debug.
        let text = format!(
            "{:?}",
            derive_credential("a", ScramMechanism::Sha256, b"p", &salt, 4096)
        );
        assert!(!text.contains("stored_key") && !text.contains("server_key"));
    }

    #[test]
    fn nonces_are_printable_and_fresh() {
        let a = random_nonce();
        let b = random_nonce();
        assert_ne!(a, b);
        check_nonce(&a).unwrap();
        assert_eq!(a.len(), 32);
    }

    fn round_trip(
        mechanism: ScramMechanism,
        user: &str,
        stored_password: &[u8],
        client_password: &[u8],
    ) -> (Result<String, ScramError>, ScramServer) {
        let creds = [derive_credential(
            user,
            mechanism,
            stored_password,
            &random_salt(),
            4096,
        )];
        let mut client = ScramClient::new(mechanism, user, client_password);
        let mut server = ScramServer::new(mechanism);
        let server_first = server.first(&client.first(), lookup_in(&creds)).unwrap();
        let client_final = client.last(&server_first).unwrap();
        let result = server.last(&client_final).map(|(server_final, user)| {
            client.verify(&server_final).unwrap();
            user
        });
        (result, server)
    }

    #[test]
    fn sha512_round_trip() {
        let (result, _) = round_trip(ScramMechanism::Sha512, "bob", b"hunter2", b"hunter2");
        assert_eq!(result.unwrap(), "bob");
    }

    #[test]
    fn user_names_with_comma_and_equals_are_escaped() {
        let mut client = ScramClient::with_nonce(ScramMechanism::Sha256, "a,b=c", b"pw", "n1");
        assert_eq!(client.first(), b"n,,n=a=2Cb=3Dc,r=n1");
        let (result, _) = round_trip(ScramMechanism::Sha256, "a,b=c", b"pw", b"pw");
        assert_eq!(result.unwrap(), "a,b=c");
    }

    #[test]
    fn wrong_password_fails() {
        for mechanism in ScramMechanism::ALL {
            let (result, mut server) = round_trip(mechanism, "carol", b"right", b"wrong");
            assert_eq!(result, Err(ScramError::AuthenticationFailed));
            assert!(matches!(
                server.last(b"c=biws"),
                Err(ScramError::OutOfOrder(_))
            ));
        }
    }

    #[test]
    fn credential_for_another_mechanism_is_no_credential() {
        let creds = [derive_credential(
            "dave",
            ScramMechanism::Sha256,
            b"pw",
            &random_salt(),
            4096,
        )];
        let mut client = ScramClient::new(ScramMechanism::Sha512, "dave", b"pw");
        let mut server = ScramServer::new(ScramMechanism::Sha512);
        let server_first = server.first(&client.first(), lookup_in(&creds)).unwrap();
        let client_final = client.last(&server_first).unwrap();
        assert_eq!(
            server.last(&client_final),
            Err(ScramError::AuthenticationFailed)
        );
    }

    fn server_first_for(user: &str, mechanism: ScramMechanism) -> String {
        let mut server = ScramServer::with_nonce(mechanism, "srv");
        let out = server
            .first(format!("n,,n={user},r=abc").as_bytes(), |_| None)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn unknown_user_fails_only_at_last_with_a_stable_salt() {
        let first = server_first_for("nobody", ScramMechanism::Sha256);
        let again = server_first_for("nobody", ScramMechanism::Sha256);
        assert_eq!(first, again);
        assert!(first.starts_with("r=abcsrv,s="), "{first}");
        assert!(first.ends_with(",i=4096"), "{first}");
        let salt = parse_server_first(&first).unwrap().salt;
        assert_eq!(salt.len(), SALT_LEN);
        // Other users and mechanisms get other salts.
        assert_ne!(first, server_first_for("somebody", ScramMechanism::Sha256));
        assert_ne!(
            first.replace("srv", ""),
            server_first_for("nobody", ScramMechanism::Sha512).replace("srv", "")
        );

        // The client goes through to the end and gets the wrong-password
        // error.
        let mut client = ScramClient::new(ScramMechanism::Sha256, "nobody", b"guess");
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let server_first = server.first(&client.first(), |_| None).unwrap();
        let client_final = client.last(&server_first).unwrap();
        assert_eq!(
            server.last(&client_final),
            Err(ScramError::AuthenticationFailed)
        );
    }

    #[test]
    fn malformed_client_first_is_rejected() {
        use ScramError::{Malformed, Unsupported};
        let cases: &[(&str, Expect)] = &[
            ("", |e| matches!(e, Malformed(_))),
            ("n,,", |e| matches!(e, Malformed(_))),
            ("n,", |e| matches!(e, Malformed(_))),
            ("x,,n=user,r=abc", |e| matches!(e, Malformed(_))),
            ("p=tls-unique,,n=user,r=abc", |e| {
                matches!(e, Unsupported(_))
            }),
            ("n,b=x,n=user,r=abc", |e| matches!(e, Malformed(_))),
            ("n,a=other,n=user,r=abc", |e| matches!(e, Unsupported(_))),
            ("n,,m=ext,n=user,r=abc", |e| matches!(e, Unsupported(_))),
            ("n,,n=user,r=abc,m=ext", |e| matches!(e, Unsupported(_))),
            ("n,,n=user,r=abc,tokenauth=true", |e| {
                matches!(e, Unsupported(_))
            }),
            ("n,,n=user,r=abc,tokenauth=TRUE", |e| {
                matches!(e, Unsupported(_))
            }),
            ("n,,n=us=2Dr,r=abc", |e| matches!(e, Malformed(_))),
            ("n,,n=user=,r=abc", |e| matches!(e, Malformed(_))),
            ("n,,n=user=2,r=abc", |e| matches!(e, Malformed(_))),
            ("n,,n=,r=abc", |e| matches!(e, Malformed(_))),
            ("n,,n=user", |e| matches!(e, Malformed(_))),
            ("n,,n=user,r=", |e| matches!(e, Malformed(_))),
            ("n,,n=user,x=abc", |e| matches!(e, Malformed(_))),
            ("n,,r=abc,n=user", |e| matches!(e, Malformed(_))),
            ("n,,n=user,r=ab c", |e| matches!(e, Malformed(_))),
            ("n,,n=user,r=abc,noequals", |e| matches!(e, Malformed(_))),
        ];
        for (message, expected) in cases {
            let err = malformed_first(message);
            assert!(expected(&err), "{message:?}: {err:?}");
        }
        let err = {
            let mut server = ScramServer::new(ScramMechanism::Sha256);
            server.first(b"n,,n=\xff\xfe,r=abc", |_| None).unwrap_err()
        };
        assert!(matches!(err, Malformed(_)), "{err:?}");
    }

    #[test]
    fn accepted_client_first_variants() {
        let creds = [rfc_credential()];
        for message in [
            "y,,n=user,r=abc",
            "n,a=user,n=user,r=abc",
            "n,,n=user,r=abc,tokenauth=false",
            "n,,n=user,r=abc,ext=1",
        ] {
            let mut server = ScramServer::with_nonce(ScramMechanism::Sha256, "srv");
            server
                .first(message.as_bytes(), lookup_in(&creds))
                .unwrap_or_else(|e| panic!("{message}: {e}"));
        }
    }

    #[test]
    fn y_flag_and_authzid_are_bound_in_c() {
        // c= must repeat the exact GS2 header the client sent.
        let creds = [derive_credential(
            "user",
            ScramMechanism::Sha256,
            b"pencil",
            b"salt",
            4096,
        )];
        for gs2 in ["y,,", "n,a=user,"] {
            let mut server = ScramServer::with_nonce(ScramMechanism::Sha256, "srv");
            let bare = "n=user,r=abc";
            let server_first = server
                .first(format!("{gs2}{bare}").as_bytes(), lookup_in(&creds))
                .unwrap();
            let server_first = String::from_utf8(server_first).unwrap();
            let without_proof = format!("c={},r=abcsrv", STANDARD.encode(gs2));
            let auth = format!("{bare},{server_first},{without_proof}");
            let salted = salted_password(ScramMechanism::Sha256, b"pencil", b"salt", 4096);
            let client_key = hmac(ScramMechanism::Sha256, &salted, b"Client Key");
            let stored = hash(ScramMechanism::Sha256, &client_key);
            let proof = xor(
                &client_key,
                &hmac(ScramMechanism::Sha256, &stored, auth.as_bytes()),
            );
            let client_final = format!("{without_proof},p={}", STANDARD.encode(proof));
            let (_, user) = server.last(client_final.as_bytes()).unwrap();
            assert_eq!(user, "user");
        }
    }

    #[test]
    fn malformed_client_final_is_rejected() {
        use ScramError::{AuthenticationFailed, Malformed};
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let cases: Vec<(String, ScramError)> = vec![
            (String::new(), malformed("")),
            // Bad channel binding: other header, not base64, missing.
            (format!("c=eSws,r={nonce},p={proof}"), malformed("")),
            (format!("c=b!ws,r={nonce},p={proof}"), malformed("")),
            (format!("r={nonce},p={proof}"), malformed("")),
            // Wrong nonce: the client's alone, another, missing.
            (
                format!("c=biws,r=rOprNGfwEbeRWgbNEkqO,p={proof}"),
                malformed(""),
            ),
            (format!("c=biws,r={nonce}x,p={proof}"), malformed("")),
            (format!("c=biws,p={proof}"), malformed("")),
            // The proof not last, twice, missing, not base64.
            (format!("c=biws,p={proof},r={nonce}"), malformed("")),
            (format!("c=biws,r={nonce},p={proof},x=1"), malformed("")),
            (
                format!("c=biws,r={nonce},p={proof},p={proof}"),
                malformed(""),
            ),
            (format!("c=biws,r={nonce}"), malformed("")),
            (format!("c=biws,r={nonce},p=%%%"), malformed("")),
            (format!("c=biws,r={nonce},m=x,p={proof}"), unsupported("")),
            // Well formed, wrong proofs: other bytes, too short, empty.
            (
                format!("c=biws,r={nonce},p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
                AuthenticationFailed,
            ),
            (format!("c=biws,r={nonce},p=dHzbZapW"), AuthenticationFailed),
            (format!("c=biws,r={nonce},p="), AuthenticationFailed),
        ];
        for (message, expected) in cases {
            let err = malformed_final(&message);
            assert_eq!(
                std::mem::discriminant(&err),
                std::mem::discriminant(&expected),
                "{message:?}: {err:?}"
            );
        }
        let err = rfc_server_after_first()
            .last(b"c=biws,r=\xc3\x28,p=AA==")
            .unwrap_err();
        assert!(matches!(err, Malformed(_)), "{err:?}");
        // An extension before the proof is bound into the signature, so the
        // RFC's proof no longer matches; the syntax is accepted.
        assert_eq!(
            malformed_final(&format!("c=biws,r={nonce},ext=1,p={proof}")),
            AuthenticationFailed
        );
    }

    #[test]
    fn steps_out_of_order() {
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        assert!(matches!(
            server.last(RFC_CLIENT_FINAL.as_bytes()),
            Err(ScramError::OutOfOrder(_))
        ));
        let mut client = ScramClient::new(ScramMechanism::Sha256, "user", b"pencil");
        assert!(matches!(
            client.last(RFC_SERVER_FIRST.as_bytes()),
            Err(ScramError::OutOfOrder(_))
        ));
        assert!(matches!(
            client.verify(RFC_SERVER_FINAL.as_bytes()),
            Err(ScramError::OutOfOrder(_))
        ));
    }

    #[test]
    fn client_checks_server_first() {
        let cases: &[(&str, Expect)] = &[
            // The nonce does not extend ours / is only ours.
            ("r=zzzz,s=c2FsdA==,i=4096", |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            ("r=n1,s=c2FsdA==,i=4096", |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            // Iterations out of bounds or not a number.
            ("r=n1s,s=c2FsdA==,i=4095", |e| {
                matches!(e, ScramError::Unsupported(_))
            }),
            ("r=n1s,s=c2FsdA==,i=16385", |e| {
                matches!(e, ScramError::Unsupported(_))
            }),
            ("r=n1s,s=c2FsdA==,i=99999999999999", |e| {
                matches!(e, ScramError::Unsupported(_))
            }),
            ("r=n1s,s=c2FsdA==,i=+4096", |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            ("r=n1s,s=c2FsdA==,i=", |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            // Salt missing, empty, not base64.
            ("r=n1s,i=4096", |e| matches!(e, ScramError::Malformed(_))),
            ("r=n1s,s=,i=4096", |e| matches!(e, ScramError::Malformed(_))),
            ("r=n1s,s=!!,i=4096", |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            ("m=x,r=n1s,s=c2FsdA==,i=4096", |e| {
                matches!(e, ScramError::Unsupported(_))
            }),
            ("e=unknown-user", |e| {
                matches!(e, ScramError::ServerError(_))
            }),
            ("", |e| matches!(e, ScramError::Malformed(_))),
        ];
        for (message, expected) in cases {
            let mut client = ScramClient::with_nonce(ScramMechanism::Sha256, "u", b"p", "n1");
            client.first();
            let err = client.last(message.as_bytes()).unwrap_err();
            assert!(expected(&err), "{message:?}: {err:?}");
        }
        let mut client = ScramClient::with_nonce(ScramMechanism::Sha256, "u", b"p", "n1");
        client.first();
        assert!(client.last(b"r=n1s,s=c2FsdA==,i=16384").is_ok());
    }

    #[test]
    fn error_messages_carry_no_secrets() {
        let (result, _) = round_trip(ScramMechanism::Sha256, "erin", b"s3cr3t-pw", b"wr0ng-pw");
        let text = result.unwrap_err().to_string();
        assert!(
            !text.contains("s3cr3t") && !text.contains("wr0ng"),
            "{text}"
        );
        let err = malformed_final("c=biws,r=nope,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        assert!(!err.to_string().contains("dHzb"), "{err}");
        assert!(
            !format!(
                "{:?}",
                ScramClient::new(ScramMechanism::Sha256, "u", b"pw-in-debug")
            )
            .contains("pw-in-debug")
        );
    }

    proptest! {
        #[test]
        fn server_never_panics(first in proptest::collection::vec(any::<u8>(), 0..120),
                               last in proptest::collection::vec(any::<u8>(), 0..160)) {
            let creds = [rfc_credential()];
            let mut server = ScramServer::new(ScramMechanism::Sha256);
            let _ = server.first(&first, lookup_in(&creds));
            let _ = server.last(&last);
            // And after a valid first step.
            let mut server = rfc_server_after_first();
            let _ = server.last(&last);
        }

        #[test]
        fn server_never_panics_on_near_misses(
            first in "[nyp]?(=[a-z=,]*)?,(a=[a-z=23CD]*)?,([nmr]=[a-z=23CD]*,?){0,4}(tokenauth=[a-z]*)?",
            last in "(c=[biwseSw=]*,)?(r=[a-zA-Z0-9%$)]*,)?([a-z]=[A-Za-z0-9+/=]*,?){0,3}(p=[A-Za-z0-9+/=]*)?",
        ) {
            let creds = [rfc_credential()];
            let mut server = ScramServer::new(ScramMechanism::Sha256);
            let _ = server.first(first.as_bytes(), lookup_in(&creds));
            let _ = server.last(last.as_bytes());
            let mut server = rfc_server_after_first();
            let _ = server.last(last.as_bytes());
        }

        #[test]
        fn client_never_panics(server_first in proptest::collection::vec(any::<u8>(), 0..120),
                               server_final in proptest::collection::vec(any::<u8>(), 0..120),
                               near in "r=n1[a-z]{0,3},s=[A-Za-z0-9+/=]{0,8},i=[0-9]{0,6}(,[a-z]=[a-z]*)?") {
            let mut client = ScramClient::with_nonce(ScramMechanism::Sha256, "u", b"p", "n1");
            client.first();
            let _ = client.last(&server_first);
            let _ = client.verify(&server_final);
            let mut client = ScramClient::with_nonce(ScramMechanism::Sha256, "u", b"p", "n1");
            client.first();
            let _ = client.last(near.as_bytes());
            let _ = client.verify(&server_final);
        }
    }

    /// The client-final librdkafka 2.0 sends (its nonce, then the combined
    /// one) with a proof over it as sent.
    fn doubled_final(server_first: &str, prefix: &str, combined: &str) -> String {
        let salt = b"a salt of some length";
        let without = format!("c=biws,r={prefix}{combined}");
        let auth = format!("n=user,r=CNONCE,{server_first},{without}");
        let sp = salted_password(ScramMechanism::Sha256, b"pencil", salt, 4096);
        let client_key = hmac(ScramMechanism::Sha256, &sp, b"Client Key");
        let stored = hash(ScramMechanism::Sha256, &client_key);
        let signature = hmac(ScramMechanism::Sha256, &stored, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without},p={}", STANDARD.encode(proof))
    }

    #[test]
    fn librdkafka_2_0s_doubled_nonce_is_accepted_and_no_other_prefix_is() {
        let credential = derive_credential(
            "user",
            ScramMechanism::Sha256,
            b"pencil",
            b"a salt of some length",
            4096,
        );
        for (prefix, ok) in [("CNONCE", true), ("XNONCE", false), ("C", false)] {
            let mut server = ScramServer::with_nonce(ScramMechanism::Sha256, "SNONCE");
            let first = server
                .first(b"n,,n=user,r=CNONCE", |_| Some(credential.clone()))
                .unwrap();
            let first = String::from_utf8(first).unwrap();
            let last = doubled_final(&first, prefix, "CNONCESNONCE");
            assert_eq!(server.last(last.as_bytes()).is_ok(), ok, "{prefix}");
        }
    }
}
