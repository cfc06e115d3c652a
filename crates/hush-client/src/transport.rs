//! HTTP and WebSocket to one server, with the server's certificate pinned by
//! SHA-256 fingerprint (self-signed servers) or checked against the system's
//! roots.

use std::sync::{Arc, Mutex};

use aws_lc_rs::digest::{SHA256, digest};
use hush_wire::ApiError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::error::ClientError;

/// The SHA-256 of a DER certificate as colon-separated uppercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    digest(&SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Normalises a fingerprint typed by a person (case, separators).
pub fn normalize_fingerprint(fp: &str) -> String {
    let hex: String = fp.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    hex.to_ascii_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// Accepts exactly the certificate with the pinned fingerprint (or, with no
/// pin, any certificate, recording what it saw: used only to show a new
/// server's fingerprint to the user before anything is sent).
#[derive(Debug)]
struct PinVerifier {
    pinned: Option<String>,
    seen: Mutex<Option<String>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity.as_ref());
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(fp.clone());
        match &self.pinned {
            Some(p) if *p == fp => Ok(ServerCertVerified::assertion()),
            Some(_) => Err(rustls::Error::General(
                "certificate fingerprint mismatch".into(),
            )),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn pinned_config(pinned: Option<String>) -> (Arc<rustls::ClientConfig>, Arc<PinVerifier>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(PinVerifier {
        pinned,
        seen: Mutex::new(None),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_no_client_auth()
        });
    // The default protocol versions are always valid for the default provider.
    let config = match config {
        Ok(c) => c,
        Err(_) => rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth(),
    };
    (Arc::new(config), verifier)
}

/// Connects to `url` and returns the SHA-256 fingerprint of its certificate,
/// sending nothing but a TLS handshake. For showing a new server to the user.
pub async fn probe_fingerprint(url: &str) -> Result<String, ClientError> {
    let (config, verifier) = pinned_config(None);
    let http = http_builder()
        .tls_backend_preconfigured((*config).clone())
        .build()?;
    // Any answer (even an error status) means the handshake completed.
    let _ = http.get(format!("{url}/healthz")).send().await?;
    let seen = verifier
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    seen.ok_or_else(|| ClientError::Network(format!("{url} is not an https:// server")))
}

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// How long a request may wait for the server's next bytes of an answer (a
/// server that stops answering fails the request instead of holding it
/// forever; a large download that keeps coming is not cut off).
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Every HTTP client of the transport: bounded connecting and reading.
fn http_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
}

/// How the client may reach a server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Allows plain `http://` to a server that is not on loopback (the
    /// CLI's `--insecure-http`). Without it, only `https://` reaches
    /// other machines: over plain HTTP the device's bearer token, and
    /// everything else sent, crosses the network readable and changeable.
    pub insecure_http: bool,
}

/// Whether `url` names a loopback host: an address in 127.0.0.0/8, `::1`
/// (or an IPv4-mapped loopback address), or `localhost`. Decided from the
/// URL alone, before any name is resolved or connection made: a name that
/// merely resolves to loopback does not count.
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = parsed.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// Refuses plain `http://` to a host that is not loopback, unless the user
/// allowed it with [`ConnectOptions::insecure_http`].
pub fn check_plain_http(base: &str, options: ConnectOptions) -> Result<(), ClientError> {
    if !base.starts_with("http://") || options.insecure_http || is_loopback_url(base) {
        return Ok(());
    }
    let host = reqwest::Url::parse(base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| base.to_owned());
    Err(ClientError::PlainHttp(host))
}

/// A connection to the server.
#[derive(Debug, Clone)]
pub struct Transport {
    base: String,
    http: reqwest::Client,
    tls: Option<Arc<rustls::ClientConfig>>,
    pinned: Option<String>,
    token: Option<String>,
    /// The device's WebSocket, kept open for sends and syncs (clones share it).
    link: Arc<tokio::sync::Mutex<Option<crate::link::Link>>>,
    /// HTTP requests made so far (clones share the count).
    requests: Arc<std::sync::atomic::AtomicU64>,
}

impl Transport {
    /// A transport to `base` (`http://` only for loopback servers; `https://`
    /// with a pinned fingerprint, or verified against the system's roots when
    /// `pinned` is `None`).
    pub fn new(base: &str, pinned: Option<String>) -> Result<Self, ClientError> {
        Self::with_options(base, pinned, ConnectOptions::default())
    }

    /// [`Transport::new`], with `options` deciding whether plain `http://`
    /// may reach a server that is not on loopback. Nothing is connected yet.
    pub fn with_options(
        base: &str,
        pinned: Option<String>,
        options: ConnectOptions,
    ) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_owned();
        check_plain_http(&base, options)?;
        let (http, tls) = if base.starts_with("https://") {
            match &pinned {
                Some(fp) => {
                    let (config, _) = pinned_config(Some(normalize_fingerprint(fp)));
                    (
                        http_builder()
                            .tls_backend_preconfigured((*config).clone())
                            .build()?,
                        Some(config),
                    )
                }
                None => (http_builder().build()?, None),
            }
        } else if base.starts_with("http://") {
            (http_builder().build()?, None)
        } else {
            return Err(ClientError::InvalidInput(format!(
                "server URL must start with https:// or http://, not {base:?}"
            )));
        };
        Ok(Self {
            base,
            http,
            tls,
            pinned: pinned.map(|p| normalize_fingerprint(&p)),
            token: None,
            link: Arc::default(),
            requests: Arc::default(),
        })
    }

    /// Uses `token` for authenticated requests.
    pub fn with_token(mut self, token: String) -> Self {
        self.token = Some(token);
        self.link = Arc::default();
        self
    }

    /// Uses `token` from now on (after a rotation).
    pub fn set_token(&mut self, token: String) {
        self.token = Some(token);
        // The kept socket was opened with the old token.
        self.link = Arc::default();
    }

    pub(crate) fn link_slot(&self) -> &tokio::sync::Mutex<Option<crate::link::Link>> {
        &self.link
    }

    /// The server URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn network_error(&self, e: reqwest::Error) -> ClientError {
        let text = format!("{e:?}");
        if text.contains("fingerprint mismatch") {
            ClientError::FingerprintMismatch {
                expected: self.pinned.clone().unwrap_or_default(),
                actual: "the server presented another certificate".into(),
            }
        } else {
            ClientError::Network(format!("{}: {e}", self.base))
        }
    }

    /// How many HTTP requests this transport (and its clones) made.
    pub fn requests_made(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    async fn finish(
        &self,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = resp.map_err(|e| self.network_error(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.network_error(e))?;
        Err(match serde_json::from_slice::<ApiError>(&body) {
            Ok(err) => ClientError::Server(err),
            Err(_) => ClientError::Network(format!("{}: HTTP {status}", self.base)),
        })
    }

    /// A JSON request with a JSON answer.
    pub async fn json<B: Serialize, R: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = self.finish(req.send().await).await?;
        resp.json::<R>().await.map_err(|e| self.network_error(e))
    }

    /// A request whose answer body is ignored.
    pub async fn call<B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(), ClientError> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.finish(req.send().await).await.map(|_| ())
    }

    /// A raw request: body bytes and headers in, response out.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut req = self.request(method, path);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        self.finish(req.send().await).await
    }

    /// Opens the device's WebSocket.
    pub async fn websocket(&self) -> Result<WebSocket, ClientError> {
        let url = if let Some(rest) = self.base.strip_prefix("https://") {
            format!("wss://{rest}/v1/ws")
        } else if let Some(rest) = self.base.strip_prefix("http://") {
            format!("ws://{rest}/v1/ws")
        } else {
            return Err(ClientError::InvalidInput("bad server URL".into()));
        };
        let mut req = url
            .into_client_request()
            .map_err(|e| ClientError::Network(e.to_string()))?;
        if let Some(t) = &self.token {
            let value = format!("Bearer {t}")
                .parse()
                .map_err(|_| ClientError::InvalidInput("bad token".into()))?;
            req.headers_mut().insert("authorization", value);
        }
        let connector = self.tls.clone().map(tokio_tungstenite::Connector::Rustls);
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(hush_wire::limits::MAX_FRAME_LEN))
            .max_frame_size(Some(hush_wire::limits::MAX_FRAME_LEN));
        let (ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(req, Some(config), true, connector)
                .await
                .map_err(|e| {
                    let text = format!("{e:?}");
                    if text.contains("fingerprint mismatch") {
                        ClientError::FingerprintMismatch {
                            expected: self.pinned.clone().unwrap_or_default(),
                            actual: "the server presented another certificate".into(),
                        }
                    } else if text.contains("401") {
                        ClientError::Network("the server does not know this device's token".into())
                    } else {
                        ClientError::Network(format!("{}: {e}", self.base))
                    }
                })?;
        Ok(ws)
    }
}

/// The device's WebSocket to the server.
pub type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_reaches_only_loopback_unless_allowed() {
        for ok in [
            "http://127.0.0.1:7780",
            "http://127.1.2.3",
            "http://localhost:1",
            "http://LOCALHOST/",
            "http://[::1]:80",
            "http://[::ffff:127.0.0.1]:80",
            "http://2130706433:80",
            "https://example.invalid",
        ] {
            assert!(Transport::new(ok, None).is_ok(), "{ok}");
        }
        for refused in [
            "http://example.invalid:1",
            "http://192.0.2.1",
            "http://[fd00::2]:80",
            "http://0.0.0.0:80",
            "http://localhost.example.com",
            "http://127.0.0.1.example.com",
            "http://user@example.com",
        ] {
            let e = Transport::new(refused, None).unwrap_err();
            assert!(matches!(e, ClientError::PlainHttp(_)), "{refused}: {e}");
            assert!(e.to_string().contains("--insecure-http"), "{e}");
            let allowed = ConnectOptions {
                insecure_http: true,
            };
            assert!(Transport::with_options(refused, None, allowed).is_ok());
        }
    }

    #[test]
    fn fingerprints_normalise() {
        assert_eq!(normalize_fingerprint("ab:cd:01"), "AB:CD:01");
        assert_eq!(normalize_fingerprint("ABCD01"), "AB:CD:01");
        assert_eq!(normalize_fingerprint(" ab cd 01 "), "AB:CD:01");
    }
}
